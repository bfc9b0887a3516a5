# shellcheck shell=bash
# Shared helpers for the test-environment scripts. Source it; do not run it.

set -euo pipefail

MTLS_REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Expensive artefacts live outside the checkout so fresh clones reuse them.
MTLS_CACHE_DIR=${MTLS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mtls-rollout}
# Per-checkout runtime state: sockets and PID files of what the scripts start.
MTLS_RUN_DIR=${MTLS_RUN_DIR:-$MTLS_REPO_ROOT/.run}
# Stable per-checkout links to the cached artefacts.
MTLS_BUILD_DIR=${MTLS_BUILD_DIR:-$MTLS_REPO_ROOT/build}
MTLS_BASE_IMAGE=${MTLS_BASE_IMAGE:-localhost/mtls-rollout-debian:bookworm}
# podman (default; served to Molecule through its Docker API socket) or docker.
MTLS_ENGINE=${MTLS_ENGINE:-podman}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# timed LABEL CMD...: run CMD and report how long it took.
timed() {
  local label=$1 start=$SECONDS
  shift
  log "$label ..."
  "$@"
  log "$label done in $((SECONDS - start)) s"
}

# as_root CMD...: run CMD as root, through sudo when we are not root.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# recipe_key FILE...: a short hash of the given files and of extra text on stdin.
recipe_key() {
  { cat "$@"; cat; } | sha256sum | cut -c1-16
}

# apt_install PKG...: install missing Debian packages without upgrading others.
apt_install() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  # A stale or missing package list makes apt find nothing; refresh it once per day.
  if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -n1)" ]; then
    as_root apt-get update -q >&2
  fi
  # Stdout of the scripts is kept for their results; apt talks on stderr.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-upgrade --no-install-recommends "${missing[@]}" >&2
}

# install_podman: podman, runc, and a network stack that resolves container names.
#
# podman's golang-github-containers-common depends on the virtual package
# container-network-stack and only recommends netavark. With
# --no-install-recommends apt picks containernetworking-plugins (CNI) and no
# DNS plugin, and containers cannot resolve each other. Naming netavark and
# aardvark-dns in the same install makes apt pick them instead. netavark runs
# iptables for every network but does not depend on it, and a fresh machine
# has none ("netavark: No such file or directory").
install_podman() {
  if command -v podman >/dev/null 2>&1; then
    apt_install runc
  else
    apt_install netavark aardvark-dns iptables podman runc
  fi
}

# network_backend: which network stack the container engine uses, for messages.
network_backend() {
  if [ "$MTLS_ENGINE" = podman ]; then
    printf 'podman network backend: %s\n' "$(podman info --format '{{.Host.NetworkBackend}}' 2>/dev/null || echo unknown)"
  else
    printf '%s engine\n' "$MTLS_ENGINE"
  fi
}

# debian_mirror: the first non-security Debian archive URI this machine's apt uses.
debian_mirror() {
  local uri
  uri=$(
    {
      sed -nE 's/^URIs:[[:space:]]*([^[:space:]]+).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null
      sed -nE 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/p' /etc/apt/sources.list 2>/dev/null
    } | grep -v -- '-security' | head -n1 || true
  )
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}
