#!/usr/bin/env bash
# Reserves the hugepages the config's [hugepages] section asks for, node by node, before
# ferrovsd starts. The plan comes from `ferrovsd --print-hugepages` (one "NODE SIZE_KIB
# PAGES" line per NUMA node), so the TOML is read by ferrovsd's own parser only.
#
#   hugepages.sh [CONFIG]     default /etc/ferrovs/ferrovs.toml
#
# Writes /sys/devices/system/node/nodeN/hugepages/hugepages-<KIB>kB/nr_hugepages (on a
# kernel without NUMA, node 0 is /sys/kernel/mm/hugepages/hugepages-<KIB>kB), then reads
# it back and prints what the kernel gave: fewer pages than asked when memory is
# fragmented, which fails the script. Without a [hugepages] section nothing is changed.
#
# hugetlbfs is mounted by systemd: /dev/hugepages (dev-hugepages.mount) for 2 MiB pages,
# /dev/hugepages1G (dev-hugepages1G.mount, shipped beside this script) for 1 GiB pages.
# Run by hand (not by systemd), the script mounts the one the plan needs if it is not.
#
# Environment: FERROVSD (default /usr/local/sbin/ferrovsd), FERROVS_SYSFS (default /sys;
# another root lets the script be tested without touching the kernel).
set -euo pipefail
config=${1:-/etc/ferrovs/ferrovs.toml}
ferrovsd=${FERROVSD:-/usr/local/sbin/ferrovsd}
sys=${FERROVS_SYSFS:-/sys}

plan=$("$ferrovsd" --config "$config" --print-hugepages)
if [ -z "$plan" ]; then
  echo "hugepages: $config has no [hugepages] section; nothing reserved"
  exit 0
fi

short=0
while read -r node kib pages; do
  case "$node$kib$pages" in *[!0-9]*|'') echo "hugepages: unexpected plan line: $node $kib $pages" >&2; exit 1 ;; esac
  file=$sys/devices/system/node/node$node/hugepages/hugepages-${kib}kB/nr_hugepages
  if [ ! -e "$file" ] && [ "$node" = 0 ] && [ ! -d "$sys/devices/system/node" ]; then
    file=$sys/kernel/mm/hugepages/hugepages-${kib}kB/nr_hugepages
  fi
  if [ ! -e "$file" ]; then
    echo "hugepages: node $node has no ${kib} kB pages ($file is missing)" >&2
    exit 1
  fi
  echo "$pages" > "$file"
  got=$(cat "$file")
  echo "hugepages: node $node: asked $pages, got $got (${kib} kB each)"
  [ "$got" -ge "$pages" ] || short=1
  if [ -z "${INVOCATION_ID:-}" ] && [ -z "${FERROVS_SYSFS:-}" ]; then
    dir=/dev/hugepages; opts=()
    if [ "$kib" = 1048576 ]; then dir=/dev/hugepages1G; opts=(-o pagesize=1G); fi
    mountpoint -q "$dir" || { mkdir -p "$dir"; mount -t hugetlbfs "${opts[@]}" nodev "$dir"; }
  fi
done <<< "$plan"
[ "$short" = 0 ] || { echo "hugepages: the kernel gave fewer pages than asked (reserve at boot: hugepages= on the kernel command line)" >&2; exit 1; }
