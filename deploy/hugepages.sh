#!/usr/bin/env bash
# Reserves 2 MiB hugepages (N from $1, /etc/ferrovs/hugepages, or 1024) and makes sure
# hugetlbfs is mounted at /dev/hugepages. Prints what it got: the kernel may give fewer
# pages than asked when memory is fragmented.
set -euo pipefail
n=${1:-$(cat /etc/ferrovs/hugepages 2>/dev/null || echo 1024)}
echo "$n" > /proc/sys/vm/nr_hugepages
got=$(cat /proc/sys/vm/nr_hugepages)
mountpoint -q /dev/hugepages || { mkdir -p /dev/hugepages; mount -t hugetlbfs nodev /dev/hugepages; }
echo "hugepages: asked $n, got $got (2 MiB each)"
[ "$got" -gt 0 ]
