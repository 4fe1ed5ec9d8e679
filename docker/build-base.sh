#!/bin/sh
# Build the local Debian base image iwlz-base:bookworm without a registry: debootstrap, then docker import.
# The tree is built in a scratch directory and imported only when debootstrap finished and the tree is
# complete (an interrupted run is started again, never imported). Apt's lists and downloaded .deb files are
# removed before the import: the image needs python3, not the means to install more.
set -eu
IMAGE=${IWLZ_BASE_IMAGE:-iwlz-base:bookworm}
WORK=${1:-/var/tmp/iwlz-bookworm}
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "base image $IMAGE is present"
  exit 0
fi
complete() {
  [ -f "$1/.iwlz-debootstrap-complete" ] && [ -x "$1/bin/sh" ] && [ -x "$1/usr/bin/python3" ] \
    && [ -f "$1/usr/lib/python3.11/ensurepip/__init__.py" ]
}
if ! complete "$WORK"; then
  rm -rf "$WORK" "$WORK.partial"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$WORK.partial"
  touch "$WORK.partial/.iwlz-debootstrap-complete"
  mv "$WORK.partial" "$WORK"
fi
complete "$WORK" || { echo "debootstrap left an incomplete tree in $WORK" >&2; exit 1; }
# What a node never uses stays out of the image: apt's lists and .deb files, documentation, translations,
# the parts of the standard library for people at a terminal (IDLE, Tk, 2to3, the test suite), and perl and
# glibc's iconv modules (Python has its own codecs; nothing in the image runs perl).
tar -C "$WORK" -c \
  --exclude=./.iwlz-debootstrap-complete --exclude='./var/lib/apt/lists/*' --exclude='./var/cache/apt/*' \
  --exclude='./var/cache/debconf/*-old' --exclude='./var/log/*' --exclude=./usr/share/doc --exclude=./usr/share/man \
  --exclude=./usr/share/info --exclude=./usr/share/locale --exclude=./usr/share/lintian \
  --exclude=./usr/share/bash-completion --exclude=./usr/lib/python3.11/idlelib --exclude=./usr/lib/python3.11/tkinter \
  --exclude=./usr/lib/python3.11/lib2to3 --exclude=./usr/lib/python3.11/test --exclude=./usr/lib/python3.11/turtledemo \
  --exclude=./usr/lib/python3.11/pydoc_data --exclude=./usr/lib/x86_64-linux-gnu/gconv \
  --exclude=./usr/lib/x86_64-linux-gnu/perl-base --exclude='./usr/bin/perl*' . | docker import - "$IMAGE"
docker run --rm "$IMAGE" /usr/bin/python3 -c 'import ensurepip, ssl, sqlite3' \
  || { docker image rm "$IMAGE" >/dev/null; echo "the imported base image cannot run python3" >&2; exit 1; }
echo "built base image $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE") bytes)"
