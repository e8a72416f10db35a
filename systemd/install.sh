#!/usr/bin/env bash
# Install callqa as a system service: the code under /opt/callqa, settings in /etc/callqa,
# data in /var/lib/callqa, the units callqa.service and callqa-admin.service. Run as root from a checkout:
#   sudo systemd/install.sh
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
prefix=/opt/callqa

if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root" >&2
    exit 1
fi
id callqa >/dev/null 2>&1 || useradd --system --home-dir /var/lib/callqa --shell /usr/sbin/nologin callqa
mkdir -p "$prefix" /etc/callqa /var/lib/callqa /var/log/callqa
if [ "$src" != "$prefix" ]; then
    cp -a "$src/." "$prefix/"
fi
"$prefix/scripts/setup"
[ -f /etc/callqa/callqa.toml ] || install -m 0640 -g callqa "$src/systemd/callqa.toml" /etc/callqa/callqa.toml
chown -R callqa:callqa /var/lib/callqa /var/log/callqa
install -m 0644 "$src/systemd/callqa.service" /etc/systemd/system/callqa.service
install -m 0644 "$src/systemd/callqa-admin.service" /etc/systemd/system/callqa-admin.service
# The settings file must be valid before the service starts.
CALLQA_CONFIG=/etc/callqa/callqa.toml "$prefix/.venv/bin/callqa" settings >/dev/null
systemctl daemon-reload
systemctl enable --now callqa.service callqa-admin.service
systemctl --no-pager status callqa.service callqa-admin.service || true
# The admin web has no built-in account: make the first administrator with
#   sudo -u callqa CALLQA_CONFIG=/etc/callqa/callqa.toml /opt/callqa/.venv/bin/callqa admin create-user NAME --role admin
