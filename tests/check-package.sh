#!/usr/bin/env bash
# Check the built collection tarball and its installed copy (`make package`).
#
# 1. The tarball holds no tests, Molecule scenarios, inventories, developer tooling or
#    caches (build_ignore in galaxy.yml), and does hold the runtime metadata and changelog.
# 2. ansible-doc renders every module (plugins/modules/*.py), filter (plugins/filter/*.py)
#    and role (roles/*/) of this checkout from the installed copy, and from nowhere else.
#
# Usage: tests/check-package.sh TARBALL INSTALLED_COLLECTIONS_PATH
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
tarball=$1
installed=$(cd "$2" && pwd -P)
fail=0

forbidden='(^|/)(tests|molecule|inventories|build|bench|scripts|\.venv|\.run|\.cache|\.ansible|__pycache__|\.pytest_cache|\.ruff_cache|\.git)(/|$)'
forbidden+='|\.pyc$|\.retry$|\.tar\.gz$|(^|/)molecule\.ya?ml$|(^|/)ansible\.cfg$|(^|/)\.plugin-cache\.yaml$'
forbidden+='|(^|/)importer_result\.json$|(^|/)(Makefile|requirements-dev\.txt|pyproject\.toml)$'
# The project's own execution environment; meta/execution-environment.yml is the collection's.
forbidden+='|^execution-environment\.yml$'
listing=$(tar -tzf "$tarball")
if bad=$(grep -E "$forbidden" <<<"$listing"); then
  echo "package: $(basename "$tarball") holds files that are not for users:" >&2
  mapfile -t lines <<<"$bad"
  printf '  %s\n' "${lines[@]}" >&2
  fail=1
fi
for required in MANIFEST.json FILES.json meta/runtime.yml README.md LICENSE CHANGELOG.md \
  requirements.txt meta/execution-environment.yml; do
  if ! grep -qx "$required" <<<"$listing"; then
    echo "package: $(basename "$tarball") lacks $required" >&2
    fail=1
  fi
done

# Only the installed copy: no checkout, no ~/.ansible, run from outside the checkout.
export ANSIBLE_COLLECTIONS_PATH=$installed ANSIBLE_ROLES_PATH=/nonexistent ANSIBLE_NOCOLOR=1
cd "$installed"
root=$installed/ansible_collections/mtls/rollout
count=0
render() {  # render TYPE NAME: text renders, and JSON says it comes from the installed copy
  local type=$1 name=mtls.rollout.$2 where
  if ! ansible-doc -t "$type" "$name" >/dev/null 2>"$root/../ansible-doc.err" \
    || ! where=$(ansible-doc -t "$type" --json "$name" 2>/dev/null | python3 -c '
import json, sys
doc = json.load(sys.stdin)[sys.argv[1]]
print(doc.get("path") or doc["doc"]["filename"])' "$name"); then
    echo "package: ansible-doc -t $type $name fails from the installed copy:" >&2
    sed 's/^/  /' "$root/../ansible-doc.err" >&2
    fail=1
  elif [[ $where != "$root"* ]]; then
    echo "package: ansible-doc -t $type $name comes from $where, not $root" >&2
    fail=1
  fi
  rm -f "$root/../ansible-doc.err"
  count=$((count + 1))
}
for module in "$repo"/plugins/modules/*.py; do
  render module "$(basename "$module" .py)"
done
for role in "$repo"/roles/*/; do
  render role "$(basename "$role")"
done
for plugin in "$repo"/plugins/filter/*.py; do  # one filter per file, named like the file
  if [[ -e $plugin ]]; then render filter "$(basename "$plugin" .py)"; fi
done
[[ $fail -eq 0 ]] || exit 1
echo "package: $(basename "$tarball"): $(wc -l <<<"$listing") entries, none for tests or caches;" \
  "ansible-doc renders all $count modules, filters and roles from the installed copy"
