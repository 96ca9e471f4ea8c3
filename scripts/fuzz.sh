#!/usr/bin/env bash
# `make fuzz`: builds the fuzz targets of fuzz/ with the stable toolchain and runs each for
# FUZZ_SECONDS (default 30) from its checked-in seed corpus fuzz/corpus/<target>/.
#
# No nightly and no cargo-fuzz: libfuzzer-sys builds libFuzzer itself (with the system C++
# compiler), and rustc's stable codegen flags below add the same coverage instrumentation that
# cargo-fuzz asks for (SanitizerCoverage: 8-bit counters, PC table, compare tracing), without
# AddressSanitizer. Debug assertions and overflow checks are on, as in `cargo fuzz`.
#
# New inputs the fuzzer finds go to a temporary directory, never into the repository. A crash,
# timeout or out-of-memory input is kept under $CARGO_TARGET_DIR/fuzz/artifacts/<target>/ and
# the run fails; replay it with `<binary> <file>` (the log prints both).
#
# Usage: scripts/fuzz.sh [target...]   (default: every target in fuzz/Cargo.toml)
# Env:   FUZZ_SECONDS (30), FUZZ_TIMEOUT (per input, s: 2), FUZZ_RSS_MB (1024), FUZZ_MAX_LEN
#        (bytes per input: 4096), FUZZ_ARGS (extra libFuzzer flags), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-30}
timeout=${FUZZ_TIMEOUT:-2}
rss_mb=${FUZZ_RSS_MB:-1024}
max_len=${FUZZ_MAX_LEN:-4096}
target_root=${CARGO_TARGET_DIR:-$PWD/target}
case "$target_root" in /*) ;; *) target_root=$PWD/$target_root ;; esac
# The instrumented build has its own directory: its RUSTFLAGS differ from the workspace's.
fuzz_dir=$target_root/fuzz
host=$(rustc -vV | sed -n 's/^host: //p')

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^videocall-fuzz$')
fi

# `--target` keeps these flags off build scripts and proc macros (they run on the host).
export RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks -Cforce-frame-pointers=yes"
# RSA and AES are not ours to explore, and RSA under instrumentation is ~9x slower: the crypto
# crates are built without coverage (scripts/fuzz-rustc.sh).
export RUSTC_WRAPPER=$PWD/scripts/fuzz-rustc.sh
export FUZZ_UNINSTRUMENTED="rsa num_bigint_dig num_integer num_traits num_iter sha2 digest \
aes aes_gcm ghash polyval ctr cipher universal_hash aead crypto_common rand_chacha rand_core \
ppv_lite86 zeroize subtle generic_array typenum cpufeatures getrandom"
# Cargo does not rebuild a dependency when only the wrapper's choice changes: start afresh when
# the flags, the list or the wrapper differ from those of the last build.
stamp=$(printf '%s\n' "$RUSTFLAGS" "$FUZZ_UNINSTRUMENTED" "$(cat scripts/fuzz-rustc.sh)" | sha256sum)
if [ "$(cat "$fuzz_dir/flags.stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "${fuzz_dir:?}/$host"
  mkdir -p "$fuzz_dir"
  echo "$stamp" >"$fuzz_dir/flags.stamp"
fi
start=$(date +%s)
cargo build --manifest-path fuzz/Cargo.toml --release --target "$host" --target-dir "$fuzz_dir" \
  $(printf -- '--bin %s ' "${targets[@]}")
echo "[fuzz] build took $(( $(date +%s) - start )) s"
# The drivers' own tests: the record format, and that the seeds reach what they are for.
cargo test --manifest-path fuzz/Cargo.toml --release --target "$host" --target-dir "$fuzz_dir" --lib

failed=()
for t in "${targets[@]}"; do
  bin=$fuzz_dir/$host/release/$t
  seeds=fuzz/corpus/$t
  artifacts=$fuzz_dir/artifacts/$t
  mkdir -p "$artifacts"
  work=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-$t.XXXXXX")
  log=$fuzz_dir/$t.log
  echo "[fuzz] $t: ${seconds}s from $seeds (log $log)"
  # libFuzzer writes new inputs to the first corpus directory only: the temporary one.
  set +e
  # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
  RUST_BACKTRACE=1 "$bin" -max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb="$rss_mb" \
    -max_len="$max_len" -len_control=0 -artifact_prefix="$artifacts/" -print_final_stats=1 ${FUZZ_ARGS:-} \
    "$work" "$seeds" >"$log" 2>&1
  rc=$?
  set -e
  rm -rf "$work"
  grep -E '^#[0-9]+[[:space:]]+DONE|^stat::number_of_executed_units|^stat::average_exec_per_sec' "$log" \
    | sed "s/^/[fuzz] $t: /" || true
  if [ "$rc" -ne 0 ]; then
    failed+=("$t")
    echo "[fuzz] $t FAILED (exit $rc); the end of its log:"
    tail -n 40 "$log"
    grep -E 'Test unit written to' "$log" | sed 's/.*written to /[fuzz] input: /' || true
    echo "[fuzz] replay: $bin <input>"
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "[fuzz] failed: ${failed[*]}"
  exit 1
fi
echo "[fuzz] ${#targets[@]} targets ran ${seconds}s each without a crash"
