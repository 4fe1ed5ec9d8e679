#!/bin/sh
# Build the local Debian base image (no registry needed): debootstrap + docker import.
set -eu
TARGET=${1:-/var/tmp/iwlz-bookworm}
if ! docker image inspect iwlz-base:bookworm >/dev/null 2>&1; then
  [ -d "$TARGET" ] || debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$TARGET"
  tar -C "$TARGET" -c . | docker import - iwlz-base:bookworm
fi
