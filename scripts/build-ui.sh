#!/usr/bin/env bash
# Builds the browser app into yew-ui/dist (or $1): cargo for wasm32, then wasm-bindgen.
# No trunk: it would cost a 14-minute install on every new machine.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-yew-ui/dist}"
target_dir="${CARGO_TARGET_DIR:-target}"
echo "[ui] building yew-ui for wasm32 (release)"
cargo build -p yew-ui --target wasm32-unknown-unknown --release
mkdir -p "$out"
wasm-bindgen --target web --no-typescript --out-dir "$out" \
  "$target_dir/wasm32-unknown-unknown/release/yew_ui.wasm"
cp yew-ui/index.html yew-ui/style.css "$out/"
echo "[ui] built $out ($(du -sh "$out" | cut -f1))"
