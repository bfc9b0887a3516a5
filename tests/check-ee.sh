#!/usr/bin/env bash
# Build context of the execution environment (execution-environment.yml), checked (`make ee`,
# and part of `make lint`).
#
# 1. Builds the collection's tarball into build/ee/, where execution-environment.yml takes it
#    from, and fails when the file names another version than galaxy.yml's.
# 2. `ansible-builder create` writes the build context to build/ee/context (no image is
#    built: that needs the base image's registry).
# 3. Does what the image build's galaxy and builder stages do with that context: installs the
#    collections of its requirements.yml into build/ee/collections and runs ansible-builder's
#    own introspection on them. Fails unless the context holds the tarball, the collection is
#    mtls.rollout at galaxy.yml's version, and cryptography is a Python requirement both of the
#    collection (its requirements.txt) and of the definition.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
venv=${VENV:-$repo/.venv}
out=$repo/build/ee
cd "$repo"
version=$(awk '/^version:/ { print $2 }' galaxy.yml)
tarball=mtls-rollout-$version.tar.gz
fail() { echo "ee: $*" >&2; exit 1; }

for place in "src: build/ee/$tarball" "name: collections/$tarball"; do
  grep -q "$place\$" execution-environment.yml \
    || fail "execution-environment.yml does not name $tarball ('$place'): galaxy.yml is at version $version"
done

rm -rf "$out" && mkdir -p "$out"
"$venv/bin/ansible-galaxy" collection build --output-path "$out" >/dev/null
# The file is named: by default ansible-builder writes a Dockerfile instead on a machine
# without podman (a fresh one, before `make engine`), and docs/awx.md builds from Containerfile.
"$venv/bin/ansible-builder" create --output-filename Containerfile --file execution-environment.yml \
  --context "$out/context" >/dev/null
build=$out/context/_build
[[ -f $out/context/Containerfile ]] || fail "ansible-builder wrote no Containerfile"
cmp -s "$out/$tarball" "$build/collections/$tarball" || fail "the context lacks $tarball"

# The galaxy stage: ansible-galaxy in _build, with the context's requirements.yml.
(cd "$build" && ANSIBLE_COLLECTIONS_PATH=$out/collections "$venv/bin/ansible-galaxy" collection install \
  -r requirements.yml --collections-path "$out/collections" >/dev/null)
manifest=$out/collections/ansible_collections/mtls/rollout/MANIFEST.json
installed=$("$venv/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["collection_info"]["version"])' \
  "$manifest" 2>/dev/null) || fail "the context's requirements.yml does not install mtls.rollout"
[[ $installed == "$version" ]] || fail "the context installs mtls.rollout $installed, not $version"

# The builder stage: ansible-builder's introspection of the installed collections.
deps=$("$venv/bin/python" "$build/scripts/introspect.py" introspect \
  --user-pip="$build/requirements.txt" --user-bindep="$build/bindep.txt" "$out/collections") \
  || fail "ansible-builder's introspection failed on the installed collections (above), as the image build would"
for from in "collection mtls.rollout" "collection user"; do
  grep -qE "^- '?cryptography[^#]*# from $from" <<<"$deps" || {
    printf '%s\n' "$deps" >&2
    fail "cryptography is not a Python requirement from $from"
  }
done
base=$(awk '/^FROM/ && !seen { seen = 1 } /^ARG EE_BASE_IMAGE=/ { gsub(/.*=|"/, ""); print }' "$out/context/Containerfile")
echo "ee: build/ee/context: Containerfile from $base with mtls.rollout $version;" \
  "Python requirements: $(grep -oE "cryptography[^ ']*" <<<"$deps" | sort -u | paste -sd, -)" \
  "(from mtls.rollout and execution-environment.yml)"
