#!/usr/bin/env bash
# Installs ferrovs as a systemd service: binaries, unit files, a config in /etc/ferrovs
# (kept if present). Then: systemctl enable --now ferrovsd
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh
install -m 0755 target/release/ferrovsd /usr/local/sbin/ferrovsd
install -m 0755 target/release/ferrovs-ctl /usr/local/bin/ferrovs-ctl
install -d /usr/local/lib/ferrovs /etc/ferrovs /usr/local/share/doc/ferrovs
install -m 0755 deploy/hugepages.sh /usr/local/lib/ferrovs/hugepages.sh
install -m 0644 README.md /usr/local/share/doc/ferrovs/README.md
[ -f /etc/ferrovs/ferrovs.toml ] || install -m 0644 deploy/ferrovs-nic.toml /etc/ferrovs/ferrovs.toml
install -m 0644 deploy/ferrovsd.service deploy/ferrovs-hugepages.service /etc/systemd/system/
systemctl daemon-reload
echo "installed; edit /etc/ferrovs/ferrovs.toml, then: systemctl enable --now ferrovsd"
