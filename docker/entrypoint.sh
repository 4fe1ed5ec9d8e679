#!/bin/sh
# Start a node (or a test network's enrolment service) from environment variables.
#
# A node:   IWLZ_ROLE, IWLZ_NAME (an organisation's; none for a client), one of IWLZ_KVK / IWLZ_UZOVI /
#           IWLZ_AGB / IWLZ_BSN, IWLZ_REGION,
#           IWLZ_ENROL_URL + IWLZ_TOKEN_FILE (a Docker secret) to obtain its certificate on first start,
#           IWLZ_BOOTSTRAP (URLs), IWLZ_BOOTSTRAP_SELF=1 for a bootstrap node, IWLZ_PUBLIC_URL (default: this
#           container's own address, reachable the moment the node listens, unlike a service name that swarm
#           adds to DNS only once the task is healthy).
#           A replica of a replicated service is a party of its own: IWLZ_SLOT={{.Task.Slot}} with
#           IWLZ_AGB_BASE makes its AGB code IWLZ_AGB_BASE + slot, and its name "IWLZ_NAME slot".
# Enrolment service: IWLZ_SERVICE=enrol, IWLZ_ROOT_KEY_FILE (a Docker secret), IWLZ_NETWORK_INFO_FILE
#           (network.json, a Docker config), IWLZ_PUSH (bootstrap URLs that get each new revocation list).
# With arguments, runs `iwlz ARGS` (docker exec or docker run ... iwlz-node peers /data/node).
set -eu
if [ "$#" -gt 0 ]; then exec iwlz "$@"; fi

DATA=${IWLZ_DATA:-/data}  # the service's volume (a test names another)
if [ "${IWLZ_SERVICE:-node}" = enrol ]; then
  umask 077
  mkdir -p "$DATA/network"
  # Mode 600, replacing what an earlier start left: a secret is mounted 0444, so a plain copy under umask 077
  # was 0400, which this user could not overwrite when swarm started the service again.
  install -m 600 "$IWLZ_ROOT_KEY_FILE" "$DATA/network/root.key"
  install -m 600 "$IWLZ_NETWORK_INFO_FILE" "$DATA/network/network.json"
  set -- enroll serve --network "$DATA/network" --host 0.0.0.0 --port "${IWLZ_ENROL_PORT:-8790}" \
    --valid-for "${IWLZ_VALID_FOR:-30d}"
  for url in ${IWLZ_PUSH:-}; do set -- "$@" --push "$url"; done
  exec iwlz "$@"
fi

HOME_DIR=$DATA/node
if [ -n "${IWLZ_SLOT:-}" ] && [ -n "${IWLZ_AGB_BASE:-}" ]; then
  IWLZ_AGB=$(printf '%08d' $((IWLZ_AGB_BASE + IWLZ_SLOT)))
  IWLZ_NAME="$IWLZ_NAME $IWLZ_SLOT"
  export IWLZ_AGB IWLZ_NAME
fi
if [ ! -f "$HOME_DIR/config.json" ]; then
  set -- init "$HOME_DIR" --role "$IWLZ_ROLE"
  # A client's node names no one (his certificate travels in the clear): IWLZ_NAME is an organisation's.
  [ -n "${IWLZ_NAME:-}" ] && set -- "$@" --name "$IWLZ_NAME"
  for id in kvk uzovi agb bsn region; do
    value=$(printenv "IWLZ_$(echo $id | tr a-z A-Z)" || true)
    [ -n "$value" ] && set -- "$@" "--$id" "$value"
  done
  iwlz "$@" >/dev/null
  # The admin API stays on the container's loopback (docker exec CONTAINER iwlz ...). A test network's
  # compose file sets IWLZ_ADMIN_PLAIN_HTTP=1 for testers on the host (published ports): it then listens on
  # every interface of the container in plain HTTP, and still asks for the node's admin token
  # (docker exec CONTAINER cat /data/node/admin.token).
  python3 - "$HOME_DIR/config.json" "${IWLZ_ADMIN_PLAIN_HTTP:-0}" <<'PY'
import json, sys
path, plain = sys.argv[1], sys.argv[2] == "1"
config = json.load(open(path))
config.update(admin_port=8701, **({"admin_host": "0.0.0.0", "admin_plain_http": True} if plain else {}))
open(path, "w").write(json.dumps(config, indent=2) + "\n")
PY
fi
if [ -z "${IWLZ_PUBLIC_URL:-}" ]; then
  # The address on the route to the bootstrap node (or the enrolment service): the overlay network's.
  target=$(echo "${IWLZ_BOOTSTRAP:-} ${IWLZ_ENROL_URL:-}" | sed -E 's#https?://##g; s#[:/][^ ]*##g' | awk '{print $1}')
  ip=$(python3 -S - "$target" <<'PY'
import socket, sys, time
for attempt in range(60):
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((sys.argv[1] or "8.8.8.8", 9))
            print(s.getsockname()[0])
            break
    except OSError:
        time.sleep(1)
else:
    print(socket.gethostbyname(socket.gethostname()))
PY
)
  IWLZ_PUBLIC_URL="http://$ip:8700"
fi
set -- run "$HOME_DIR" --host 0.0.0.0 --port 8700 --public-url "$IWLZ_PUBLIC_URL" --no-mdns \
  --gossip-interval "${IWLZ_GOSSIP_INTERVAL:-5}"
if [ -n "${IWLZ_ENROL_URL:-}" ]; then
  set -- "$@" --enroll "$IWLZ_ENROL_URL" --token-file "$IWLZ_TOKEN_FILE" --enroll-wait "${IWLZ_ENROL_WAIT:-300}"
fi
[ "${IWLZ_BOOTSTRAP_SELF:-0}" = 1 ] && set -- "$@" --bootstrap "$IWLZ_PUBLIC_URL"
for peer in ${IWLZ_BOOTSTRAP:-}; do set -- "$@" --bootstrap "$peer"; done
exec iwlz "$@"
