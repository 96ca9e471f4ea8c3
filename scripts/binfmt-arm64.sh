#!/usr/bin/env bash
# Emulation of linux/arm64 for Docker on an x86_64 host: Debian's qemu-user-static registered
# with the kernel's binfmt_misc, so that `debootstrap --arch=arm64`, `docker build --platform
# linux/arm64` (its RUN steps) and `docker run` of an arm64 image work here.
#   scripts/binfmt-arm64.sh register    prints `registered` when it registered the handler now,
#                                       `present` when one was there already (leave that one)
#   scripts/binfmt-arm64.sh unregister  removes the handler (only call it after `registered`)
# The registration is the machine's (the kernel's), not a container's: callers unregister what
# they registered when they finish, as the compose test stops the dockerd it started.
set -euo pipefail

dir=/proc/sys/fs/binfmt_misc
# Debian's line (qemu-user-static): the F flag opens the interpreter now, so containers and
# chroots need no qemu inside them.
conf=/usr/lib/binfmt.d/qemu-aarch64.conf

case "${1:-}" in
  register)
    if [ "$(uname -m)" = aarch64 ]; then
      echo present
      exit 0
    fi
    [ -f "$conf" ] || { echo "[binfmt] $conf is missing (scripts/ensure-deps.sh arm64)" >&2; exit 1; }
    if [ ! -e "$dir/register" ]; then
      mount -t binfmt_misc binfmt_misc "$dir" \
        || { echo "[binfmt] cannot mount binfmt_misc at $dir (needs root)" >&2; exit 1; }
    fi
    if [ -e "$dir/qemu-aarch64" ]; then
      grep -qx enabled "$dir/qemu-aarch64" || { echo "[binfmt] $dir/qemu-aarch64 is there but disabled" >&2; exit 1; }
      echo present
      exit 0
    fi
    grep -v '^#' "$conf" >"$dir/register"
    grep -qx enabled "$dir/qemu-aarch64" || { echo "[binfmt] registering qemu-aarch64 failed" >&2; exit 1; }
    echo registered
    ;;
  unregister)
    [ -e "$dir/qemu-aarch64" ] && echo -1 >"$dir/qemu-aarch64"
    exit 0
    ;;
  *)
    echo "usage: $0 register|unregister" >&2
    exit 2
    ;;
esac
