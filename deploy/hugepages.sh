#!/usr/bin/env bash
# Reserves 2 MiB hugepages (N from $1, /etc/ferrovs/hugepages, or 1024). Prints what it
# got: the kernel may give fewer pages than asked when memory is fragmented. hugetlbfs is
# mounted at /dev/hugepages by systemd (dev-hugepages.mount); run by hand, this script
# mounts it if it is not.
set -euo pipefail
n=${1:-$(cat /etc/ferrovs/hugepages 2>/dev/null || echo 1024)}
echo "$n" > /proc/sys/vm/nr_hugepages
got=$(cat /proc/sys/vm/nr_hugepages)
if [ -z "${INVOCATION_ID:-}" ]; then
  mountpoint -q /dev/hugepages || { mkdir -p /dev/hugepages; mount -t hugetlbfs nodev /dev/hugepages; }
fi
echo "hugepages: asked $n, got $got (2 MiB each)"
[ "$got" -gt 0 ]
