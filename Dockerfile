# One image runs any role. No registry is needed: the base is a local Debian image
# (docker/build-base.sh) and the project's wheels are built on the host (docker/build.sh).
ARG BASE=iwlz-base:bookworm
FROM ${BASE}
RUN python3 -m venv /opt/iwlz && mkdir -p /data /network && chown 10001:10001 /data /network
COPY dist/wheels /tmp/wheels
RUN /opt/iwlz/bin/pip install --no-index --find-links /tmp/wheels iwlz-node && rm -rf /tmp/wheels
COPY docker/entrypoint.sh /usr/local/bin/iwlz-entrypoint
ENV PATH=/opt/iwlz/bin:$PATH PYTHONUNBUFFERED=1
USER 10001:10001
VOLUME /data
EXPOSE 8700
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
  CMD python3 -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8700/health').status == 200 else 1)"
ENTRYPOINT ["iwlz-entrypoint"]
