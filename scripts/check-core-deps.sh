#!/usr/bin/env bash
# The sans-IO core must not pull an async runtime, a transport or the browser bindings.
set -euo pipefail
forbidden='^(tokio|actix[a-z_-]*|wtransport|async-nats|web-sys) '
tree=$(cargo tree -p videocall-relay -e normal --no-default-features --prefix none)
if found=$(echo "$tree" | grep -E "$forbidden"); then
  echo "videocall-relay (no default features) depends on forbidden crates:" >&2
  echo "$found" >&2
  exit 1
fi
echo "[core] videocall-relay default tree is free of tokio, actix, wtransport, async-nats, web-sys"
