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

# Gates before any test: formatting, lints and the API docs. Each fails the run.
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
echo "test.sh: cargo fmt --check"
cargo fmt --all --check
echo "test.sh: cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "test.sh: cargo doc -D warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

# The shipped systemd units: verify clean, exposure at most 5.0.
command -v systemd-analyze >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null; }
# The differential test (tests/ovsdiff) runs a private Open vSwitch 3.1 next to ferrovsd:
# ovs-vswitchd and ovs-vsctl are in openvswitch-switch; ovsdb-server, ovsdb-tool, ovs-ofctl
# and ovs-appctl in openvswitch-common. Without them that test fails.
# The packages' own service must not start (it would take CPU and a system OVS the tests
# do not use): a policy-rc.d refuses it for the install, unless one is already there.
if ! command -v ovs-vswitchd >/dev/null && [ ! -x /usr/sbin/ovs-vswitchd ]; then
  own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openvswitch-common openvswitch-switch >/dev/null
  if [ "$own_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
# The OpenFlow controller tests (tests/e2e/controller.rs) drive ferrovsd from os-ken and
# faucet, test peers from PyPI, pinned and kept in their own virtualenvs under target/.
osken_venv=target/osken-venv
if ! "$osken_venv/bin/python3" -c 'import os_ken' 2>/dev/null; then
  command -v python3 >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 >/dev/null; }
  python3 -m venv "$osken_venv" 2>/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null; python3 -m venv "$osken_venv"; }
  "$osken_venv/bin/pip" install -q os-ken==4.2.2
fi
export FERROVS_OSKEN_PYTHON="$PWD/$osken_venv/bin/python3"
# faucet, the second controller of that test, pins an older os-ken: its own virtualenv.
# One dependency (pytricia) is a C extension built at install: gcc and Python's headers.
faucet_venv=target/faucet-venv
if ! "$faucet_venv/bin/python3" -c 'import faucet' 2>/dev/null; then
  if ! command -v gcc >/dev/null || ! python3 -c 'import sysconfig,os,sys; sys.exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))'; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc python3-dev >/dev/null
  fi
  python3 -m venv "$faucet_venv"
  "$faucet_venv/bin/pip" install -q faucet==1.10.12
fi
export FERROVS_FAUCET_PYTHON="$PWD/$faucet_venv/bin/python3"
# The e2e tests start target/debug/ferrovsd; build every binary first.
cargo build --workspace --bins
deploy/check-units.sh target/debug

# The differential test against OVS (tests/ovsdiff) runs its fixed seeds and a number of
# cases (FRESH_CASES in tests/ovsdiff/main.rs) from a fresh random base seed, drawn here and
# printed now and on failure (FERROVS_OVSDIFF_BASE_SEED=X repeats a run's cases;
# FERROVS_OVSDIFF_CASES=N runs N of them instead).
FERROVS_OVSDIFF_BASE_SEED=${FERROVS_OVSDIFF_BASE_SEED:-0x$(od -An -N8 -tx8 /dev/urandom | tr -d ' \n')}
export FERROVS_OVSDIFF_BASE_SEED
echo "test.sh: ovsdiff fresh base seed $FERROVS_OVSDIFF_BASE_SEED"
trap 'echo "test.sh: failed (ovsdiff fresh base seed $FERROVS_OVSDIFF_BASE_SEED)" >&2' ERR

# A PMD busy-polls a core; on a 2-core machine run the DPDK test binaries one at a time.
cargo test --workspace -- --test-threads=1

# Fuzz gate: every cargo-fuzz target for FERROVS_FUZZ_SECONDS (default 15) each; fails
# the run on a crash, a failed property, or a missing toolchain (see deploy/fuzz.sh).
deploy/fuzz.sh
