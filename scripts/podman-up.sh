#!/usr/bin/env bash
# Prepare podman and start its Docker-compatible API socket for Molecule,
# then prove that containers resolve each other's names before any scenario
# or the demo starts (it builds the base image for that, from cache).
#
# Molecule's docker driver, testinfra's docker:// backend and the docker CLI
# all speak the Docker API; podman serves it from `podman system service`.
# Prints `export DOCKER_HOST=...` on stdout; everything else goes to stderr.
#
# On a machine with a real Docker engine you do not need this script: leave
# DOCKER_HOST alone and Molecule uses Docker directly.
source "$(dirname "$0")/lib.sh"

SOCKET=$MTLS_RUN_DIR/podman.sock
PIDFILE=$MTLS_RUN_DIR/podman-service.pid
DROPIN=/etc/containers/containers.conf.d/50-mtls-rollout.conf

install_podman
# testinfra's docker:// backend and the tests call a `docker` command; where
# there is none, podman-docker provides one that drives podman.
command -v docker >/dev/null 2>&1 || apt_install podman-docker

# Some VMs (this project's CI machines among them) need two podman settings:
# - without CAP_SYS_RESOURCE, podman's default ulimits fail with
#   "crun: setrlimit RLIMIT_NOFILE: Operation not permitted";
# - on hybrid cgroups (v1 with a v2 "unified" mount) crun refuses to start
#   containers, so runc is used instead.
# Each setting is written only where this machine needs it.
needs_ulimits=false
needs_runc=false
cap_eff=$(awk '/^CapEff:/ { print $2 }' /proc/self/status)
(( (16#$cap_eff >> 24) & 1 )) || needs_ulimits=true
if [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ] && [ -d /sys/fs/cgroup/unified ]; then
  needs_runc=true
fi
dropin=""
$needs_ulimits && dropin+=$'[containers]\n# No CAP_SYS_RESOURCE here: keep limits within what the VM allows.\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
$needs_runc && dropin+=$'[engine]\n# Hybrid cgroups: crun refuses them, runc copes.\nruntime = "runc"\n'
if [ -n "$dropin" ]; then
  if [ "$(cat "$DROPIN" 2>/dev/null)" != "${dropin%$'\n'}" ]; then
    log "writing $DROPIN (ulimits: $needs_ulimits, runc: $needs_runc)"
    as_root mkdir -p "$(dirname "$DROPIN")"
    printf '%s' "$dropin" | as_root tee "$DROPIN" >/dev/null
  fi
else
  log "this machine needs no podman drop-in"
fi

# Container names must resolve on podman networks: the scenarios and the demo
# reach each container by its alias.
backend=$(podman info --format '{{.Host.NetworkBackend}}')
case $backend in
  netavark)
    apt_install aardvark-dns iptables
    ;;
  cni)
    # Existing containers, images or networks keep podman on CNI, and moving
    # to netavark would take `podman system reset`, which deletes the user's
    # own containers. The dnsname plugin gives CNI networks name resolution.
    log "podman uses its CNI network backend here: adding the dnsname plugin"
    apt_install golang-github-containernetworking-plugin-dnsname
    # Networks made before the plugin was installed still resolve nothing.
    # Recreate this project's (mtls-*) when nothing uses them; others are the user's.
    for net in $(podman network ls --format '{{.Name}}' | grep '^mtls-' || true); do
      [ "$(podman network inspect --format '{{.DNSEnabled}}' "$net")" = true ] && continue
      [ -z "$(podman ps -a --filter "network=$net" --format '{{.ID}}')" ] ||
        die "podman network $net was made without name resolution and still has containers: run 'make clean', then try again"
      log "removing podman network $net (made without name resolution; it is made again when needed)"
      podman network rm "$net" >/dev/null
    done
    ;;
  *)
    die "podman reports the unknown network backend '$backend'"
    ;;
esac

mkdir -p "$MTLS_RUN_DIR"
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null && [ -S "$SOCKET" ]; then
  log "podman API already serving on $SOCKET (pid $(cat "$PIDFILE"))"
else
  rm -f "$SOCKET"
  # setsid: the service must outlive the make invocation that started it.
  # It must not keep descriptors it inherited either: a caller's lock file
  # (`flock LOCK make test`) would stay locked for as long as the service runs.
  (
    for fd in /proc/self/fd/*; do
      fd=${fd##*/}
      if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
    done
    exec setsid podman system service --time=0 "unix://$SOCKET"
  ) >"$MTLS_RUN_DIR/podman-service.log" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  # Poll for the socket to answer, bounded at 30 s.
  for _ in $(seq 1 60); do
    if curl -fsS --unix-socket "$SOCKET" http://d/_ping >/dev/null 2>&1; then break; fi
    kill -0 "$(cat "$PIDFILE")" 2>/dev/null || die "podman system service exited; see $MTLS_RUN_DIR/podman-service.log"
    sleep 0.5
  done
  curl -fsS --unix-socket "$SOCKET" http://d/_ping >/dev/null || die "podman API did not answer on $SOCKET within 30 s"
  log "podman API serving on $SOCKET (pid $(cat "$PIDFILE"))"
fi

# Stdout carries only the export line below.
"$(dirname "$0")/build-base-image.sh" >&2
"$(dirname "$0")/check-container-dns.sh" >&2

printf 'export DOCKER_HOST=unix://%s\n' "$SOCKET"
