"""Checks of the network side: the ports the daemon and the admin web listen on, and the
peers allowed to send calls."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import core.cli.doctor.ports as ports
from core.cli.doctor.checks import Context
from core.cli.doctor.result import CheckResult, fail, ok, warn
from core.config import ConfigError

PORT_FIX = "stop the program that holds it, or choose another port with the setting `{setting}`"

# --------------------------------------------------------------------------- ports


def _port_result(name: str, probe: ports.PortProbe, setting: str, service: str) -> CheckResult:
    where = f"{probe.label} on {probe.host}"
    if probe.state == ports.FREE:
        return ok(name, f"{where} is free")
    if probe.state == ports.NOT_HERE:
        return fail(
            name,
            f"{where}: {probe.host} is not an address of this box",
            f"set the host setting of {service} to an address of this box or 0.0.0.0",
        )
    if probe.state == ports.NOT_ALLOWED:
        return warn(
            name,
            f"{where}: no socket holds it, but this user may not bind a port "
            f"below {ports.unprivileged_port_start()}",
            "run the daemon with CAP_NET_BIND_SERVICE (the systemd unit grants it) "
            "or check as root",
        )
    holders = ", ".join(probe.holders) or "a process of another user (run as root to see it)"
    if probe.holders and all(_is_callqa(h, service) for h in probe.holders):
        return ok(name, f"{where} is held by the running callqa: {holders}")
    return fail(name, f"{where} is in use by {holders}", PORT_FIX.format(setting=setting))


def _is_callqa(holder: str, service: str) -> bool:
    argv = holder.partition("(")[2].rstrip(")").split()
    runs_cli = bool(argv) and (Path(argv[0]).name == "callqa" or "core.cli" in argv)
    wanted = ["admin", "serve"] if service == "the admin web" else ["serve"]
    return runs_cli and any(argv[i : i + len(wanted)] == wanted for i in range(len(argv)))


def check_sip_port(ctx: Context) -> CheckResult:
    s = ctx.settings
    if not s.sip_enabled:
        return ok("sip port", "SIP is off (sip_enabled = false)")
    results = [
        _port_result("sip port", ports.probe_port(s.sip_host, s.sip_port, proto), "sip_port", "SIP")
        for proto in ("udp", "tcp")
        if proto in [t.strip() for t in s.sip_transports.lower().split(",")]
    ]
    if not results:
        return fail(
            "sip port",
            f"sip_transports = {s.sip_transports!r} names no transport",
            "set sip_transports to udp, tcp or udp,tcp",
        )
    return _worst(results)


def check_rtp_ports(ctx: Context) -> CheckResult:
    s = ctx.settings
    name = "rtp ports"
    if not s.sip_enabled:
        return ok(name, "SIP is off (sip_enabled = false)")
    first, last = s.rtp_port_first, s.rtp_port_last
    if not 0 < first < last <= 65535:
        return fail(
            name,
            f"{first}-{last} is not a port range",
            "set rtp_port_first below rtp_port_last, both in 1-65535",
        )
    busy = ports.busy_udp_ports(s.sip_host, first, last)
    span = f"UDP {first}-{last} on {s.sip_host}"
    if busy:
        shown = ", ".join(map(str, busy[:5])) + (" ..." if len(busy) > 5 else "")
        holders = ports.holders_of(s.sip_host, busy[0], "udp")
        by = f" ({busy[0]} by {', '.join(holders)})" if holders else ""
        if holders and all(_is_callqa(h, "SIP") for h in holders):
            return ok(name, f"{span}: {len(busy)} port(s) held by the running callqa{by}")
        return fail(
            name,
            f"{span}: {len(busy)} port(s) in use: {shown}{by}",
            "stop what holds them, or move the range (rtp_port_first, rtp_port_last)",
        )
    ephemeral = ports.ephemeral_range()
    if ephemeral and first <= ephemeral[1] and last >= ephemeral[0]:
        return warn(
            name,
            f"{span} is free but overlaps the kernel's ephemeral ports "
            f"{ephemeral[0]}-{ephemeral[1]}, which outgoing connections may take",
            "move the range below it, or narrow net.ipv4.ip_local_port_range",
        )
    return ok(name, f"{span}: all {last - first + 1} free")


def check_grpc_port(ctx: Context) -> CheckResult:
    s = ctx.settings
    if s.grpc_port == 0:
        return ok("grpc port", "grpc_port = 0: any free port")
    probe = ports.probe_port(s.grpc_host, s.grpc_port, "tcp")
    return _port_result("grpc port", probe, "grpc_port", "gRPC")


def check_admin_port(ctx: Context) -> CheckResult:
    s = ctx.settings
    probe = ports.probe_port(s.admin_host, s.admin_port, "tcp")
    return _port_result("admin port", probe, "admin_port", "the admin web")


def check_metrics_port(ctx: Context) -> CheckResult:
    s = ctx.settings
    if s.metrics_port == 0:
        return ok("metrics port", "metrics_port = 0: the metrics endpoint is off")
    probe = ports.probe_port(s.metrics_host, s.metrics_port, "tcp")
    return _port_result("metrics port", probe, "metrics_port", "the metrics endpoint")


def _worst(results: list[CheckResult]) -> CheckResult:
    order = {"ok": 0, "warn": 1, "fail": 2}
    worst = max(results, key=lambda r: order[r.status.value])
    if worst.status.value == "ok" and len(results) > 1:
        return ok(worst.name, "; ".join(r.message for r in results))
    return worst


# --------------------------------------------------------------------------- peers


def check_peers(ctx: Context) -> CheckResult:
    """Who may send calls: set, valid, and not only this box or everybody."""
    from core.ingest.receive import server_settings
    from telephony.sip.transport import PeerFilter

    name = "allowed peers"
    s = ctx.settings
    if not s.sip_enabled:
        return ok(name, "SIP is off (sip_enabled = false)")
    try:
        networks = PeerFilter(server_settings(s).allowed_peers).networks
    except ConfigError as exc:
        return fail(name, str(exc), "list addresses or networks, comma-separated")
    fix = "list your SBCs' and PBXs' addresses in sip_allowed_peers (e.g. `10.1.0.5,10.1.0.0/28`)"
    if not networks:
        return fail(name, "sip_allowed_peers is empty: every INVITE is refused", fix)
    if any(n.prefixlen == 0 for n in networks):
        return warn(name, "sip_allowed_peers admits every address", fix)
    if (
        all(n.is_loopback for n in networks)
        and not ipaddress.ip_address(_host(s.sip_host)).is_loopback
    ):
        return warn(name, "only this box may send calls (sip_allowed_peers is loopback only)", fix)
    return ok(name, "calls accepted from " + ", ".join(map(str, networks)))


def _host(host: str) -> str:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return "0.0.0.0"
    return host
