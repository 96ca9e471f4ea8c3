#!/usr/bin/env bash
# Runs the aarch64 videocall-cli (make cli-aarch64) under qemu-aarch64: it streams the test
# pattern to a local single node (host build) and a host receiver must decode >= 90% of it,
# counted from the first frame it could decrypt.
set -euo pipefail
# The node and the receiver are the host builds `make test` already made (HOST_PROFILE=debug).
target_dir=${CARGO_TARGET_DIR:-target}
host=$target_dir/${HOST_PROFILE:-debug}
arm=$target_dir/aarch64-unknown-linux-gnu/release/videocall-cli
host_cli=$host/videocall-cli
node=$host/actix-api
for bin in "$arm" "$host_cli" "$node"; do
  [ -x "$bin" ] || { echo "[aarch64] missing $bin (make test-cli-aarch64 builds all three)" >&2; exit 1; }
done
file "$arm" | grep -q "ARM aarch64" || { echo "[aarch64] $arm is not an aarch64 ELF" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_STREAM if sys.argv[1]=="tcp" else socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' "$1"; }
http=$(port tcp); udp=$(port udp)

"$node" --listen "127.0.0.1:$http" --webtransport --webtransport-listen "[::]:$udp" >"$work/node.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "Ctrl-C stops." "$work/node.out" && break; sleep 0.1; done
grep -q "Ctrl-C stops." "$work/node.out" || { echo "[aarch64] node did not start" >&2; cat "$work/node.out" >&2; exit 1; }

common=(--meeting-id pi-qemu --url "https://127.0.0.1:$udp" --websocket-url "http://127.0.0.1:$http")
"$host_cli" receive --user-id rec "${common[@]}" --out "$work/rec" --print-frames >"$work/rec.out" 2>"$work/rec.err" &
receiver=$!
pids+=($receiver)
for _ in $(seq 100); do grep -q "joined meeting" "$work/rec.out" && break; sleep 0.1; done

frames=50
qemu-aarch64 -L /usr/aarch64-linux-gnu "$arm" stream --user-id pi "${common[@]}" --test-pattern \
  --resolution 320x240 --fps 10 --frames "$frames" >"$work/pi.out" 2>"$work/pi.err" \
  || { echo "[aarch64] the aarch64 streamer failed:" >&2; cat "$work/pi.err" >&2; exit 1; }
sent=$(sed -n 's/^sent \([0-9]*\) frames.*/\1/p' "$work/pi.out")
for _ in $(seq 100); do grep -qE "^(frame pi $((frames - 1)) |left pi)" "$work/rec.out" && break; sleep 0.1; done
kill -TERM "$receiver"; wait "$receiver" || true
received=$(sed -n 's/^received from pi: \([0-9]*\) frames.*/\1/p' "$work/rec.out")
# The first frames can go before the receiver holds the streamer's key (the meeting is end-to-end
# encrypted and RSA is slow under qemu): count from the first decoded frame, which must come
# within the first half of the run.
first=$(sed -n 's/^frame pi \([0-9]*\) .*/\1/p' "$work/rec.out" | head -n1)
echo "[aarch64] under qemu: sent ${sent:-0}, decoded ${received:-0}, the first decoded was frame ${first:-none} ($(grep -m1 '^joined meeting' "$work/pi.out"))"
[ -n "$sent" ] && [ -n "$received" ] && [ -n "$first" ] && [ "$first" -lt $((frames / 2)) ] \
  && [ $((received * 10)) -ge $(((sent - first) * 9)) ] && [ "$sent" -ge $((frames * 9 / 10)) ] \
  || { echo "[aarch64] too few frames" >&2; tail -n 20 "$work/rec.err" "$work/pi.err" >&2; exit 1; }
