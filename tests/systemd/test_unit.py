"""The shipped unit file and settings example agree with the daemon's settings."""

from __future__ import annotations

import configparser
from pathlib import Path

from core.config import load_settings

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"


def test_example_settings_load_and_unit_waits_for_the_grace_period() -> None:
    settings = load_settings(SYSTEMD / "callqa.toml", {}, {})
    assert settings.data_dir == Path("/var/lib/callqa")
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(SYSTEMD / "callqa.service")
    service = unit["Service"]
    assert service["ExecStart"].split()[-1] == "serve"
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) > settings.sip_drain_s + settings.shutdown_grace_s
    environment = dict(item.split("=", 1) for item in service["Environment"].split())
    assert environment["CALLQA_CONFIG"] == "/etc/callqa/callqa.toml"
    assert environment["CUDA_CACHE_PATH"].startswith(str(settings.data_dir))
    assert "CAP_NET_RAW" in service["AmbientCapabilities"]  # mirror_interface capture


def test_admin_unit_serves_the_admin_web_without_privileges() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(SYSTEMD / "callqa-admin.service")
    service = unit["Service"]
    assert service["ExecStart"].split()[-2:] == ["admin", "serve"]
    assert service["User"] == "callqa"
    assert service["CapabilityBoundingSet"] == ""
    assert service["NoNewPrivileges"] == "true"
    assert service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == str(load_settings(SYSTEMD / "callqa.toml", {}, {}).data_dir)
    assert "callqa-admin.service" in (SYSTEMD / "install.sh").read_text()


def test_both_units_are_hardened_alike() -> None:
    data_dir = str(load_settings(SYSTEMD / "callqa.toml", {}, {}).data_dir)
    for name, capabilities in (
        ("callqa.service", {"CAP_NET_BIND_SERVICE", "CAP_NET_RAW"}),
        ("callqa-admin.service", set()),
    ):
        unit = configparser.ConfigParser(strict=False, interpolation=None)
        unit.read(SYSTEMD / name)
        service = unit["Service"]
        assert set(service["CapabilityBoundingSet"].split()) == capabilities, name
        assert service["ReadWritePaths"] == data_dir, name  # the one place it writes
        for key in ("NoNewPrivileges", "PrivateTmp", "ProtectHome", "ProtectKernelTunables"):
            assert service[key] == "true", (name, key)
        assert service["ProtectSystem"] == "strict"
        assert service["Restart"] == "on-failure"
        assert service["StandardError"] == "journal"
        assert 1 < int(unit["Unit"]["StartLimitBurst"]) <= 10
        assert int(unit["Unit"]["StartLimitIntervalSec"]) >= 60
        assert "LogsDirectory" not in service and "/var/log" not in (SYSTEMD / name).read_text()
