#!/bin/sh
# Build the node image without a registry:
#   1. the Debian base image (docker/build-base.sh: debootstrap + docker import, once);
#   2. the dependencies' wheels for the base image's own Python and machine, from the package index, into
#      dist/docker/deps (the image itself is built with no network);
#   3. the image, in two stages (Dockerfile), tagged iwlz-node:<commit>-<time> and iwlz-node:latest.
# Prints the tag on the last line; `docker stack deploy` picks up a new build when IWLZ_IMAGE names that tag.
set -eu
cd "$(dirname "$0")/.."
BASE=${IWLZ_BASE_IMAGE:-iwlz-base:bookworm}
IWLZ_BASE_IMAGE=$BASE sh docker/build-base.sh >&2
PYVER=$(docker run --rm "$BASE" python3 -c 'import sys; print("%d%d" % sys.version_info[:2])')
ARCH=$(docker run --rm "$BASE" uname -m)
rm -rf dist/docker && mkdir -p dist/docker/deps
# What the node needs, and what building it needs (pyproject.toml's build-system: a setuptools new enough for
# its metadata, which the base image's own is not); the image builds it with pip's build isolation from these.
python3 - <<'PY'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))
with open("dist/docker/deps/requirements.txt", "w") as out:
    out.write("\n".join(project["project"]["dependencies"]) + "\n")
with open("dist/docker/deps/build-requirements.txt", "w") as out:
    out.write("\n".join(project["build-system"]["requires"]) + "\n")
PY
set --
for tag in 2_36 2_35 2_34 2_31 2_28 2_24 2_17 2_12 2_5; do set -- "$@" --platform "manylinux_${tag}_${ARCH}"; done
LOG=dist/docker/build.log
failed() { tail -30 "$LOG" >&2; echo "docker/build.sh: $1 failed (all of it in $LOG)" >&2; exit 1; }
python3 -m pip download --dest dist/docker/deps --only-binary=:all: --implementation cp \
  --python-version "$PYVER" --abi "cp$PYVER" --abi abi3 --abi none "$@" --platform "manylinux2014_${ARCH}" \
  -r dist/docker/deps/requirements.txt -r dist/docker/deps/build-requirements.txt >"$LOG" 2>&1 || failed "fetching the wheels"
TAG="iwlz-node:$(git rev-parse --short HEAD 2>/dev/null || echo dev)-$(date +%Y%m%d%H%M%S)"
docker build --build-arg "BASE=$BASE" -t "$TAG" -t iwlz-node:latest . >>"$LOG" 2>&1 || failed "docker build"
echo "image $TAG: $(docker image inspect -f '{{.Size}}' "$TAG") bytes" >&2
echo "$TAG"
