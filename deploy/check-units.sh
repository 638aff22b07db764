#!/usr/bin/env bash
# Checks the shipped systemd units: `systemd-analyze verify` on the units as installed
# (paths of the installed binaries and scripts pointed at this checkout's build) and
# `systemd-analyze security` of each service at or below 5.0 (mount units have no
# exposure score). Exit non-zero on any finding. Usage: deploy/check-units.sh [target/debug|target/release]
set -euo pipefail
cd "$(dirname "$0")/.."
bindir=$(realpath "${1:-target/debug}")
command -v systemd-analyze >/dev/null || { echo "check-units.sh: systemd-analyze is missing (apt-get install systemd)" >&2; exit 1; }
for b in ferrovsd ferrovs-ctl; do
  [ -x "$bindir/$b" ] || { echo "check-units.sh: $bindir/$b is not built" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
units=(ferrovsd.service ferrovs-hugepages.service dev-hugepages1G.mount)
for u in "${units[@]/#/deploy/}"; do
  sed -e "s#/usr/local/sbin/ferrovsd#$bindir/ferrovsd#g" \
      -e "s#/usr/local/bin/ferrovs-ctl#$bindir/ferrovs-ctl#g" \
      -e "s#/usr/local/lib/ferrovs/hugepages.sh#$PWD/deploy/hugepages.sh#g" "$u" > "$tmp/$(basename "$u")"
done
# verify prints findings on stderr and may still exit 0 for some of them: any output fails.
out=$(cd "$tmp" && systemd-analyze verify "${units[@]}" 2>&1 || echo "exit status $?")
if [ -n "$out" ]; then
  echo "check-units.sh: systemd-analyze verify:" >&2
  echo "$out" >&2
  exit 1
fi
for u in ferrovsd.service ferrovs-hugepages.service; do
  systemd-analyze security --offline=true --threshold=50 "$tmp/$u" > "$tmp/security.txt" 2>&1 || {
    cat "$tmp/security.txt" >&2
    echo "check-units.sh: $u: exposure above 5.0" >&2
    exit 1
  }
  echo "check-units.sh: $u: $(grep 'Overall exposure' "$tmp/security.txt")"
done
echo "check-units.sh: units verify clean"
