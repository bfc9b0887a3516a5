#!/usr/bin/env bash
# Run `ansible-test sanity` on this checkout.
#
# ansible-test needs the collection under .../ansible_collections/mtls/rollout and refuses
# the build/collections symlink (it resolves the working directory), so this copies the
# tracked and new (not ignored) files to a temporary tree and runs there.
#
# Usage: tests/sanity.sh [ansible-test sanity arguments]
#   default: every sanity test ansible-test runs for a collection, on this venv's Python,
#   then compile and import on every other Python that ansible-core supports on managed
#   hosts and that is installed here (on PATH, or under pyenv's versions/); the versions
#   it cannot find are named, not silently skipped. Exceptions: tests/sanity/ignore-2.19.txt.
# Examples:
#   tests/sanity.sh
#   tests/sanity.sh --test validate-modules plugins/modules/csr.py
#   tests/sanity.sh --test compile --test import plugins/
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
venv=${VENV:-$repo/.venv}
python=$venv/bin/python
python_version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

# ansible-test bootstraps pip in its sanity virtualenvs with get-pip from
# ci-files.testing.ansible.com, which offline machines cannot reach. When that script is
# not cached, cache a stand-in: it installs pip with the standard library's ensurepip,
# then runs the same `pip install` (packages come from the configured package index).
pip_version=$("$python" -c '
from ansible_test._internal.python_requirements import get_venv_packages
from ansible_test._internal.host_configs import NativePythonConfig
print(get_venv_packages(NativePythonConfig(version="'"$python_version"'"))["pip"])')
get_pip=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
if grep -q "mtls.rollout's tests/sanity.sh" "$get_pip" 2>/dev/null \
  && ! grep -q "tests/sanity.sh (v3)" "$get_pip"; then
  rm -f "$get_pip"  # an older stand-in of ours
fi
[[ -s $get_pip ]] || rm -f "$get_pip"
if [[ ! -f $get_pip ]]; then
  mkdir -p "$(dirname "$get_pip")"
  curl -fsS -m 10 -o "$get_pip.download" \
    "https://ci-files.testing.ansible.com/ansible-test/get-pip-$pip_version.py" 2>/dev/null || true
  if grep -q "def main" "$get_pip.download" 2>/dev/null; then
    mv "$get_pip.download" "$get_pip"
  fi
  rm -f "$get_pip.download"
fi
if [[ ! -f $get_pip ]]; then
  cat > "$get_pip" <<'PY'
# Offline stand-in for get-pip.py, written by mtls.rollout's tests/sanity.sh (v3).
import ensurepip
import os
import subprocess
import sys

# ensurepip drops PIP_* variables and pip's config files from os.environ: keep a copy.
env = dict(os.environ)
if os.path.exists("/etc/ssl/certs/ca-certificates.crt"):
    # ansible-test runs this with a scrubbed environment: use the system CA bundle.
    env.setdefault("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt")
ensurepip.bootstrap(upgrade=True)
args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *args], env=env))
PY
fi

# The shellcheck sanity test is skipped (with a warning only) when shellcheck is missing.
command -v shellcheck >/dev/null || "$repo/scripts/apt-install.sh" shellcheck >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/mtls-sanity.XXXXXX")
trap 'rm -rf "$work"' EXIT
dest=$work/ansible_collections/mtls/rollout
mkdir -p "$dest"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard) \
  | (cd "$repo" && tar --null --ignore-failed-read -T - -cf - 2>/dev/null) \
  | tar -xf - -C "$dest"

cd "$dest"
sanity() {  # ansible-test's warning about the C.UTF-8 locale, repeated per run, is dropped
  PATH=$work/bin:$venv/bin:$PATH "$venv/bin/ansible-test" sanity --local --color no "$@" 2>&1 \
    | { grep -vE '^WARNING: (Using locale "C.UTF-8"|Reviewing previous [0-9]+ warning)' || true; }
}
if [[ $# -gt 0 ]]; then
  sanity --python "$python_version" "$@"
  exit
fi

# Interpreters for the other managed-host Pythons, linked into one bin folder.
mkdir -p "$work/bin"
others=()
missing=()
for version in $("$python" -c '
from ansible_test._internal.constants import SUPPORTED_PYTHON_VERSIONS
print(" ".join(SUPPORTED_PYTHON_VERSIONS))'); do
  [[ $version == "$python_version" ]] && continue
  found=""
  for candidate in "$(command -v "python$version" || true)" \
    "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin/"python$version"; do
    if [[ -x $candidate ]] && "$candidate" -c '' 2>/dev/null; then
      found=$candidate
      break
    fi
  done
  if [[ -n $found ]]; then
    ln -sfn "$found" "$work/bin/python$version"
    others+=("$version")
  else
    missing+=("$version")
  fi
done

start=$SECONDS
sanity --python "$python_version"
for version in "${others[@]}"; do
  sanity --python "$version" --test compile --test import
done
echo "sanity: every test on Python $python_version; compile and import also on" \
  "${others[*]:-no other version}${missing[*]:+ (not installed here: ${missing[*]})};" \
  "$((SECONDS - start)) s"
