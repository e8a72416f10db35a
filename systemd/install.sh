#!/usr/bin/env bash
# Install or upgrade callqa as a system service. Run as root from a checkout:
#   sudo systemd/install.sh
#
# What it makes (each only when missing, so running it again is an upgrade):
#   user and group callqa     systemd/callqa.sysusers (systemd-sysusers)
#   /var/lib/callqa  0750     the data folder, owned by callqa (systemd/callqa.tmpfiles)
#   /etc/callqa      0750     root:callqa; callqa.toml (0640) is written only when absent,
#                             callqa.toml.example is always the shipped one, to compare with
#   /opt/callqa/.venv         a virtual environment with callqa installed from this checkout
#                             (reinstalled on every run: that is the upgrade), with the
#                             speech check's Silero model in share/callqa/models/silero-vad
#   /usr/local/lib/systemd/system/callqa.service, callqa-admin.service (replaced on every run;
#                             local changes go in drop-ins: `systemctl edit callqa.service`)
# It never overwrites the settings file, the data, or a drop-in.
#
# Variables:
#   ROOT=DIR     install under DIR as if it were / (an image being built, or a test); systemctl
#                only enables the units there, starts nothing
#   PYTHON=...   the interpreter the virtual environment is made with (default: python3)
#   CALLQA_PACKAGE=FILE  install this wheel of callqa instead of building one from the checkout
#   PIP_ARGS=... more arguments for pip, e.g. "--no-index --find-links /media/wheels" on a box
#                without Internet access
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
root="${ROOT:-}"
python="${PYTHON:-python3}"
read -r -a pip_args <<<"${PIP_ARGS:-}"
prefix="$root/opt/callqa"
etc="$root/etc/callqa"
units="$root/usr/local/lib/systemd/system"
services=(callqa.service callqa-admin.service)

say() { echo "install.sh: $*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root" >&2
    exit 1
fi
if [ -n "$root" ]; then
    mkdir -p "$root/etc"
    root_args=(--root="$root")
else
    root_args=()
fi

# The user and the folders, from the same files systemd reads at every boot.
install -D -m 0644 "$src/systemd/callqa.sysusers" "$root/usr/local/lib/sysusers.d/callqa.conf"
install -D -m 0644 "$src/systemd/callqa.tmpfiles" "$root/usr/local/lib/tmpfiles.d/callqa.conf"
systemd-sysusers "${root_args[@]}" "$root/usr/local/lib/sysusers.d/callqa.conf"
systemd-tmpfiles --create "${root_args[@]}" "$root/usr/local/lib/tmpfiles.d/callqa.conf"

# The code: root owns it, the service cannot change it.
install -d -m 0755 "$prefix"
if [ ! -x "$prefix/.venv/bin/python" ]; then
    say "making the virtual environment $prefix/.venv"
    "$python" -m venv "$prefix/.venv"
fi
package="${CALLQA_PACKAGE:-$src}"
say "installing callqa from $package"
"$prefix/.venv/bin/python" -m pip install -q "${pip_args[@]}" "$package"
# pip keeps an installed callqa of the same version: replace it (not its dependencies).
"$prefix/.venv/bin/python" -m pip install -q --force-reinstall --no-deps "${pip_args[@]}" "$package"
install -m 0644 "$src/README.md" "$prefix/README.md"
# The speech check's Silero model (asr_speech_check): the checkout's, where scripts/setup put
# it, else from the silero-vad wheel (pip download with PIP_ARGS); hash-checked either way.
silero="$src/.venv/share/callqa/models/silero-vad/silero_vad.onnx"
if [ -f "$silero" ]; then
    silero_from=(--onnx "$silero")
else
    silero_from=()
    for arg in "${pip_args[@]}"; do silero_from+=("--pip-arg=$arg"); done
fi
if ! "$prefix/.venv/bin/python" -m core.asr.silero_model "${silero_from[@]}"; then
    say "WARNING: the speech check's model is not installed: callqa serve runs without the" \
        "check until it is (python -m core.asr.silero_model --wheel FILE; callqa doctor says)"
fi

# The settings: the administrator's file is never replaced.
install -m 0640 -g "$(stat -c %g "$etc")" "$src/systemd/callqa.toml" "$etc/callqa.toml.example"
if [ ! -e "$etc/callqa.toml" ]; then
    install -m 0640 -g "$(stat -c %g "$etc")" "$src/systemd/callqa.toml" "$etc/callqa.toml"
    say "wrote $etc/callqa.toml: set sip_allowed_peers to your SBCs before calls can come in"
else
    say "kept $etc/callqa.toml (the shipped example is $etc/callqa.toml.example)"
fi
# The service writes nowhere but the data folder: a log file elsewhere cannot be opened.
if grep -Eq '^[[:space:]]*log_file[[:space:]]*=[[:space:]]*"/var/log' "$etc/callqa.toml"; then
    say "WARNING: $etc/callqa.toml sets log_file under /var/log, which the service may not" \
        "write; remove it (the journal has the log) or point it under /var/lib/callqa"
fi
# The settings must load before the service starts (core.config needs only the standard library).
"$prefix/.venv/bin/python" -c 'import sys; from core.config import load_settings; load_settings(sys.argv[1], {}, {})' \
    "$etc/callqa.toml"

# The units.
for unit in "${services[@]}"; do
    install -D -m 0644 "$src/systemd/$unit" "$units/$unit"
    if [ -f "$root/etc/systemd/system/$unit" ] && [ ! -L "$root/etc/systemd/system/$unit" ]; then
        say "WARNING: $root/etc/systemd/system/$unit overrides $units/$unit; remove it" \
            "unless it is meant to (drop-ins go in $unit.d/)"
    fi
done
if [ -n "$root" ]; then
    systemctl --root="$root" enable "${services[@]}"
    exit 0
fi
systemctl daemon-reload
if systemctl is-enabled --quiet callqa.service; then
    say "restarting the services that run, on the new code"
    systemctl try-restart "${services[@]}"
else
    systemctl enable --now "${services[@]}"
fi
systemctl --no-pager status "${services[@]}" || true
say "check the box as the service sees it:"
say "  sudo -u callqa CALLQA_CONFIG=/etc/callqa/callqa.toml /opt/callqa/.venv/bin/callqa doctor"
say "the admin web has no account yet; make the first administrator with"
say "  sudo -u callqa CALLQA_CONFIG=/etc/callqa/callqa.toml /opt/callqa/.venv/bin/callqa admin create-user NAME --role admin"
