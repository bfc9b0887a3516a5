#!/usr/bin/env bash
# Molecule's dependency step of the embedded scenario: get the collection the
# way a user does. Build the tarball from this checkout (as `make package`
# does), then install it with ansible-galaxy into DEST, a throwaway collections
# path. Everything after this step uses DEST only.
#
# Usage: install-collection.sh DEST
set -euo pipefail

dest=${1:?usage: install-collection.sh DEST}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
dist=$(dirname "$dest")/dist
# A new install starts a new record of where the collection is loaded from.
rm -rf "$dest" "$dist" "$(dirname "$dest")/provenance.jsonl"
mkdir -p "$dist"
ansible-galaxy collection build --output-path "$dist" "$repo" >/dev/null
tarball=$(ls "$dist"/mtls-rollout-*.tar.gz)
ANSIBLE_COLLECTIONS_PATH=$dest ansible-galaxy collection install --collections-path "$dest" "$tarball" >/dev/null
echo "embedded: installed $(basename "$tarball") into $dest"
