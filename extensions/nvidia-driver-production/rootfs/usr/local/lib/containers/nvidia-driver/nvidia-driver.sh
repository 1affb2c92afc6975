#!/bin/sh
# The nvidia-driver extension service: presents the driver root at /run/nvidia/driver, the path where the
# NVIDIA GPU Operator looks for a driver container's root, then runs nvidia-persistenced in the foreground
# until Talos stops the service. Runs inside the service container (busybox sh), see nvidia-driver.yaml.
set -eu

driver_root=/usr/local/glibc
target=/run/nvidia/driver
state=/var/run/nvidia-persistenced
persistenced="$driver_root/usr/bin/nvidia-persistenced"

log() { echo "nvidia-driver: $*"; }

mkdir -p "$target"
if mountpoint -q "$target"; then
  log "$target is already mounted"
else
  mount --rbind "$driver_root" "$target"
  mount --make-rshared "$target"
  log "bound $driver_root at $target"
fi

# A previous instance (the service restarted) leaves its pid file: stop it first.
if [ -f "$state/nvidia-persistenced.pid" ]; then
  pid=$(cat "$state/nvidia-persistenced.pid")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    log "stopping the previous nvidia-persistenced ($pid)"
    kill "$pid" || true
    sleep 1
  fi
  rm -rf "$state"
fi

if [ ! -x "$persistenced" ]; then
  log "$persistenced is missing: is the userspace driver in this extension?"
  exit 1
fi

cleanup() {
  [ -n "${child:-}" ] && kill "$child" 2>/dev/null || true
  umount -l "$target" 2>/dev/null || true
}
trap cleanup INT TERM

export LD_LIBRARY_PATH="$driver_root/usr/lib"
"$persistenced" --foreground --verbose &
child=$!
log "nvidia-persistenced started ($child)"
wait "$child"
