#!/usr/bin/env bash
# Makes the base images the compose stack needs from Debian's packages, for machines without a
# container registry (docker/compose.local-images.yaml selects them):
#   videocall-local/debian:bookworm-slim  runtime base of our images (minbase)
#   videocall-local/nats:latest           nats-server (+ wget for the health check)
#   videocall-local/postgres:latest       Debian's postgresql, official image's variables
# Each is `debootstrap --variant=minbase` (≈ 50 s) imported with `docker import`. The root file
# systems are cached as tarballs under $VIDEOCALL_CACHE (default ~/.cache/videocall/base-images),
# keyed by the suite, the package list and the files added, and an image already tagged from
# the same key is kept: later runs cost nothing. The three are made at once (≈ 1–3 min cold).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "[base-images] $*"; }
cache=${VIDEOCALL_CACHE:-$HOME/.cache/videocall/base-images}
suite=bookworm
mkdir -p "$cache"

docker info >/dev/null 2>&1 || { echo "[base-images] no Docker engine answers (scripts/test-compose.sh starts one)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "[base-images] debootstrap is missing (scripts/ensure-deps.sh docker)" >&2; exit 1; }

# The machine's own Debian mirror (never a host name written here).
mirror() {
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources
  else
    awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list
  fi
}

# base_image TAG "PACKAGES" EXTRA_FILE [docker import --change ...]
# EXTRA_FILE (or "") is copied into the root file system as /usr/local/bin/docker-entrypoint.sh.
base_image() {
  local tag=$1 packages=$2 extra=$3
  shift 3
  # The root file system is keyed by what goes into it, the image also by its settings.
  local rootfs_key key
  rootfs_key=$( {
    echo "$suite minbase $packages"
    [ -n "$extra" ] && cat "$extra"
    true
  } | sha256sum | cut -c1-16)
  key=$(echo "$rootfs_key" "$@" | sha256sum | cut -c1-16)
  local have
  have=$(docker image inspect -f '{{ index .Config.Labels "org.videocall.base-key" }}' "$tag" 2>/dev/null || true)
  if [ "$have" = "$key" ]; then
    say "$tag is up to date ($key)"
    return
  fi
  local tarball="$cache/${tag//[\/:]/_}-$rootfs_key.tar"
  if [ ! -s "$tarball" ]; then
    local rootfs
    rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
    local started=$SECONDS
    say "debootstrap $suite for $tag (packages: ${packages:-none}; about a minute)"
    local include=()
    [ -n "$packages" ] && include=(--include="$packages")
    if ! debootstrap --variant=minbase "${include[@]}" "$suite" "$rootfs" "$(mirror)" >"$rootfs.log" 2>&1; then
      tail -n 20 "$rootfs.log" >&2
      rm -rf "$rootfs" "$rootfs.log"
      exit 1
    fi
    [ -n "$extra" ] && install -m 0755 "$extra" "$rootfs/usr/local/bin/docker-entrypoint.sh"
    # What the slim image leaves out: package lists and caches.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs" "$rootfs.log"
    say "cached $tarball ($(du -h "$tarball" | cut -f1), $((SECONDS - started)) s)"
    # Older tarballs of this image are replaced by this one.
    find "$cache" -maxdepth 1 -name "${tag//[\/:]/_}-*.tar" ! -name "$(basename "$tarball")" -delete
  fi
  local changes=(--change "LABEL org.videocall.base-key=$key")
  for change in "$@"; do changes+=(--change "$change"); done
  local previous
  previous=$(docker image inspect -f '{{ .Id }}' "$tag" 2>/dev/null || true)
  docker import "${changes[@]}" "$tarball" "$tag" >/dev/null
  # The image this one replaces, unless a container still uses it.
  [ -n "$previous" ] && docker rmi "$previous" >/dev/null 2>&1 || true
  say "imported $tag ($key)"
}

path='ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
# The three at once: debootstrap waits on the mirror and dpkg more than on the CPU.
pids=()
base_image videocall-local/debian:bookworm-slim "" "" "$path" 'CMD ["bash"]' &
pids+=($!)
base_image videocall-local/nats:latest "nats-server,wget" "" "$path" 'CMD ["nats-server"]' \
  'EXPOSE 4222 8222' &
pids+=($!)
base_image videocall-local/postgres:latest "postgresql" docker/local-base/postgres-entrypoint.sh \
  "$path" 'ENV PGDATA=/var/lib/postgresql/data' 'ENTRYPOINT ["docker-entrypoint.sh"]' \
  'CMD ["postgres"]' 'EXPOSE 5432' &
pids+=($!)
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit "$status"
