"""Run a command under the units' system-call filter, without systemd.

`python tests/systemd/syscall_filter.py UNIT COMMAND...` reads the unit's SystemCallFilter=
lines, expands the groups with `systemd-analyze syscall-filter`, loads that allow list with
libseccomp (every other call failing with the unit's SystemCallErrorNumber=, EPERM) and
replaces itself with COMMAND, which inherits the filter, as the unit's process would.
"""

from __future__ import annotations

import ctypes
import errno
import os
import subprocess
import sys
from pathlib import Path

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO = 0x00050000
PR_SET_NO_NEW_PRIVS = 38


def expand(group: str, seen: set[str] | None = None) -> set[str]:
    """The system calls of ``group`` (a name or an @group), sub-groups expanded."""
    if not group.startswith("@"):
        return {group}
    seen = set() if seen is None else seen
    out = subprocess.run(
        ["systemd-analyze", "syscall-filter", group], capture_output=True, text=True, check=True
    ).stdout
    names: set[str] = set()
    for line in out.splitlines()[1:]:
        item = line.strip()
        if not item or item.startswith("#") or item in seen:
            continue
        seen.add(item)
        names |= expand(item, seen)
    return names


def allowed_calls(unit: Path) -> set[str]:
    """The unit's allow list: its SystemCallFilter= lines in order, `~` ones taking away."""
    allowed: set[str] = set()
    for line in unit.read_text().splitlines():
        if not line.startswith("SystemCallFilter="):
            continue
        value = line.partition("=")[2].strip()
        deny = value.startswith("~")
        names = set().union(*(expand(item) for item in value.lstrip("~").split()))
        allowed = allowed - names if deny else allowed | names
    return allowed


def load(allowed: set[str]) -> int:
    """Load the filter into this process; returns how many calls it allows."""
    lib = ctypes.CDLL("libseccomp.so.2")
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(SCMP_ACT_ERRNO | errno.EPERM)
    count = 0
    for name in sorted(allowed):
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number >= 0 and lib.seccomp_rule_add(ctx, SCMP_ACT_ALLOW, number, 0) == 0:
            count += 1
    # Without CAP_SYS_ADMIN a filter needs no_new_privs, which the units set too.
    ctypes.CDLL(None).prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if lib.seccomp_load(ctx) != 0:
        raise OSError("seccomp_load failed")
    return count


if __name__ == "__main__":
    count = load(allowed_calls(Path(sys.argv[1])))
    print(f"system-call filter: {count} calls allowed", file=sys.stderr)
    os.execvp(sys.argv[2], sys.argv[2:])
