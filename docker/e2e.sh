#!/bin/sh
# The swarm end-to-end test, from a clean machine to a clean machine (docs/DOCKER.md):
#   sh docker/e2e.sh
# Starts the Docker engine if none answers, builds the base image (debootstrap) and the node image (no
# registry needed), initialises a single-node swarm if none is active, makes a network root and join tokens,
# deploys docker/compose.yml and plays docker/e2e.py against it: health, the demo's story, faults, scaling the
# zorgaanbieders to IWLZ_SCALE_TO (100). Then it removes everything it created (stack, volumes, network,
# secrets, the swarm and the engine if it started them). Exits 0 only if every step passed.
# IWLZ_E2E_ENGINES=2: instead, a second engine in a network namespace joins the swarm as a worker
# (docker/second-engine.sh), and the stack runs across both (docker/two-engines.yml): deploy, full peer tables
# on both, the story, a notification backlog across the engines.
# IWLZ_PYTHON: a Python with this project installed (default .venv/bin/python, else python3).
set -eu
cd "$(dirname "$0")/.."
PY=${IWLZ_PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
STACK=${IWLZ_STACK:-iwlz-e2e}
made_engine="" made_swarm="" secrets="" worker=""
ENGINES=${IWLZ_E2E_ENGINES:-1}
started=$(date +%s)

cleanup() {
  set +e
  echo "== cleaning up"
  if docker stack ls --format '{{.Name}}' 2>/dev/null | grep -qx "$STACK"; then
    docker stack rm "$STACK" >/dev/null
    i=0
    while [ -n "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ] && [ $i -lt 120 ]; do
      sleep 1; i=$((i + 1))
    done
    docker volume ls -q --filter "label=com.docker.stack.namespace=$STACK" | xargs -r docker volume rm >/dev/null
    i=0
    while [ -n "$worker" ] && [ -n "$(DOCKER_HOST=$worker docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ] \
        && [ $i -lt 120 ]; do
      sleep 1; i=$((i + 1))
    done
    i=0
    while docker network inspect "${STACK}_iwlz" >/dev/null 2>&1 && [ $i -lt 60 ]; do sleep 1; i=$((i + 1)); done
  fi
  [ -n "$secrets" ] && rm -rf "$secrets"
  [ -n "$worker" ] && sh docker/second-engine.sh down && echo "   removed the second engine"
  [ -n "$made_swarm" ] && docker swarm leave --force >/dev/null
  [ -n "$made_engine" ] && kill "$made_engine" && echo "   stopped the Docker engine this script started"
  echo "== total $(( $(date +%s) - started )) s"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || { echo "no Docker engine (apt-get install docker.io)" >&2; exit 2; }
  DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 dockerd >/var/log/iwlz-e2e-dockerd.log 2>&1 &
  made_engine=$!
  i=0; until docker info >/dev/null 2>&1; do sleep 1; i=$((i + 1)); [ $i -lt 60 ] || exit 2; done
fi
if [ "$ENGINES" = 2 ]; then
  [ "$(docker info -f '{{.Swarm.LocalNodeState}}')" != active ] || { echo "leave the active swarm first" >&2; exit 2; }
  engine=$(sh docker/second-engine.sh up) || { echo "the second engine could not be started" >&2; exit 1; }
  engine=$(echo "$engine" | tail -1)
  set -- $engine
  worker=${1#DOCKER_HOST=} worker_address=$2 manager_address=$3
  docker swarm init --advertise-addr "$manager_address" >/dev/null
  made_swarm=1
  DOCKER_HOST=$worker docker swarm join --token "$(docker swarm join-token -q worker)" "$manager_address:2377" >/dev/null
  echo "== a swarm of two engines: this one (manager, $manager_address) and $worker (worker, $worker_address)"
elif [ "$(docker info -f '{{.Swarm.LocalNodeState}}')" != active ]; then
  docker swarm init --advertise-addr 127.0.0.1 >/dev/null
  made_swarm=1
fi

echo "== build the image"
t=$(date +%s)
TAG=$(sh docker/build.sh) || { echo "the image could not be built" >&2; exit 1; }  # not a pipe: its failure counts
TAG=$(echo "$TAG" | tail -1)
echo "   $TAG: $(docker image inspect -f '{{.Size}}' "$TAG") bytes, built in $(( $(date +%s) - t )) s"

secrets=$(mktemp -d)
IWLZ="$PY -m node" sh docker/network.sh "$secrets/network" >/dev/null
set -- --image "$TAG" --secrets "$secrets/network" --stack "$STACK" --scale-to "${IWLZ_SCALE_TO:-100}" --iwlz "$PY -m node"
if [ -n "$worker" ]; then
  docker save "$TAG" | DOCKER_HOST=$worker docker load >/dev/null  # no registry: the image goes over by hand
  set -- "$@" --worker "$worker,$worker_address"
fi
if "$PY" docker/e2e.py "$@"; then
  exit 0
else
  exit 1
fi
