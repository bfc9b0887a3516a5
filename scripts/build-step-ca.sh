#!/usr/bin/env bash
# Build a static step-ca 0.19 binary from Debian's packaged Go sources.
#
# No prebuilt step-ca can be downloaded on these machines, so we compile our
# own entry point (scripts/step-ca/main.go) against Debian's -dev packages in
# GOPATH mode, fully offline. The binary is cached under
# $MTLS_CACHE_DIR/step-ca/<recipe key>/ and linked to build/step-ca.
#
# Usage: scripts/build-step-ca.sh            build (or reuse) and print the path
source "$(dirname "$0")/lib.sh"

STEP_CA_VERSION=0.19.0
GO_PACKAGES=(golang-go gcc libc6-dev pkg-config
  golang-github-smallstep-certificates-dev golang-step-cli-utils-dev golang-step-crypto-dev)
SRC_DIR=$MTLS_REPO_ROOT/scripts/step-ca

apt_install "${GO_PACKAGES[@]}"

# The key covers our sources, this script and the exact Debian package versions.
key=$(dpkg-query -W -f='${Package}=${Version}\n' "${GO_PACKAGES[@]}" \
  | recipe_key "$SRC_DIR/main.go" "$0")
out_dir=$MTLS_CACHE_DIR/step-ca/$key
binary=$out_dir/step-ca

if [ -x "$binary" ] && "$binary" version >/dev/null 2>&1; then
  log "step-ca $STEP_CA_VERSION: cached ($binary)"
else
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  mkdir -p "$out_dir"
  build() {
    (cd "$SRC_DIR" && env GO111MODULE=off GOPROXY=off GOFLAGS= CGO_ENABLED=0 \
      GOPATH="$scratch/gopath:/usr/share/gocode" GOCACHE="$MTLS_CACHE_DIR/go-build" \
      go build -trimpath \
      -ldflags "-s -w -X main.Version=$STEP_CA_VERSION -X main.BuildTime=$(date -u +%Y-%m-%dT%H:%MZ)" \
      -o "$scratch/step-ca" .)
  }
  timed "building step-ca $STEP_CA_VERSION from Debian sources" build
  mv "$scratch/step-ca" "$binary"
fi

mkdir -p "$MTLS_BUILD_DIR"
ln -sfn "$binary" "$MTLS_BUILD_DIR/step-ca"
log "$("$binary" version)"
printf '%s\n' "$MTLS_BUILD_DIR/step-ca"
