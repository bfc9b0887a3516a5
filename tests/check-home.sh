#!/usr/bin/env bash
# Prove that a test run leaves no copy of the collection in the user's home (`make lint`).
#
# ansible-lint (and Molecule's prerun, which .config/molecule/config.yml turns off) install
# the collection into "$ANSIBLE_HOME/collections" (default ~/.ansible) when an ANSIBLE_*
# path variable is set, as the Makefile does; a copy there shadows the checkout for every
# later ansible-playbook outside `make`. The Makefile points ANSIBLE_HOME into the checkout.
# Checks, after ansible-lint ran:
#   1. ANSIBLE_HOME is this checkout's .ansible/ (ignored by git and by the tarball);
#   2. ansible-lint's copy of mtls.rollout is there, written by this run (newer than STAMP);
#   3. nothing of mtls.rollout under ~/.ansible/collections is newer than STAMP.
# A copy left in ~/.ansible/collections by an older run is reported, with how to remove it.
#
# Usage: tests/check-home.sh STAMP   (a file touched before ansible-lint ran)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
stamp=$1
inside=$repo/.ansible
copy=ansible_collections/mtls/rollout
home_copy=$HOME/.ansible/collections/$copy

if [[ ${ANSIBLE_HOME:-} != "$inside" ]]; then
  echo "home: ANSIBLE_HOME is '${ANSIBLE_HOME:-}', not $inside: run this through make" >&2
  exit 1
fi
if [[ ! $inside/collections/$copy/MANIFEST.json -nt $stamp ]]; then
  echo "home: ansible-lint wrote no copy of mtls.rollout to $inside/collections" \
    "during this run: where did it go?" >&2
  exit 1
fi
if [[ -d $home_copy ]] && [[ -n $(find "$home_copy" -maxdepth 1 -newer "$stamp" -print -quit) ]]; then
  echo "home: $home_copy was written during this run" >&2
  exit 1
fi
if [[ -d $home_copy ]]; then
  echo "home: note: $home_copy is left from an older run and shadows this checkout" \
    "for ansible-playbook outside make; remove it with: rm -r '$home_copy'" >&2
fi
echo "home: the collection copy of this run is in .ansible/collections, none in $HOME/.ansible"
