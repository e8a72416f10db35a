"""Who may do what in the admin web: four roles, and the permissions each one holds.

Permissions are checked by name on every route (`admin_web.auth.require`). Playing,
downloading and exporting recordings are separate permissions that an administrator grants
per user (`users.recording_perms`); the role decides everything else.
"""

from __future__ import annotations

ROLES: tuple[str, ...] = ("admin", "inspector", "supervisor", "viewer")

# Permissions that come with the role itself.
READ_CALLS = "calls.read"
REVIEW = "review"            # confirm/reject findings, add missed ones, submit a review
APPEAL = "appeal"            # dispute a reviewed call of one's own team
DECIDE = "decide"            # decide an appeal (never on a review of one's own)
SAMPLING = "sampling"        # sampling plans
AGREEMENT = "agreement.read"
USERS = "users.manage"
AUDIT = "audit.read"
REPORTS = "reports.read"     # quality reports (a supervisor: own team only)
LIVE = "live.read"           # live lines and alerts (a supervisor: own team only)
CAPACITY = "capacity"        # the box's load, capacity benchmarks
DRYRUN = "rubrics.dryrun"    # re-score stored calls with a draft rubric (试运行)
RUBRICS = "rubrics.manage"   # edit, import, activate rubrics; assign them to teams
RUBRICS_READ = "rubrics.read"  # see rubrics, their history and routes; export
ORIGINAL_AUDIO = "recording.original"  # the unredacted recording, where one is kept

# Recording permissions, granted per user.
PLAY = "play"
DOWNLOAD = "download"
EXPORT = "export"
RECORDING_PERMISSIONS: tuple[str, ...] = (PLAY, DOWNLOAD, EXPORT)

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset({READ_CALLS, REVIEW, DECIDE, SAMPLING, AGREEMENT, USERS, AUDIT, LIVE,
                        CAPACITY, DRYRUN, REPORTS, RUBRICS, RUBRICS_READ, ORIGINAL_AUDIO}),
    "inspector": frozenset({READ_CALLS, REVIEW, DECIDE, AGREEMENT, LIVE, REPORTS,
                            RUBRICS_READ}),
    "supervisor": frozenset({READ_CALLS, APPEAL, LIVE, REPORTS}),
    "viewer": frozenset({READ_CALLS, REPORTS}),
}

# What a new user of each role may do with recordings unless told otherwise.
DEFAULT_RECORDING_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "admin": (PLAY, DOWNLOAD, EXPORT),
    "inspector": (PLAY, DOWNLOAD),
    "supervisor": (PLAY,),
    "viewer": (),
}

# Roles whose view of calls is limited to their own team.
TEAM_BOUND_ROLES = frozenset({"supervisor"})


def permissions(role: str, recording_perms: str) -> frozenset[str]:
    """Everything a user with `role` and these granted recording permissions may do."""
    granted = {p for p in recording_perms.split(",") if p in RECORDING_PERMISSIONS}
    return ROLE_PERMISSIONS.get(role, frozenset()) | granted


def parse_recording_perms(text: str) -> str:
    """Normalise a comma-separated list of recording permissions; ValueError names a bad one."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    for name in names:
        if name not in RECORDING_PERMISSIONS:
            raise ValueError(
                f"unknown recording permission {name!r}: use {', '.join(RECORDING_PERMISSIONS)}"
            )
    return ",".join(p for p in RECORDING_PERMISSIONS if p in names)
