#!/usr/bin/env bash
# Builds every cargo-fuzz target (fuzz/, its own workspace) and runs each for
# FERROVS_FUZZ_SECONDS (default 15) from its committed seed corpus in fuzz/corpus/.
# Exit status is non-zero on a crash or a failed property, and when cargo-fuzz is
# missing and cannot be installed: the gate never passes by skipping.
#
# libFuzzer needs unstable compiler flags (sanitizers, coverage); RUSTC_BOOTSTRAP=1 lets
# the stable toolchain take them, so no nightly is required. New inputs go to a scratch
# directory, so the committed corpus stays as it is; a failing input and the log are kept
# there and their path printed.
#
#   deploy/fuzz.sh                                   all targets, 15 s each (deploy/test.sh)
#   FERROVS_FUZZ_SECONDS=3600 deploy/fuzz.sh rules   one target for an hour
#
# Longer sessions that keep their corpus: fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export PATH="$HOME/.cargo/bin:$PATH"
export RUSTC_BOOTSTRAP=1

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
seconds="${FERROVS_FUZZ_SECONDS:-15}"
start=$SECONDS
echo "fuzz.sh: cargo fuzz build"
cargo fuzz build
targets="${*:-$(cargo fuzz list)}"
if [ -z "$targets" ]; then
    echo "fuzz.sh: no fuzz targets found" >&2
    exit 1
fi
built=$((SECONDS - start))
for target in $targets; do
    scratch="$(mktemp -d "${TMPDIR:-/tmp}/ferrovs-fuzz-$target.XXXXXX")"
    mkdir "$scratch/corpus"
    echo "fuzz.sh: $target for ${seconds}s"
    if cargo fuzz run "$target" "$scratch/corpus" "corpus/$target" -- \
        -max_total_time="$seconds" -artifact_prefix="$scratch/" >"$scratch/log" 2>&1; then
        grep -E '^Done' "$scratch/log" || true
        rm -rf "$scratch"
    else
        tail -n 40 "$scratch/log" >&2
        echo "fuzz.sh: target $target FAILED; its log and the failing input are in $scratch" >&2
        exit 1
    fi
done
echo "fuzz.sh: build ${built}s, all runs $((SECONDS - start - built))s"
