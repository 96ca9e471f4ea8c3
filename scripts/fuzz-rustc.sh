#!/usr/bin/env bash
# RUSTC_WRAPPER of scripts/fuzz.sh: compiles the crates named in FUZZ_UNINSTRUMENTED (space
# separated crate names) without the coverage instrumentation, every other crate as asked.
# Instrumented big-number arithmetic made each RSA operation ~9x slower, and the coverage of
# RustCrypto's primitives is not what our targets explore.
set -euo pipefail
rustc=$1
shift
crate=
prev=
for arg in "$@"; do
  if [ "$prev" = --crate-name ]; then
    crate=$arg
    break
  fi
  prev=$arg
done
case " ${FUZZ_UNINSTRUMENTED:-} " in
  *" $crate "*) ;;
  *) exec "$rustc" "$@" ;;
esac
args=()
for arg in "$@"; do
  case "$arg" in
    -Cpasses=sancov-module | -Cllvm-args=-sanitizer-coverage-*) ;;
    *) args+=("$arg") ;;
  esac
done
exec "$rustc" "${args[@]}"
