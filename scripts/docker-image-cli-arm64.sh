#!/usr/bin/env bash
# The Raspberry Pi image: videocall/videocall-cli:$VIDEOCALL_TAG-arm64 (linux/arm64), built by
# docker/Dockerfile.prebuilt --target videocall-cli — the same stages as the x86_64 images —
# from the cross-built binary (make cli-aarch64) on an arm64 Debian base made with debootstrap
# (scripts/docker-base-images.sh arm64). The runtime stage's RUN (the non-root user) runs under
# qemu: scripts/binfmt-arm64.sh registers it for the build unless it is there, and removes
# what it registered at the end. Checks that the image is arm64, runs as uid 10001 and that
# the binary starts in it (under emulation). No registry: push it from here with `docker save`
# or build it on the Pi itself (docs/DEPLOY.md).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "[cli-arm64] $*"; }
target_dir=${CARGO_TARGET_DIR:-target}
tag=${VIDEOCALL_TAG:-latest}-arm64
image=videocall/videocall-cli:$tag
base=${BASE_IMAGE_ARM64:-videocall-local/debian-arm64:bookworm-slim}
bin=$target_dir/aarch64-unknown-linux-gnu/release/videocall-cli

[ -x "$bin" ] || { echo "[cli-arm64] missing $bin (make cli-aarch64 builds it)" >&2; exit 1; }
file "$bin" | grep -q "ARM aarch64" || { echo "[cli-arm64] $bin is not an aarch64 ELF" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "[cli-arm64] no Docker engine answers" >&2; exit 1; }

context=$(mktemp -d)
emulation=$(scripts/binfmt-arm64.sh register)
cleanup() {
  rm -rf "$context"
  [ "$emulation" = registered ] && scripts/binfmt-arm64.sh unregister
  true
}
trap cleanup EXIT
[ "$emulation" = registered ] && say "registered qemu-aarch64 with binfmt_misc for this build (removed at the end)"

# BASE_IMAGE_ARM64 given (e.g. an arm64 debian:bookworm-slim from a registry): used as it is.
[ -n "${BASE_IMAGE_ARM64:-}" ] || scripts/docker-base-images.sh arm64

mkdir -p "$context/bin"
cp "$bin" "$context/bin/"
cp docker/healthcheck.sh "$context/"
cp /etc/ssl/certs/ca-certificates.crt "$context/"
started=$SECONDS
docker build -q --platform linux/arm64 -f docker/Dockerfile.prebuilt --build-arg "BASE_IMAGE=$base" \
  --target videocall-cli -t "$image" "$context" >/dev/null
docker image prune -f --filter label=org.videocall.image=true >/dev/null

read -r arch user <<<"$(docker image inspect -f '{{ .Architecture }} {{ .Config.User }}' "$image")"
[ "$arch" = arm64 ] || { echo "[cli-arm64] $image is $arch, not arm64" >&2; exit 1; }
[ "$user" = 10001:10001 ] || { echo "[cli-arm64] $image runs as '$user', not 10001:10001" >&2; exit 1; }
# The binary starts in the image (its own arm64 libraries; emulated here).
version=$(docker run --rm --platform linux/arm64 "$image" --version)
[[ "$version" == videocall-cli* ]] || { echo "[cli-arm64] $image did not run: $version" >&2; exit 1; }
id=$(docker run --rm --platform linux/arm64 --entrypoint id "$image" -u)
[ "$id" = 10001 ] || { echo "[cli-arm64] runs as uid $id" >&2; exit 1; }
say "$image: linux/$arch, uid $id, $version ($(docker image inspect -f '{{ .Size }}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }'), built in $((SECONDS - started)) s)"
