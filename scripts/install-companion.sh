#!/usr/bin/env bash
# Installs hotspot-edge on a Debian-like companion board (Raspberry Pi OS, Debian, Ubuntu,
# Armbian) as a systemd service running as its own user.
#
#   sudo scripts/install-companion.sh dist/hotspot-edge-aarch64-unknown-linux-musl
#
# Binary to /usr/local/bin, config to /etc/hotspot-edge/config.toml (an existing one is kept),
# database in /var/lib/hotspot-edge (systemd's StateDirectory). Safe to run again to upgrade.
# DESTDIR=/some/root installs into a directory tree instead (no user, no systemctl): for tests.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${1:?usage: install-companion.sh BINARY (e.g. dist/hotspot-edge-aarch64-unknown-linux-musl)}
DESTDIR=${DESTDIR:-}
[ -f "$BIN" ] || { echo "no binary at $BIN" >&2; exit 2; }
if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
  echo "run as root (sudo)" >&2
  exit 2
fi
# The binary must run here (right architecture): a wrong one is refused before anything changes.
if ! "$BIN" --version >/dev/null 2>&1; then
  echo "$BIN does not run on this machine ($(uname -m)): pick the binary for this board" >&2
  exit 2
fi
install -d -m 0755 "$DESTDIR/usr/local/bin" "$DESTDIR/etc/systemd/system"
install -d -m 0750 "$DESTDIR/etc/hotspot-edge" "$DESTDIR/var/lib/hotspot-edge"
install -m 0755 "$BIN" "$DESTDIR/usr/local/bin/hotspot-edge.new"
mv -f "$DESTDIR/usr/local/bin/hotspot-edge.new" "$DESTDIR/usr/local/bin/hotspot-edge"
install -m 0644 "$here/systemd/hotspot-edge.service" "$DESTDIR/etc/systemd/system/hotspot-edge.service"
conf="$DESTDIR/etc/hotspot-edge/config.toml"
if [ ! -f "$conf" ]; then
  install -m 0640 "$here/../config/minimal.toml" "$conf"
  echo "installed a minimal config: edit $conf ([site] id, [[plans]], [router])"
fi
if [ -n "$DESTDIR" ]; then
  echo "installed into $DESTDIR"
  exit 0
fi
id hotspot-edge >/dev/null 2>&1 ||
  useradd --system --user-group --home-dir /var/lib/hotspot-edge --shell /usr/sbin/nologin hotspot-edge
chown -R hotspot-edge:hotspot-edge /var/lib/hotspot-edge
chgrp -R hotspot-edge /etc/hotspot-edge
systemctl daemon-reload
if /usr/local/bin/hotspot-edge check-config -c "$conf"; then
  systemctl enable --now hotspot-edge
  systemctl --no-pager status hotspot-edge || true
else
  echo "fix $conf (hotspot-edge check-config -c $conf), then: systemctl enable --now hotspot-edge" >&2
fi
