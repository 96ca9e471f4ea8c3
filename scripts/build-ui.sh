#!/usr/bin/env bash
# Builds the browser app into yew-ui/dist (or $1): cargo for wasm32, then wasm-bindgen.
# No trunk: it would cost a 14-minute install on every new machine.
# UI_FEATURES (cargo features of yew-ui, e.g. `bench` for the e2e perf test) is empty for the
# production bundle, which is then checked to hold no benchmark code.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-yew-ui/dist}"
features="${UI_FEATURES:-}"
target_dir="${CARGO_TARGET_DIR:-target}"
echo "[ui] building yew-ui for wasm32 (release${features:+, features: $features})"
cargo build -p yew-ui --target wasm32-unknown-unknown --release ${features:+--features "$features"}
mkdir -p "$out"
wasm-bindgen --target web --no-typescript --out-dir "$out" \
  "$target_dir/wasm32-unknown-unknown/release/yew_ui.wasm"
cp yew-ui/index.html yew-ui/style.css "$out/"
if [[ -z "$features" ]] && grep -q videocallE2eeBench "$out/yew_ui_bg.wasm"; then
  echo "[ui] the production bundle contains the E2EE benchmark (feature bench leaked in)" >&2
  exit 1
fi
echo "[ui] built $out ($(du -sh "$out" | cut -f1))"
