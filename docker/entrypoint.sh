#!/bin/sh
# Start a node from /data/node, creating it on first start when IWLZ_ROLE etc. are given.
# The membership certificate is issued by a network root: mount it read-only at /network
# for a demo or test network; in production the root signs offline and the certificate is
# placed in /data/node/certificate.cwt.
set -eu
HOME_DIR=/data/node
if [ "$#" -gt 0 ]; then exec iwlz "$@"; fi
# A test network: one party creates the root in the shared /network volume, the others wait for it.
if [ "${IWLZ_NETWORK_INIT:-0}" = 1 ] && [ ! -f /network/network.json ]; then
  iwlz network init /network --name "${IWLZ_NETWORK_NAME:-iwlz-docker}"
fi
if [ -d /network ] && [ -n "${IWLZ_WAIT_FOR_NETWORK:-}" ]; then
  i=0
  while [ ! -f /network/network.json ] && [ $i -lt 120 ]; do sleep 0.5; i=$((i + 1)); done
fi
if [ ! -f "$HOME_DIR/config.json" ]; then
  set -- init "$HOME_DIR" --role "$IWLZ_ROLE" --name "$IWLZ_NAME"
  for id in kvk uzovi agb bsn region; do
    value=$(printenv "IWLZ_$(echo $id | tr a-z A-Z)" || true)
    [ -n "$value" ] && set -- "$@" "--$id" "$value"
  done
  iwlz "$@"
fi
if [ ! -f "$HOME_DIR/certificate.cwt" ] && [ -d /network ]; then
  iwlz cert issue --network /network "$HOME_DIR"
fi
set -- run "$HOME_DIR" --host 0.0.0.0 --port 8700 --public-url "${IWLZ_PUBLIC_URL:-http://$(hostname):8700}" --no-mdns \
  --gossip-interval "${IWLZ_GOSSIP_INTERVAL:-5}"
for peer in ${IWLZ_BOOTSTRAP:-}; do set -- "$@" --bootstrap "$peer"; done
exec iwlz "$@"
