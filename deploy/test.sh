#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole ferrovs test suite: unit and
# property tests, the in-process DPDK tests over net_ring ports, and the end-to-end
# tests through ferrovsd (network namespaces, net_tap, net_pcap). Needs root and no
# hugepages or NIC. Exit status is non-zero when any test fails.
#
# Bigger property-test runs: FERROVS_PROPTEST_CASES=1000000 deploy/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

deploy/setup.sh --debug

# The e2e tests start target/debug/ferrovsd; build every binary first.
cargo build --workspace --bins
# A PMD busy-polls a core; on a 2-core machine run the DPDK test binaries one at a time.
cargo test --workspace -- --test-threads=1
