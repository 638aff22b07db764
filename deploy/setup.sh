#!/usr/bin/env bash
# Installs what ferrovs needs to build, test and run on Debian 12, then builds it.
# Idempotent: safe to run again. Run as root (apt-get, and later DPDK ports and namespaces).
#
#   deploy/setup.sh            install packages and build (release)
#   deploy/setup.sh --debug    build the debug profile instead (what the tests use)
#   deploy/setup.sh --no-build only install packages
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
build=1
for a in "$@"; do
  case "$a" in
    --debug) profile=debug ;;
    --no-build) build=0 ;;
    *) echo "setup.sh: unknown option $a" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (it installs packages; ferrovsd needs CAP_NET_ADMIN for tap ports)" >&2
  exit 1
fi

# Packages: DPDK headers and the PMD plugins (libdpdk-dev pulls the drivers), dpdk for
# dpdk-testpmd and dpdk-hugepages.py, libclang for bindgen, ping/ip/tcpdump for the tests,
# openvswitch-common for ovs-appctl/ovs-ofctl (the tests drive ferrovsd with the OVS tools),
# dpdk-dev for dpdk-telemetry.py (the tests read ferrovs's telemetry commands with it).
pkgs=(libdpdk-dev dpdk dpdk-dev pkg-config libclang-dev clang gcc make iputils-ping iproute2 procps python3 ca-certificates curl openvswitch-common)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Rust: use the toolchain that is there; otherwise install the stable one with rustup.
if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup.sh: no cargo found; installing the stable Rust toolchain with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi

pkg-config --atleast-version=22.11 libdpdk || { echo "setup.sh: DPDK >= 22.11 not found by pkg-config" >&2; exit 1; }

if [ "$build" = 1 ]; then
  if [ "$profile" = release ]; then
    cargo build --release --workspace --bins
  else
    cargo build --workspace --bins
  fi
fi
