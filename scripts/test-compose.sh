#!/usr/bin/env bash
# The compose test (make test-compose): the stack users start with `docker compose up`, for real.
#  1. a Docker engine: the one that answers, else a dockerd started here (and stopped at the end)
#  2. images: local base images from Debian packages (cached) and ours from the host's release
#     binaries (scripts/docker-images.sh); docker-compose.yaml + docker/compose.local-images.yaml
#  3. `docker-compose up -d`, ports published on 127.0.0.1 (free ports), health with deadlines
#  4. through the published port: /healthz, /metrics (NATS connected), /api/v1/config (the
#     certificate the `certs` service made); PostgreSQL accepts the relays' DATABASE_URL
#  5. `videocall-cli stream` (WebTransport → webtransport-server) → NATS → actix-api →
#     `videocall-cli receive` (WebSocket), both on the compose network: ≥ 90 % of frames decoded
#  6. two Chromium pages (WebTransport and WebSocket) see each other; `docker-compose restart
#     actix-api` mid-meeting and they recover (e2e/compose/compose.test.js)
#  7. `docker-compose down -v` leaves no container, network or volume of the project
#  5b. a protected meeting needs its token: a guest logs in and creates one through the API; the
#     CLI without a token is refused (403), with the room token the join returns it streams
#  5c. ARM64_CLI=1 (make compose / test-compose): the Raspberry Pi image
#     (videocall/videocall-cli:latest-arm64, scripts/docker-image-cli-arm64.sh) streams over
#     WebTransport to a receiver on the compose network, the arm64 binary emulated by qemu
#     (registered with binfmt_misc for the test when it is not, and removed at the end)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "[compose] $(date +%T) $*"; }
fail() { echo "[compose] FAILED: $*" >&2; exit 1; }
started_at=$SECONDS
cache=$HOME/.cache/videocall
mkdir -p "$cache"
project=videocall-test-$$
# Absolute: the browser test runs the restart from e2e/.
files=(-f "$PWD/docker-compose.yaml" -f "$PWD/docker/compose.local-images.yaml")
compose() { timeout -k 5 "${COMPOSE_TIMEOUT:-180}" docker-compose -p "$project" "${files[@]}" "$@"; }
work=$(mktemp -d)
dockerd_pid=
receiver=$project-receiver
stack_up=0
emulation=

cleanup() {
  local rc=$?
  if [ "$stack_up" = 1 ]; then
    if [ "$rc" -ne 0 ]; then
      echo "[compose] logs of the stack (last 40 lines each):" >&2
      compose logs --no-color --tail 40 >&2 2>&1 || true
      docker logs "$receiver" >&2 2>&1 || true
    fi
    docker rm -f "$receiver" >/dev/null 2>&1 || true
    compose down -v --remove-orphans --timeout 10 >/dev/null 2>&1 || true
  fi
  if [ "$emulation" = registered ]; then
    say "removing the qemu-aarch64 binfmt handler this test registered"
    scripts/binfmt-arm64.sh unregister || true
  fi
  if [ -n "$dockerd_pid" ]; then
    say "stopping the dockerd this test started (pid $dockerd_pid)"
    kill "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

# Polls `$@` until it succeeds or `deadline` seconds pass.
wait_for() {
  local what=$1 deadline=$2
  shift 2
  local end=$((SECONDS + deadline))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || fail "$what: not within ${deadline} s"
    sleep 0.5
  done
}

# 1. The engine.
if docker info >/dev/null 2>&1; then
  say "using the Docker engine that answers ($(docker info -f '{{ .ServerVersion }}'))"
else
  say "no Docker engine answers: starting dockerd (log $cache/dockerd.log)"
  setsid dockerd >"$cache/dockerd.log" 2>&1 &
  dockerd_pid=$!
  end=$((SECONDS + 60))
  until docker info >/dev/null 2>&1; do
    if ! kill -0 "$dockerd_pid" 2>/dev/null || [ $SECONDS -ge $end ]; then
      tail -n 5 "$cache/dockerd.log" >&2
      # Where no engine can run (no privileges for namespaces), say so; CI must not skip.
      [ "${CI:-}" = true ] && fail "dockerd did not start"
      echo "[compose] SKIPPED: no Docker engine could be started here (log $cache/dockerd.log)" >&2
      exit 0
    fi
    sleep 0.5
  done
  say "dockerd $(docker info -f '{{ .ServerVersion }}') is up (pid $dockerd_pid)"
fi

# 2. Images.
t=$SECONDS
if [ "${ARM64_CLI:-}" = 1 ]; then
  emulation=$(scripts/binfmt-arm64.sh register)
  [ "$emulation" = registered ] && say "registered qemu-aarch64 with binfmt_misc for the arm64 image (removed at the end)"
  # The arm64 base (debootstrap under qemu: minutes, once) alongside the others.
  scripts/docker-base-images.sh arm64 >"$work/base-arm64.log" 2>&1 &
  arm64_base=$!
fi
scripts/docker-images.sh
if [ "${ARM64_CLI:-}" = 1 ]; then
  wait "$arm64_base" || { cat "$work/base-arm64.log" >&2; fail "the arm64 base image"; }
  cat "$work/base-arm64.log"
  scripts/docker-image-cli-arm64.sh
fi
say "images ready in $((SECONDS - t)) s"
# What the images promise (docs/DEPLOY.md): a non-root user, a health check on the servers, and
# no secret inside (no such variable, an empty /certs: certificates come from a volume).
images=(actix-api webtransport-server videocall-cli videocall-bot)
[ "${ARM64_CLI:-}" = 1 ] && images+=("videocall-cli:${VIDEOCALL_TAG:-latest}-arm64")
for image in "${images[@]}"; do
  [[ "$image" == *:* ]] || image=$image:${VIDEOCALL_TAG:-latest}
  image=videocall/$image
  read -r user health <<<"$(docker image inspect -f '{{ .Config.User }} {{ if .Config.Healthcheck }}{{ index .Config.Healthcheck.Test 0 }}{{ end }}' "$image")"
  [ "$user" = 10001:10001 ] || fail "$image runs as '$user', not 10001:10001"
  case "$image" in
    */actix-api:* | */webtransport-server:*) [ "$health" = CMD ] || fail "$image has no HEALTHCHECK" ;;
    *) [ "$health" = NONE ] || fail "$image: a client's health check should be NONE, is '$health'" ;;
  esac
  if docker image inspect -f '{{ range .Config.Env }}{{ println . }}{{ end }}' "$image" | grep -E '^[A-Z_]*(SECRET|PASSWORD|TOKEN|DATABASE_URL|KEY)[A-Z_]*=' >"$work/env"; then
    fail "$image has a secret in its environment: $(cut -d= -f1 "$work/env" | paste -sd' ')"
  fi
  left=$(docker run --rm --platform "linux/$(docker image inspect -f '{{ .Architecture }}' "$image")" --entrypoint ls "$image" -A /certs)
  [ -z "$left" ] || fail "$image holds files in /certs: $left"
done
say "images: uid 10001, health checks on the servers, no secret in the environment or /certs (${#images[@]} images)"

# 3. Up, on free ports of 127.0.0.1.
free_port() { python3 -c 'import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_STREAM if sys.argv[1]=="tcp" else socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' "$1"; }
export VIDEOCALL_BIND=127.0.0.1 VIDEOCALL_HTTP_PORT VIDEOCALL_WT_PORT POSTGRES_PASSWORD JWT_SECRET
VIDEOCALL_HTTP_PORT=$(free_port tcp)
VIDEOCALL_WT_PORT=$(free_port udp)
POSTGRES_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
JWT_SECRET=$(head -c 32 /dev/urandom | base64)
base=http://127.0.0.1:$VIDEOCALL_HTTP_PORT
t=$SECONDS
stack_up=1
say "docker-compose -p $project up -d (http $VIDEOCALL_HTTP_PORT/tcp, webtransport $VIDEOCALL_WT_PORT/udp)"
compose up -d --no-build --quiet-pull 2>&1 | sed 's/^/    /'
healthy() { [ "$(docker inspect -f '{{ .State.Health.Status }}' "$(compose ps -q "$1")")" = healthy ]; }
for service in nats postgres actix-api webtransport-server; do
  wait_for "$service healthy" 90 healthy "$service"
done
say "all services healthy $((SECONDS - t)) s after up"

# 4. Through the published port.
curl -fsS --max-time 5 "$base/healthz" >"$work/healthz" || fail "/healthz did not answer 200"
curl -fsS --max-time 5 "$base/metrics" >"$work/metrics" || fail "/metrics did not answer 200"
grep -q '^videocall_bus_connected{bus="nats"} 1' "$work/metrics" || fail "actix-api is not connected to NATS: $(grep bus_connected "$work/metrics")"
curl -fsS --max-time 5 "$base/api/v1/config" >"$work/config"
python3 - "$work/config" "$VIDEOCALL_WT_PORT" <<'EOF' || fail "/api/v1/config: $(cat "$work/config")"
import json, sys
config = json.load(open(sys.argv[1]))
assert config["webtransport_port"] == int(sys.argv[2]), config
assert len(config["certificate_hash"]) == 32, config
EOF
cert_hex=$(compose logs --no-color certs | grep -o 'SHA-256 [0-9a-f]*' | tail -n1 | cut -d' ' -f2)
served_hex=$(curl -fsS --max-time 5 "$base/api/v1/webtransport/certificate_hash" | python3 -c 'import json,sys; print(json.load(sys.stdin)["hex"])')
[ -n "$cert_hex" ] && [ "$cert_hex" = "$served_hex" ] || fail "certificate hash: certs made ${cert_hex:-none}, actix-api serves $served_hex"
database_url=$(compose exec -T actix-api printenv DATABASE_URL)
compose exec -T postgres psql "${database_url/@postgres:/@127.0.0.1:}" -tAc 'select 1' | grep -qx 1 \
  || fail "PostgreSQL does not accept the relays' DATABASE_URL"
# What a user of `docker compose up` is told to open (the container's port: 8080 by default).
# (Through a file: grep -q closing the pipe early would fail the pipeline under pipefail.)
compose logs --no-color actix-api >"$work/actix-api.log" 2>&1
grep -q 'open      http://localhost:8080/meeting/<your-name>/<meeting-id>' "$work/actix-api.log" \
  || fail "actix-api did not print the URL to open: $(grep -A3 'videocall is running' "$work/actix-api.log")"
say "/healthz 200, /metrics (NATS connected), /api/v1/config (port $VIDEOCALL_WT_PORT, certificate ${cert_hex:0:16}…), PostgreSQL accepts DATABASE_URL, the URL to open printed"

# cli_across WHAT MEETING FRAMES FPS STREAMER...: a receiver (the cli service, over WebSocket to
# actix-api) joins MEETING, then STREAMER... (a command taking videocall-cli's stream arguments)
# sends FRAMES test-pattern frames as user `pi` over WebTransport to webtransport-server;
# >= 90 % of them must be sent and decoded across the relays.
cli_across() {
  local what=$1 meeting=$2 frames=$3 fps=$4
  shift 4
  local t=$SECONDS
  compose run -d --name "$receiver" cli receive --user-id rec --meeting-id "$meeting" \
    --transport websocket --url http://actix-api:8080 --out /tmp/rec --print-frames >/dev/null
  wait_for "receiver joined" 30 bash -c "docker logs '$receiver' 2>&1 | grep -q 'joined meeting'"
  "$@" stream --user-id pi --meeting-id "$meeting" --test-pattern \
    --resolution 320x240 --fps "$fps" --frames "$frames" >"$work/stream.out" 2>"$work/stream.err" \
    || { cat "$work/stream.err" >&2; fail "$what: videocall-cli stream failed"; }
  local sent received transport
  sent=$(sed -n 's/^sent \([0-9]*\) frames.*/\1/p' "$work/stream.out")
  wait_for "receiver saw the stream end" 30 bash -c "docker logs '$receiver' 2>&1 | grep -qE '^(frame pi $((frames - 1)) |left pi)'"
  docker stop -t 15 "$receiver" >/dev/null
  docker logs "$receiver" >"$work/receive.out" 2>/dev/null
  received=$(sed -n 's/^received from pi: \([0-9]*\) frames.*/\1/p' "$work/receive.out")
  transport=$(grep -m1 '^joined meeting' "$work/stream.out" || true)
  # The first frames can go before the receiver holds the streamer's key (end-to-end encrypted
  # meeting; RSA is slow under qemu): count from the first decoded frame (in the first half).
  local first
  first=$(sed -n 's/^frame pi \([0-9]*\) .*/\1/p' "$work/receive.out" | head -n1)
  say "$what: sent ${sent:-0}, decoded ${received:-0} from frame ${first:-none} on across the relays ($transport; $((SECONDS - t)) s)"
  [ -n "$sent" ] && [ -n "$received" ] && [ -n "$first" ] && [ "$first" -lt $((frames / 2)) ] \
    && [ "$sent" -ge $((frames * 9 / 10)) ] && [ $((received * 10)) -ge $(((sent - first) * 9)) ] \
    || fail "$what: too few frames (stream: $(tail -n3 "$work/stream.err"))"
  grep -q "via webtransport" <<<"$transport" || fail "$what: the streamer did not use WebTransport: $transport"
  docker rm "$receiver" >/dev/null
}

# 5. CLI across the compose network: stream over WebTransport, receive over WebSocket.
cli_across cli compose-cli 60 15 compose run --rm -T cli

# 5c. The Raspberry Pi image on the same network (the cli service's settings; qemu here).
if [ "${ARM64_CLI:-}" = 1 ]; then
  network=$(docker inspect -f '{{ range $name, $_ := .NetworkSettings.Networks }}{{ $name }}{{ end }}' "$(compose ps -q actix-api)")
  cli_across "cli linux/arm64" compose-arm64 50 10 \
    docker run --rm --platform linux/arm64 --network "$network" \
    -e VIDEOCALL_URL=https://webtransport-server:4433 -e VIDEOCALL_WEBSOCKET_URL=http://actix-api:8080 \
    "videocall/videocall-cli:${VIDEOCALL_TAG:-latest}-arm64"
fi

# 5b. A protected meeting needs its token.
t=$SECONDS
jar=$work/cookies
json() { curl -fsS --max-time 10 -b "$jar" -c "$jar" -H 'content-type: application/json' "$@"; }
json -d '{"display_name": "Compose host"}' "$base/api/v1/login/guest" >/dev/null \
  || fail "guest login through the API"
json -d '{"id": "compose-protected", "access": "protected"}' "$base/api/v1/meetings" >"$work/meeting.json" \
  || fail "creating a protected meeting through the API"
json -d '{"display_name": "Pi"}' "$base/api/v1/meetings/compose-protected/join" >"$work/join.json" \
  || fail "joining the protected meeting through the API"
token=$(python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); assert a["status"]=="admitted", a; print(a["token"])' "$work/join.json") \
  || fail "join did not admit the host: $(cat "$work/join.json")"
if compose run --rm -T cli stream --user-id pi --meeting-id compose-protected --test-pattern \
  --resolution 320x240 --fps 15 --frames 5 --transport websocket --url http://actix-api:8080 \
  >"$work/denied.out" 2>"$work/denied.err"; then
  fail "a streamer without a token got into the protected meeting"
fi
grep -q 403 "$work/denied.out" "$work/denied.err" \
  || fail "the refusal does not say 403: $(tail -n3 "$work/denied.out" "$work/denied.err")"
compose run --rm -T cli stream --token "$token" --test-pattern --resolution 320x240 --fps 15 \
  --frames 15 --transport websocket --url http://actix-api:8080 >"$work/token.out" 2>"$work/token.err" \
  || { tail -n5 "$work/token.err" >&2; fail "the streamer with the room token was refused"; }
grep -q '^sent ' "$work/token.out" || fail "the streamer with the room token sent nothing: $(cat "$work/token.out")"
say "protected meeting: refused without a token (403), streamed with the room token ($((SECONDS - t)) s)"

# 6. Browsers, and the actix-api restart.
t=$SECONDS
scripts/ensure-deps.sh chromium e2e
# No -t: the restart stops actix-api within the compose file's stop_grace_period, as users' do.
restart=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' \
  docker-compose -p "$project" "${files[@]}" restart actix-api)
(cd e2e && VIDEOCALL_BASE_URL=$base COMPOSE_RESTART_CMD=$restart \
  timeout -k 10 300 node --test --test-concurrency=1 compose/)
say "browsers: met across the relays and recovered from the restart ($((SECONDS - t)) s)"
wait_for "actix-api healthy after the restart" 60 healthy actix-api
# The restart's SIGTERM drained the node and it exited by itself, inside stop_grace_period
# (a SIGKILL at the end of the grace period would leave no `stopped`).
compose logs --no-color actix-api >"$work/actix-api.log" 2>&1
grep -q 'draining: clients are told' "$work/actix-api.log" || fail "actix-api did not drain on the restart's SIGTERM"
grep -qE 'INFO actix_api: stopped$' "$work/actix-api.log" \
  || fail "actix-api did not exit by itself within its stop_grace_period: $(grep -E 'drain|shutting|clients still' "$work/actix-api.log" | tail -n 3)"
drained=$(grep -oE 'drained in [^:]*|clients still connected after [^:]*' "$work/actix-api.log" | head -n 1)
say "restart: actix-api drained (${drained:-?}) and exited by itself before its stop_grace_period"

# 7. Down: nothing of the project is left.
t=$SECONDS
compose down -v --remove-orphans --timeout 10 2>&1 | sed 's/^/    /'
stack_up=0
label=label=com.docker.compose.project=$project
left=$( { docker ps -aq --filter "$label"; docker network ls -q --filter "$label"; docker volume ls -q --filter "$label"; } | wc -l)
[ "$left" -eq 0 ] || fail "down -v left $left containers, networks or volumes of $project"
say "down -v: no container, network or volume left ($((SECONDS - t)) s)"
say "passed in $((SECONDS - started_at)) s"
