# One image runs any role, and the enrolment service of a test network. No registry is needed: the base is a
# local Debian image (docker/build-base.sh) and docker/build.sh fetches the dependencies' wheels for the image's
# own Python into dist/docker/deps. The builder stage builds the project and installs everything into a venv;
# the image takes only that venv (no pip, no wheels, no build files).
ARG BASE=iwlz-base:bookworm

FROM ${BASE} AS builder
COPY dist/docker/deps /tmp/deps
RUN python3 -m venv /opt/iwlz \
 && /opt/iwlz/bin/pip install --quiet --no-index --find-links /tmp/deps -r /tmp/deps/requirements.txt
COPY pyproject.toml README.md /src/
COPY keys /src/keys
COPY protocol /src/protocol
COPY node /src/node
# Built as pyproject.toml's build-system says, in pip's isolated build environment (from /tmp/deps): the
# setuptools the venv came with is too old for the project's metadata (a license as an SPDX expression).
RUN /opt/iwlz/bin/pip wheel --quiet --no-index --find-links /tmp/deps --no-deps -w /tmp/wheels /src \
 && /opt/iwlz/bin/pip install --quiet --no-index --no-deps /tmp/wheels/iwlz_node-*.whl \
 && /opt/iwlz/bin/pip uninstall --quiet -y setuptools \
 && /opt/iwlz/bin/python -m pip uninstall --quiet -y pip \
 && site=$(/opt/iwlz/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
 && find "$site" \( -name '*.pyi' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.c' -o -name '*.h' \) -delete \
 && find "$site/holidays/locale" -mindepth 1 -maxdepth 1 ! -name nl ! -name en_US -exec rm -rf {} +

FROM ${BASE}
COPY --from=builder /opt/iwlz /opt/iwlz
COPY docker/entrypoint.sh /usr/local/bin/iwlz-entrypoint
RUN mkdir -p /data && chown 10001:10001 /data
ENV PATH=/opt/iwlz/bin:$PATH PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8700 8701
# A node answers /health on 8700, the enrolment service on 8790 (IWLZ_HEALTH_PORT). The check is bash talking
# HTTP over /dev/tcp: a few milliseconds of CPU, where starting Python for it took ~50 ms, which a hundred
# replicas starting at once on two cores could not spare (the checks timed out, and swarm killed healthy nodes).
# Under such a surge a start can take minutes and a running node's check can wait seconds for a core: a node is
# given 300 s to start and a minute of failed checks (6) before swarm replaces it. With 120 s and 3, a hundred
# replicas scaled at once on two cores passed the end-to-end run in ~155 s one day and on a slower one never
# settled: every kill and restart added load, and the running nodes' checks failed in turn (CAK, enrolment).
HEALTHCHECK --interval=10s --timeout=5s --start-period=300s --retries=6 CMD ["bash", "-c", \
  "exec 3<>/dev/tcp/127.0.0.1/${IWLZ_HEALTH_PORT:-8700} && printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3 && head -c 12 <&3 | grep -q ' 200'"]
ENTRYPOINT ["iwlz-entrypoint"]
