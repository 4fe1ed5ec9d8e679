#!/bin/sh
# Build the project's wheels on the host, then the image from the local base.
set -eu
cd "$(dirname "$0")/.."
sh docker/build-base.sh
rm -rf dist/wheels && python3 -m pip wheel --quiet -w dist/wheels .
docker build -t iwlz-node:latest .
