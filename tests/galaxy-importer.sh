#!/usr/bin/env bash
# Run galaxy-importer (the checks Galaxy runs on upload) on a freshly built tarball.
#
# Builds the collection into build/importer, imports it with tests/galaxy-importer.cfg
# (local mode: no container, no ansible-test, which `make sanity` runs), keeps the full log
# in build/importer/importer.log and prints a summary: what was imported, and every
# ERROR and WARNING line. Fails on an importer error or any ERROR line.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
venv=${VENV:-$repo/.venv}
out=$repo/build/importer
rm -rf "$out" && mkdir -p "$out/tmp"
cd "$repo"
"$venv/bin/ansible-galaxy" collection build --output-path "$out" >/dev/null
tarball=$(ls "$out"/*.tar.gz)

status=0
(
  cd "$out"  # galaxy-importer writes importer_result.json to the working directory
  PATH=$venv/bin:$PATH GALAXY_IMPORTER_CONFIG=$repo/tests/galaxy-importer.cfg \
    GALAXY_IMPORTER_ANSIBLE_LOCAL_TMP=$out/tmp GALAXY_IMPORTER_TMP_ROOT_DIR=$out/tmp \
    ANSIBLE_LOCAL_TEMP=$out/tmp ANSIBLE_NOCOLOR=1 \
    "$venv/bin/python" -m galaxy_importer.main "$tarball"
) >"$out/importer.log" 2>&1 || status=$?

errors=$(grep -cE '^(ERROR|CRITICAL)' "$out/importer.log" || true)
warnings=$(grep -cE '^WARNING' "$out/importer.log" || true)
grep -E '^(ERROR|CRITICAL|WARNING)' "$out/importer.log" || true
if [[ -f $out/importer_result.json ]]; then
  "$venv/bin/python" - "$out/importer_result.json" <<'PY'
import collections, json, sys

result = json.load(open(sys.argv[1]))
kinds = collections.Counter(item["content_type"] for item in result["contents"])
print("galaxy-importer: imported " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
      + f"; requires_ansible {result['requires_ansible']}")
PY
fi
echo "galaxy-importer: $(basename "$tarball"): $errors error(s), $warnings warning(s)" \
  "(log: build/importer/importer.log)"
if [[ $status -ne 0 || $errors -ne 0 ]] \
  || ! grep -q "Importer processing completed successfully" "$out/importer.log"; then
  echo "galaxy-importer: FAILED (exit $status); the end of the log:" >&2
  tail -n 20 "$out/importer.log" >&2
  exit 1
fi
