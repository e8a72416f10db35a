"""Checks of the machine itself: is the clock synchronised, is the CPU held back.

The clock is read with ``adjtimex(2)`` in read-only mode, which needs no privilege: the
kernel's ``STA_UNSYNC`` flag is cleared by an NTP client (chrony, systemd-timesyncd, ntpd)
that disciplines the clock, and its maximum-error estimate grows while none does.
``timedatectl`` is asked only where adjtimex cannot be called. The CPU is read from
``/sys/devices/system/cpu``: the frequency governor and its limits, and the thermal
throttle counters of Intel CPUs.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import sys
from pathlib import Path

from core.cli.doctor.result import CheckResult, ok, warn

CPU_SYSFS = Path("/sys/devices/system/cpu")
STA_UNSYNC = 0x0040
TIME_ERROR = 5
TIMEDATECTL_TIMEOUT_S = 5.0
US_PER_MS = 1000.0
KHZ_PER_MHZ = 1000
# Drivers under which "powersave" still follows the load (hardware-managed P-states).
SCALING_DRIVERS_WITH_DYNAMIC_POWERSAVE = ("intel_pstate", "amd-pstate", "amd-pstate-epp")
CLOCK_FIX = (
    "run an NTP client: `apt install chrony` (or `systemctl enable --now "
    "systemd-timesyncd`) pointed at the same time source as the PBX; call start times and "
    "alert deadlines rely on the clock"
)


class _Timex(ctypes.Structure):
    """struct timex of <sys/timex.h> (Linux)."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("reserved", ctypes.c_int * 11),
    ]


def kernel_clock() -> tuple[bool, float] | None:
    """(synchronised, maximum error in ms) from adjtimex; None where it cannot be called."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        adjtimex = ctypes.CDLL(None, use_errno=True).adjtimex
    except (OSError, AttributeError):
        return None
    timex = _Timex()  # modes 0: read only
    state = adjtimex(ctypes.byref(timex))
    if state < 0:
        return None
    synced = state != TIME_ERROR and not timex.status & STA_UNSYNC
    return synced, timex.maxerror / US_PER_MS


def timedatectl_synchronised() -> bool | None:
    """What ``timedatectl`` says of NTP synchronisation; None where it cannot say."""
    tool = shutil.which("timedatectl")
    if tool is None:
        return None
    try:
        out = subprocess.run(
            [tool, "show", "--property=NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=TIMEDATECTL_TIMEOUT_S,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"yes": True, "no": False}.get(out)


def check_clock() -> CheckResult:
    name = "clock"
    kernel = kernel_clock()
    if kernel is not None:
        synced, max_error_ms = kernel
        if synced:
            return ok(name, f"synchronised (the kernel's maximum error is {max_error_ms:.0f} ms)")
        return warn(
            name,
            "not synchronised: the kernel says no NTP client disciplines the clock "
            f"(maximum error {max_error_ms / 1000:.0f} s)",
            CLOCK_FIX,
        )
    synced_td = timedatectl_synchronised()
    if synced_td is True:
        return ok(name, "synchronised (timedatectl)")
    if synced_td is False:
        return warn(name, "not synchronised (timedatectl)", CLOCK_FIX)
    return warn(
        name,
        "unknown: neither adjtimex nor timedatectl answers here",
        "check the clock by hand (`chronyc tracking` or `timedatectl`)",
    )


# --------------------------------------------------------------------------- CPU


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def check_cpu(sysfs: Path = CPU_SYSFS) -> CheckResult:
    """Governor and frequency limits of every CPU, and the thermal throttle counters."""
    name = "cpu"
    cpus = sorted(p for p in sysfs.glob("cpu[0-9]*") if p.name[3:].isdigit())
    problems: list[str] = []
    fixes: list[str] = []
    seen: list[str] = []
    governors = {_read(c / "cpufreq" / "scaling_governor") for c in cpus} - {None}
    driver = _read(sysfs / "cpu0" / "cpufreq" / "scaling_driver") or "?"
    if governors:
        seen.append(f"governor {', '.join(sorted(g for g in governors if g))} ({driver})")
        dynamic = driver in SCALING_DRIVERS_WITH_DYNAMIC_POWERSAVE
        if "powersave" in governors and not dynamic:
            problems.append(
                f"the powersave governor holds the CPUs at their lowest speed ({driver})"
            )
            fixes.append("set the performance governor (`cpupower frequency-set -g performance`)")
        capped = []
        for cpu in cpus:
            top = _read(cpu / "cpufreq" / "cpuinfo_max_freq")
            limit = _read(cpu / "cpufreq" / "scaling_max_freq")
            if top and limit and top.isdigit() and limit.isdigit() and int(limit) < int(top):
                mhz = int(limit) // KHZ_PER_MHZ, int(top) // KHZ_PER_MHZ
                capped.append(f"{cpu.name} {mhz[0]} of {mhz[1]} MHz")
        if capped:
            problems.append("frequency capped below the maximum: " + ", ".join(capped[:4]))
            fixes.append(
                "raise scaling_max_freq (`cpupower frequency-set -u` the maximum) or "
                "the BIOS power limit"
            )
    counters = 0
    throttles = 0
    for cpu in cpus:
        for kind in ("core_throttle_count", "package_throttle_count"):
            value = _read(cpu / "thermal_throttle" / kind)
            if value is not None and value.isdigit():
                counters += 1
                throttles += int(value)
    if counters:
        seen.append(f"{throttles} thermal throttle events since boot")
        if throttles:
            problems.append(f"the CPU was slowed for heat {throttles} times since boot")
            fixes.append("check the cooling (fans, air flow, dust) and the BIOS power limits")
    if not seen:
        return ok(
            name,
            "unknown: this box shows no CPU frequency or thermal data under "
            f"{sysfs} (a virtual machine?); nothing to check",
        )
    if problems:
        return warn(name, "; ".join(problems), "; ".join(fixes))
    return ok(name, "not throttled: " + "; ".join(seen))
