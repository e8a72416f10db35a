"""`callqa retention`: apply the retention settings now, or see what they would delete.

The same pass the daemon makes each day (`core.storage.retention`); it may run while the
daemon runs (each batch is its own short transaction).
"""

from __future__ import annotations

import argparse
from typing import Any

from core.config import Settings
from core.storage import retention
from core.storage.db import open_db
from core.storage.holds import Holds, HoldsUnreadable

EXIT_OK = 0
EXIT_FAILED = 1


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "retention",
        help="delete old recordings, transcripts and calls as the retention_* settings say "
             "(calls under review or appeal are kept)",
    )
    p.add_argument("--dry-run", action="store_true",
                   help="count what would be deleted; delete nothing")
    p.add_argument("--batch", type=int, default=retention.BATCH_CALLS, metavar="CALLS",
                   help="calls per transaction (default %(default)s)")
    p.add_argument("--history", action="store_true", help="list the last passes and stop")
    p.set_defaults(func=run)


def _print_history(config: Settings) -> None:
    db = open_db(config.db_path)
    try:
        runs = retention.last_runs(db, 10)
    finally:
        db.close()
    if not runs:
        print("no retention pass yet")
    for r in runs:
        ids = f" ids {r['first_call_id']} .. {r['last_call_id']}" if r["first_call_id"] else ""
        end = r["error"] or ("" if r["finished_at"] else "stopped before its end")
        print(f"{r['started_at']}  calls {r['calls']}  recordings {r['recordings']}  "
              f"transcripts {r['transcripts']}  files {r['files']}  held {r['held']}{ids}"
              + (f"  {end}" if end else ""))


def run(args: argparse.Namespace, config: Settings) -> int:
    if args.history:
        _print_history(config)
        return EXIT_OK
    if args.batch < 1:
        raise ValueError("--batch must be at least 1")
    policy = retention.Policy.from_settings(config)
    for kind, name in (("calls", "retention_scores_days"),
                       ("recordings", "retention_recordings_days"),
                       ("transcripts", "retention_transcripts_days")):
        days = policy.days(kind)
        print(f"{name} = {days}" + ("  (kept for ever)" if not days else ""))
    db = open_db(config.db_path)
    holds = Holds(config.data_dir)
    try:
        report = retention.Pass(db, config.data_dir, policy, holds, dry_run=args.dry_run,
                                batch_calls=args.batch).run()  # fmt: skip
    except HoldsUnreadable as exc:
        print(f"callqa: error: {exc}; nothing was deleted")
        return EXIT_FAILED
    finally:
        holds.close()
        db.close()
    print(report.summary())
    return EXIT_OK
