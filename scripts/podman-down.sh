#!/usr/bin/env bash
# Stop what podman-up.sh started, by the PID it recorded (never by name).
source "$(dirname "$0")/lib.sh"

PIDFILE=$MTLS_RUN_DIR/podman-service.pid
if [ -f "$PIDFILE" ]; then
  pid=$(cat "$PIDFILE")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping podman API service (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$PIDFILE" "$MTLS_RUN_DIR/podman.sock"
else
  log "no podman API service recorded in $PIDFILE"
fi
