#!/usr/bin/env bash
# Makes the base images the compose stack needs from Debian's packages, for machines without a
# container registry (docker/compose.local-images.yaml selects them):
#   videocall-local/debian:bookworm-slim  runtime base of our images (minbase + libvpx7)
#   videocall-local/nats:latest           nats-server (+ wget for the health check)
#   videocall-local/postgres:latest       Debian's postgresql, official image's variables
# Each is `debootstrap --variant=minbase` (≈ 50 s) imported with `docker import`. The root file
# systems are cached as tarballs under $VIDEOCALL_CACHE (default ~/.cache/videocall/base-images),
# keyed by the suite, the package list and the files added, and an image already tagged from
# the same key is kept: later runs cost nothing. The three are made at once (≈ 1–3 min cold).
#
# `scripts/docker-base-images.sh arm64` makes only the runtime base for linux/arm64 (the
# Raspberry Pi CLI image, scripts/docker-image-cli-arm64.sh):
#   videocall-local/debian-arm64:bookworm-slim
# debootstrap --arch=arm64 runs the packages' scripts under qemu (scripts/binfmt-arm64.sh
# register, first): ≈ 2–5 min once, cached like the others.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "[base-images] $*"; }
cache=${VIDEOCALL_CACHE:-$HOME/.cache/videocall/base-images}
suite=bookworm
arch=${1:-$(dpkg --print-architecture)}
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

# load_foreign TAG TARBALL KEY [ENV/CMD changes]: the root file system as the one layer of an
# image archive (docker save's format) for linux/$arch, loaded with `docker load`.
load_foreign() {
  python3 - "$arch" "$@" <<'PY' | docker load -q >/dev/null
import hashlib, io, json, shlex, sys, tarfile, time
arch, tag, tarball, key, *changes = sys.argv[1:]
digest = hashlib.sha256()
with open(tarball, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        digest.update(chunk)
config = {"Labels": {"org.videocall.base-key": key}}
for change in changes:
    word, rest = change.split(" ", 1)
    if word == "ENV":
        config.setdefault("Env", []).append(rest)
    elif word in ("CMD", "ENTRYPOINT"):
        config[word.capitalize() if word == "CMD" else "Entrypoint"] = json.loads(rest)
    else:
        sys.exit(f"load_foreign: unsupported change {change!r}")
diff_id = "sha256:" + digest.hexdigest()
image = json.dumps({
    "architecture": arch, "os": "linux", "config": config,
    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    "history": [{"created_by": "debootstrap --variant=minbase --arch=" + arch}],
}).encode()
name = hashlib.sha256(image).hexdigest()
manifest = json.dumps([{"Config": name + ".json", "RepoTags": [tag], "Layers": ["layer.tar"]}]).encode()
out = tarfile.open(fileobj=sys.stdout.buffer, mode="w|")
for member, data in ((name + ".json", image), ("manifest.json", manifest)):
    info = tarfile.TarInfo(member)
    info.size = len(data)
    out.addfile(info, io.BytesIO(data))
out.add(tarball, arcname="layer.tar")
out.close()
PY
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
    # The host's architecture keeps the keys (and cached tarballs) of the images made before.
    [ "$arch" = "$(dpkg --print-architecture)" ] || echo "arch $arch"
    [ -n "$extra" ] && cat "$extra"
    true
  } | sha256sum | cut -c1-16)
  key=$(echo "$rootfs_key" "$@" | sha256sum | cut -c1-16)
  local have
  have=$(docker image inspect -f '{{ index .Config.Labels "org.videocall.base-key" }} {{ .Architecture }}' "$tag" 2>/dev/null || true)
  if [ "$have" = "$key $arch" ]; then
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
    if ! debootstrap --variant=minbase --arch="$arch" "${include[@]}" "$suite" "$rootfs" "$(mirror)" >"$rootfs.log" 2>&1; then
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
  if [ "$arch" = "$(dpkg --print-architecture)" ]; then
    docker import "${changes[@]}" "$tarball" "$tag" >/dev/null
  else
    # `docker import --platform` is ignored by a daemon without experimental features (the
    # image would say amd64): load it as an image archive whose config names the architecture.
    load_foreign "$tag" "$tarball" "$key" "$@"
  fi
  local got
  got=$(docker image inspect -f '{{ .Architecture }}' "$tag")
  [ "$got" = "$arch" ] || { echo "[base-images] $tag is $got, not $arch" >&2; exit 1; }
  # The image this one replaces, unless a container still uses it.
  [ -n "$previous" ] && docker rmi "$previous" >/dev/null 2>&1 || true
  say "imported $tag ($key)"
}

path='ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
if [ "$arch" != "$(dpkg --print-architecture)" ]; then
  base_image "videocall-local/debian-$arch:bookworm-slim" "" "" "$path" 'CMD ["bash"]'
  exit 0
fi
# The three at once: debootstrap waits on the mirror and dpkg more than on the CPU.
pids=()
# libvpx7: videocall-cli's VP8/VP9 decoding (the arm64 CLI is built without it).
base_image videocall-local/debian:bookworm-slim "libvpx7" "" "$path" 'CMD ["bash"]' &
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
