#!/usr/bin/env bash
# Prove that containers on one network resolve each other's network aliases,
# as the Molecule scenarios and the demo need. A throwaway container with an
# alias on a throwaway network is looked up from a second container; both,
# and the network, are removed afterwards. On failure it prints what is
# missing and how to fix it (container-dns-help.txt) and exits 1.
source "$(dirname "$0")/lib.sh"

engine=$MTLS_ENGINE
net=mtls-dns-probe-$$
peer=mtls-dns-probe-peer-$$
cleanup() {
  "$engine" rm -f "$peer" >/dev/null 2>&1 || true
  "$engine" network rm "$net" >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$engine" network create "$net" >/dev/null
"$engine" run -d --name "$peer" --network "$net" --network-alias dns-probe-peer \
  "$MTLS_BASE_IMAGE" sleep 120 >/dev/null
# The name server learns of the peer as it starts: poll, bounded at 5 s.
if "$engine" run --rm --network "$net" "$MTLS_BASE_IMAGE" sh -c \
  'for _ in 1 2 3 4 5 6 7 8 9 10; do getent hosts dns-probe-peer && exit 0; sleep 0.5; done; exit 1' \
  >/dev/null; then
  log "containers resolve each other's names ($(network_backend))"
  exit 0
fi
printf 'ERROR: a container could not resolve another by its network alias (%s).\n\n' \
  "$(network_backend)" >&2
cat "$(dirname "$0")/container-dns-help.txt" >&2
exit 1
