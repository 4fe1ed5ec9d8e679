#!/bin/sh
# Make a test network's root and the join tokens of docker/compose.yml in DIR (on the host, never in a node):
#   sh docker/network.sh DIR [NAME]
# then deploy with IWLZ_SECRETS=DIR. The root key goes only to the enrolment service, as a Docker secret.
set -eu
DIR=${1:?usage: network.sh DIR [NAME]}
NAME=${2:-iwlz-swarm}
IWLZ=${IWLZ:-iwlz}
[ -f "$DIR/network.json" ] || $IWLZ network init "$DIR" --name "$NAME" >/dev/null
# A node renews its certificate (30 days) with its token, and a replaced replica enrols with it: the tokens last as
# long as the test network is meant to (IWLZ_TOKEN_VALID_FOR, a year by default).
token() { out=$1; shift; $IWLZ network enroll-token "$DIR" --valid-for "${IWLZ_TOKEN_VALID_FOR:-365d}" --out "$DIR/$out.token" "$@" >/dev/null; }
# Each named party's token is bound to its identity and reusable: its replacement on another machine, without
# the old volume, enrols again as the same party (and the old certificate is revoked).
token ciz --role ciz --kvk 62253778 --reusable
token cak --role cak --kvk 27364237 --reusable
token zorgkantoor-5151 --role zorgkantoor --uzovi 5151 --reusable
token zorgkantoor-5050 --role zorgkantoor --uzovi 5050 --reusable
token zorgaanbieder-12345678 --role zorgaanbieder --agb 12345678 --reusable
token zorgaanbieder-87654321 --role zorgaanbieder --agb 87654321 --reusable
token client-jansen --role client --reusable
token dochter-jansen --role client --reusable
# The replicated zorgaanbieders share one token for the role; each replica's AGB code comes from its slot.
token zorgaanbieders --role zorgaanbieder --reusable
echo "$DIR"
