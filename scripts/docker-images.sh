#!/usr/bin/env bash
# Builds the videocall images from binaries built on the host (docker/Dockerfile.prebuilt) on the
# local base image (scripts/docker-base-images.sh, run first):
#   videocall/actix-api, videocall/webtransport-server, videocall/videocall-cli,
#   videocall/videocall-bot, tagged $VIDEOCALL_TAG (latest): the names docker-compose.yaml uses.
# Needs the binaries in $CARGO_TARGET_DIR/$PROFILE (PROFILE: release, or debug) and the UI in
# $UI_DIST (yew-ui/dist); `make images` builds both first.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "[images] $*"; }
target_dir=${CARGO_TARGET_DIR:-target}
ui=${UI_DIST:-yew-ui/dist}
tag=${VIDEOCALL_TAG:-latest}
base=${BASE_IMAGE:-videocall-local/debian:bookworm-slim}
profile=${PROFILE:-release}
bins=(actix-api webtransport-server videocall-dev-cert videocall-cli videocall-bot)

for bin in "${bins[@]}"; do
  [ -x "$target_dir/$profile/$bin" ] || { echo "[images] missing $target_dir/$profile/$bin (make images builds it)" >&2; exit 1; }
done
[ -f "$ui/index.html" ] || { echo "[images] missing $ui/index.html (make ui builds it)" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "[images] no Docker engine answers" >&2; exit 1; }

scripts/docker-base-images.sh

# The build context: only what the images hold (a few tens of MB), not the repository.
context="$target_dir/docker-context"
rm -rf "$context"
mkdir -p "$context/bin"
for bin in "${bins[@]}"; do cp "$target_dir/$profile/$bin" "$context/bin/"; done
cp -r "$ui" "$context/ui"
cp docker/healthcheck.sh "$context/"
cp /etc/ssl/certs/ca-certificates.crt "$context/"

for image in actix-api webtransport-server videocall-cli videocall-bot; do
  started=$SECONDS
  docker build -q -f docker/Dockerfile.prebuilt --build-arg "BASE_IMAGE=$base" \
    --target "$image" -t "videocall/$image:$tag" "$context" >/dev/null
  say "videocall/$image:$tag ($(docker image inspect -f '{{ .Size }}' "videocall/$image:$tag" | awk '{ printf "%.0f MB", $1 / 1e6 }'), $((SECONDS - started)) s)"
done
# The images these replaced (untagged now), and nothing else.
docker image prune -f --filter label=org.videocall.image=true >/dev/null
