#!/usr/bin/env bash
# Installs ferrovs as a systemd service: binaries, unit files, a config in /etc/ferrovs
# (kept if present), ferrovs-ctl's man page and shell completions (bash, zsh, fish).
# Then: systemctl enable --now ferrovsd
#
# PREFIX (default /usr/local) moves the binaries, man page and completions; the units
# name /usr/local paths, so change them too if you change PREFIX.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${PREFIX:-/usr/local}
deploy/setup.sh
ctl=target/release/ferrovs-ctl
install -m 0755 target/release/ferrovsd "$prefix/sbin/ferrovsd"
install -m 0755 "$ctl" "$prefix/bin/ferrovs-ctl"
install -d "$prefix/lib/ferrovs" /etc/ferrovs "$prefix/share/doc/ferrovs"
install -m 0755 deploy/hugepages.sh "$prefix/lib/ferrovs/hugepages.sh"
install -m 0644 README.md "$prefix/share/doc/ferrovs/README.md"
# Man page and completions, as the binary renders them (generated from its own
# command-line definition at build time).
install -d "$prefix/share/man/man1" "$prefix/share/bash-completion/completions" \
  "$prefix/share/zsh/site-functions" "$prefix/share/fish/vendor_completions.d"
"$ctl" man | gzip -9n > "$prefix/share/man/man1/ferrovs-ctl.1.gz"
"$ctl" completions bash > "$prefix/share/bash-completion/completions/ferrovs-ctl"
"$ctl" completions zsh > "$prefix/share/zsh/site-functions/_ferrovs-ctl"
"$ctl" completions fish > "$prefix/share/fish/vendor_completions.d/ferrovs-ctl.fish"
command -v mandb >/dev/null && mandb -q "$prefix/share/man" || true
[ -f /etc/ferrovs/ferrovs.toml ] || install -m 0644 deploy/ferrovs-nic.toml /etc/ferrovs/ferrovs.toml
install -m 0644 deploy/ferrovsd.service deploy/ferrovs-hugepages.service deploy/dev-hugepages1G.mount \
  /etc/systemd/system/
systemctl daemon-reload
echo "installed; edit /etc/ferrovs/ferrovs.toml ([hugepages] sets the pages reserved at start), then:"
echo "  systemctl enable --now ferrovsd"
