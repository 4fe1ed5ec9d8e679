#!/bin/sh
# A second Docker engine on this machine, in a network namespace of its own, for a swarm of two "hosts":
#   sh docker/second-engine.sh up     # prints DOCKER_HOST=... and its address
#   sh docker/second-engine.sh down   # leaves the swarm, stops the engine, removes the namespace and its data
# The namespace is joined to the host by a veth pair (10.231.0.1 here, 10.231.0.2 there). The engine keeps its
# images, volumes and containers apart from the first one, so a stack deployed across both has nothing on disk
# in common: what its nodes share goes over the overlay network, as between two machines.
set -eu
NS=iwlz-engine2
HOST_IF=iwlz-e2h NS_IF=iwlz-e2n
HOST_ADDR=10.231.0.1 NS_ADDR=10.231.0.2
DATA=/var/lib/iwlz-engine2 RUN=/run/iwlz-engine2
SOCK=unix://$RUN/docker.sock

up() {
  ip netns add "$NS"
  ip link add "$HOST_IF" type veth peer name "$NS_IF"
  ip link set "$NS_IF" netns "$NS"
  ip addr add "$HOST_ADDR/24" dev "$HOST_IF"
  ip link set "$HOST_IF" up
  ip netns exec "$NS" ip addr add "$NS_ADDR/24" dev "$NS_IF"
  ip netns exec "$NS" ip link set "$NS_IF" up
  ip netns exec "$NS" ip link set lo up
  ip netns exec "$NS" ip route add default via "$HOST_ADDR"
  mkdir -p "$DATA" "$RUN"
  # nsenter, not ip netns exec: that remounts /sys, and dockerd then finds no cgroups
  # DOCKER_SERVICE_PREFER_OFFLINE_IMAGE: use the image loaded here; without it the engine first tries a registry
  # for every task (20 s of DNS timeouts where none is reachable)
  DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 nsenter --net="/var/run/netns/$NS" dockerd --data-root "$DATA" --exec-root "$RUN/exec" -H "$SOCK" --pidfile "$RUN/docker.pid" \
    >"$RUN/dockerd.log" 2>&1 &
  i=0
  until DOCKER_HOST=$SOCK docker info >/dev/null 2>&1; do
    sleep 1; i=$((i + 1))
    [ $i -lt 60 ] || { tail -20 "$RUN/dockerd.log" >&2; exit 1; }
  done
  echo "DOCKER_HOST=$SOCK $NS_ADDR $HOST_ADDR"
}

down() {
  set +e
  DOCKER_HOST=$SOCK docker swarm leave --force >/dev/null 2>&1
  if [ -f "$RUN/docker.pid" ]; then
    pid=$(cat "$RUN/docker.pid"); kill "$pid" 2>/dev/null
    i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 30 ]; do sleep 1; i=$((i + 1)); done
  fi
  ip netns del "$NS" 2>/dev/null
  ip link del "$HOST_IF" 2>/dev/null
  grep -q " $DATA/" /proc/mounts && awk -v d="$DATA/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf "$DATA" "$RUN"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: second-engine.sh up|down" >&2; exit 2 ;;
esac
