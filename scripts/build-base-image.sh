#!/usr/bin/env bash
# Build the Debian 12 systemd base image for the test containers, without a registry.
#
# debootstrap makes a minimal bookworm rootfs, packed into a tarball cached under
# $MTLS_CACHE_DIR/base-image/<recipe key>/, which `podman import` (or
# `docker import` with MTLS_ENGINE=docker) turns into
# $MTLS_BASE_IMAGE. The image carries the recipe key as a label, so a changed
# recipe rebuilds it and an unchanged one is reused.
source "$(dirname "$0")/lib.sh"

SUITE=bookworm
INCLUDE=python3,python3-apt,systemd,systemd-sysv,iproute2,ca-certificates,curl,openssl,procps,sudo

apt_install debootstrap
if [ "$MTLS_ENGINE" = podman ]; then install_podman; fi
mirror=$(debian_mirror)
security_mirror=${mirror%/debian}/debian-security
key=$(printf '%s\n' "$SUITE" "$INCLUDE" "$mirror" | recipe_key "$0")
cache=$MTLS_CACHE_DIR/base-image/$key
tarball=$cache/rootfs.tar.gz

if [ "$("$MTLS_ENGINE" image inspect --format '{{ index .Labels "mtls.recipe" }}' "$MTLS_BASE_IMAGE" 2>/dev/null)" = "$key" ]; then
  log "base image $MTLS_BASE_IMAGE: up to date (recipe $key)"
  exit 0
fi

if [ -s "$tarball" ]; then
  log "rootfs tarball: cached ($tarball)"
else
  mkdir -p "$cache"
  rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'as_root rm -rf "$rootfs"' EXIT
  timed "debootstrap $SUITE from $mirror" \
    as_root debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$rootfs" "$mirror"
  # Leave no package lists, and date the empty lists directory at the epoch so
  # apt's cache_valid_time sees it as stale and updates before installing.
  as_root chroot "$rootfs" apt-get clean
  as_root find "$rootfs/var/lib/apt/lists" -mindepth 1 -delete
  as_root touch -d @0 "$rootfs/var/lib/apt/lists"
  as_root tee "$rootfs/etc/apt/sources.list" >/dev/null <<SOURCES
deb $mirror $SUITE main
deb $mirror $SUITE-updates main
deb $security_mirror $SUITE-security main
SOURCES
  # Each container gets its own identity and resolver at start.
  as_root truncate -s 0 "$rootfs/etc/machine-id"
  as_root rm -f "$rootfs/etc/hostname" "$rootfs/etc/resolv.conf"
  timed "packing rootfs" as_root tar --numeric-owner -C "$rootfs" -czf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
fi

timed "importing $MTLS_BASE_IMAGE" "$MTLS_ENGINE" import \
  --change 'CMD ["/sbin/init"]' \
  --change 'STOPSIGNAL=SIGRTMIN+3' \
  --change 'ENV container=podman' \
  --change "LABEL mtls.recipe=$key" \
  "$tarball" "$MTLS_BASE_IMAGE" >/dev/null
log "base image $MTLS_BASE_IMAGE ready (recipe $key)"
