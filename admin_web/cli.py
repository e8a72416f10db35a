"""`callqa admin`: serve the admin web (pruning its audit log daily), make users, prune the
audit log by hand.

Added to `callqa` through the ``callqa.commands`` entry point, so that core never imports
the admin web.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from core.config import Settings

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def add_parser(sub: Any) -> None:
    p = sub.add_parser("admin", help="the admin web: serve it, make users")
    asub = p.add_subparsers(dest="admin_command", required=True)
    s = asub.add_parser("serve", help="serve the admin web (waitress)")
    s.add_argument("--host", help="address to listen on (setting admin_host)")
    s.add_argument("--port", type=int, help="port (setting admin_port)")
    s.add_argument("--new-admin", metavar="NAME",
                   help="first make (or reset) administrator NAME with a freshly generated "
                        "password, printed here (the demo uses this)")
    s.set_defaults(func=cmd_serve)
    u = asub.add_parser(
        "create-user",
        help="make a user; the password is read from standard input when it is not a terminal",
    )
    u.add_argument("name")
    u.add_argument("--role", required=True, choices=("admin", "inspector", "supervisor",
                                                     "viewer"))
    u.add_argument("--team", help="the team a supervisor sees (and the user's own team)")
    u.add_argument("--language", default="zh", choices=("zh", "en"))
    u.add_argument("--recording", metavar="PERMS",
                   help="what the user may do with recordings: comma-separated play, download,"
                        " export (default: by role)")
    u.set_defaults(func=cmd_create_user)
    pw = asub.add_parser("set-password", help="set a user's password (read as for create-user)")
    pw.add_argument("name")
    pw.set_defaults(func=cmd_set_password)
    pa = asub.add_parser("prune-audit",
                         help="prune audit log entries older than retention_audit_days")
    pa.add_argument("--dry-run", action="store_true",
                    help="count what would be pruned; prune nothing")
    pa.set_defaults(func=cmd_prune_audit)


def read_password(prompt: str = "Password: ") -> str:
    """From standard input when it is not a terminal (scripts), else asked twice."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(prompt)
    if getpass.getpass("Again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def cmd_create_user(args: argparse.Namespace, config: Settings) -> int:
    from admin_web import audit, site_db, users

    site_db.prepare(config.data_dir)
    conn = site_db.connect(config.data_dir)
    try:
        password = read_password()
        try:
            user = users.create_user(conn, args.name, password, args.role, args.team,
                                     args.language, args.recording)
        except users.UserError as exc:
            print(f"callqa: error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        audit.record(conn, "cli", "user_created", detail={
            "user": user.username, "role": user.role, "team": user.team_id,
            "recording": user.recording_perms,
        })
    finally:
        conn.close()
    print(f"created {user.role} {user.username}"
          + (f" (team {user.team_id})" if user.team_id else ""))
    return EXIT_OK


def cmd_set_password(args: argparse.Namespace, config: Settings) -> int:
    from admin_web import audit, site_db, users

    site_db.prepare(config.data_dir)
    conn = site_db.connect(config.data_dir)
    try:
        user = users.find_user(conn, args.name)
        if user is None:
            print(f"callqa: error: no user {args.name!r}", file=sys.stderr)
            return EXIT_BAD_INPUT
        try:
            users.set_password(conn, user.id, read_password())
        except users.UserError as exc:
            print(f"callqa: error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        audit.record(conn, "cli", "password_set", detail={"user": user.username})
    finally:
        conn.close()
    print(f"password of {user.username} changed")
    return EXIT_OK


def cmd_prune_audit(args: argparse.Namespace, config: Settings) -> int:
    from admin_web import audit, audit_prune, site_db

    site_db.prepare(config.data_dir)
    conn = site_db.connect(config.data_dir)
    try:
        done = audit_prune.prune(conn, config.retention_audit_days, dry_run=args.dry_run)
        check = audit.verify(conn)
    finally:
        conn.close()
    print(done.summary())
    print(f"chain of {check.entries} entries from entry {check.first_kept_id}: "
          + ("intact" if check.valid else f"BROKEN at {check.broken_at} ({check.reason})"))
    return EXIT_OK if check.valid else 1


def _fresh_admin(config: Settings, name: str) -> str:
    """Make administrator `name`, or give it a new password; returns the password."""
    import secrets

    from admin_web import audit, site_db, users

    password = secrets.token_urlsafe(12)
    conn = site_db.connect(config.data_dir)
    try:
        user = users.find_user(conn, name)
        if user is None:
            users.create_user(conn, name, password, "admin")
            audit.record(conn, "cli", "user_created", detail={"user": name, "role": "admin"})
        else:
            if user.role != "admin":
                raise ValueError(f"user {name!r} exists and is not an administrator")
            users.set_password(conn, user.id, password)
            audit.record(conn, "cli", "password_set", detail={"user": name})
    finally:
        conn.close()
    return password


def cmd_serve(args: argparse.Namespace, config: Settings) -> int:
    import logging

    from waitress import serve

    from admin_web import create_app
    from core.daemon.file_modes import use_private_umask

    use_private_umask()  # admin.db, the secret key and the audio cache: the site's user only
    host = args.host or config.admin_host
    port = args.port if args.port is not None else config.admin_port
    app = create_app({"DATA_DIR": str(config.data_dir)})
    if args.new_admin:
        password = _fresh_admin(config, args.new_admin)
        print(f"administrator {args.new_admin}, password {password}", flush=True)
    logging.getLogger("waitress").setLevel(logging.INFO)
    from admin_web import audit_prune

    audit_prune.start_daily(config.data_dir, config.retention_audit_days)
    print(f"callqa admin web on http://{host}:{port}/ (data {config.data_dir})", flush=True)
    serve(app, host=host, port=port, threads=8, ident="callqa-admin")
    return EXIT_OK
