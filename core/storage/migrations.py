"""The database schema, built by numbered migrations.

Each migration runs once, in version order, inside the same transaction as the row that
records it in `schema_migrations`; a database therefore is always at a whole version.
Opening a database applies only the migrations it lacks (two processes opening a fresh
file at once are serialised by `BEGIN IMMEDIATE`, and the loser finds nothing left to
do). A database that records a version above the newest one known here was written by a
newer callqa and is refused: this code could misread or damage what it does not know.

To change the schema, append a migration with the next number; never edit one that has
shipped.

Tables (version 1):

* ``teams``, ``agents``: who took the call; created on first sight of an id.
* ``rubric_versions``: every distinct text of every rubric, numbered per rubric from 1,
  at most one of them ``active`` per rubric.
* ``calls``: one row per call, from its creation (live calls exist before they are
  scored); ``status`` follows it through its life ('live', 'recorded', 'scoring',
  'scored', 'failed').
* ``legs``: one row per side of a call (agent, customer) with its talk time and levels.
* ``utterances``: the transcript; ``search_text`` is the text as the full-text index
  sees it (see `core.storage.search.search_text`).
* ``utterances_fts``: FTS5 index over ``utterances.search_text``, kept in step by
  triggers, so that deleting a call (cascading to its utterances) also unindexes it.
* ``findings``: what the rubric items found, in call order.
* ``scores``: the score of a call and the exact rubric version it was scored with.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlite_utils import Database


class SchemaTooNewError(ValueError):
    """The database was written by a newer callqa than this one.

    A ValueError, so that the command line reports it as bad input, without a traceback.
    """


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Database], None]


def _run(statements: Sequence[str]) -> Callable[[Database], None]:
    def apply(db: Database) -> None:
        for sql in statements:
            db.execute(sql)

    return apply


V1_SCHEMA = (
    """
    CREATE TABLE teams (
        id TEXT PRIMARY KEY,
        name TEXT,
        created_at TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE agents (
        id TEXT PRIMARY KEY,
        name TEXT,
        team_id TEXT REFERENCES teams(id),
        created_at TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE rubric_versions (
        rubric_id TEXT NOT NULL,
        version INTEGER NOT NULL CHECK (version >= 1),
        yaml TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        active INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1)),
        created_at TEXT NOT NULL,
        PRIMARY KEY (rubric_id, version)
    )
    """,
    # At most one active version per rubric, enforced by the database itself.
    """
    CREATE UNIQUE INDEX rubric_versions_one_active
        ON rubric_versions (rubric_id) WHERE active = 1
    """,
    """
    CREATE TABLE calls (
        id TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at TEXT NOT NULL,
        duration_s REAL,
        recording_path TEXT,
        agent_id TEXT REFERENCES agents(id),
        team_id TEXT REFERENCES teams(id),
        language TEXT,
        caller TEXT,
        callee TEXT,
        meta TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )
    """,
    "CREATE INDEX calls_started ON calls (started_at)",
    "CREATE INDEX calls_agent ON calls (agent_id, started_at)",
    "CREATE INDEX calls_team ON calls (team_id, started_at)",
    """
    CREATE TABLE legs (
        call_id TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
        speaker TEXT NOT NULL,
        channel INTEGER,
        talk_time_s REAL,
        utterances INTEGER NOT NULL DEFAULT 0,
        median_level_db REAL,
        median_pitch_hz REAL,
        meta TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (call_id, speaker)
    )
    """,
    """
    CREATE TABLE utterances (
        id INTEGER PRIMARY KEY,
        call_id TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        speaker TEXT NOT NULL,
        start_s REAL NOT NULL,
        end_s REAL NOT NULL,
        text TEXT NOT NULL,
        level_db REAL,
        voiced_s REAL,
        pitch_hz REAL,
        rate_per_min REAL,
        avg_logprob REAL,
        no_speech_prob REAL,
        search_text TEXT NOT NULL,
        UNIQUE (call_id, seq)
    )
    """,
    """
    CREATE VIRTUAL TABLE utterances_fts USING fts5 (
        search_text,
        content = 'utterances',
        content_rowid = 'id',
        tokenize = 'unicode61 remove_diacritics 2'
    )
    """,
    """
    CREATE TRIGGER utterances_fts_insert AFTER INSERT ON utterances BEGIN
        INSERT INTO utterances_fts (rowid, search_text) VALUES (new.id, new.search_text);
    END
    """,
    """
    CREATE TRIGGER utterances_fts_delete AFTER DELETE ON utterances BEGIN
        INSERT INTO utterances_fts (utterances_fts, rowid, search_text)
            VALUES ('delete', old.id, old.search_text);
    END
    """,
    """
    CREATE TRIGGER utterances_fts_update AFTER UPDATE OF search_text ON utterances BEGIN
        INSERT INTO utterances_fts (utterances_fts, rowid, search_text)
            VALUES ('delete', old.id, old.search_text);
        INSERT INTO utterances_fts (rowid, search_text) VALUES (new.id, new.search_text);
    END
    """,
    """
    CREATE TABLE findings (
        id INTEGER PRIMARY KEY,
        call_id TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        item_id TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        kind TEXT NOT NULL,
        category TEXT,
        speaker TEXT NOT NULL,
        severity TEXT NOT NULL,
        deduct REAL NOT NULL,
        start_s REAL NOT NULL,
        end_s REAL NOT NULL,
        evidence TEXT NOT NULL,
        alert INTEGER NOT NULL DEFAULT 0,
        detail TEXT NOT NULL DEFAULT '{}',
        UNIQUE (call_id, seq)
    )
    """,
    "CREATE INDEX findings_item ON findings (item_id)",
    """
    CREATE TABLE scores (
        call_id TEXT PRIMARY KEY REFERENCES calls(id) ON DELETE CASCADE,
        rubric_id TEXT NOT NULL,
        rubric_version INTEGER,
        score REAL NOT NULL,
        passed INTEGER NOT NULL CHECK (passed IN (0, 1)),
        fatal INTEGER NOT NULL DEFAULT 0 CHECK (fatal IN (0, 1)),
        deducted REAL,
        category_scores TEXT NOT NULL DEFAULT '{}',
        scoring TEXT NOT NULL DEFAULT '{}',
        metrics TEXT NOT NULL DEFAULT '{}',
        scored_at TEXT NOT NULL,
        FOREIGN KEY (rubric_id, rubric_version) REFERENCES rubric_versions (rubric_id, version)
    )
    """,
    "CREATE INDEX scores_rubric ON scores (rubric_id, rubric_version)",
)

# Version 2: ``benchmark_runs``, one row per capacity benchmark (`core.storage.benchmarks`):
# when it ran, what ran it ('daemon', ...), the most lines it held, the ASR it measured and
# every step's figures as JSON.
V2_BENCHMARK_RUNS = (
    """
    CREATE TABLE benchmark_runs (
        id INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        kind TEXT NOT NULL,
        max_lines_held INTEGER NOT NULL,
        asr_device TEXT,
        compute_type TEXT,
        model_name TEXT,
        steps_json TEXT NOT NULL DEFAULT '[]',
        summary TEXT NOT NULL DEFAULT ''
    )
    """,
    "CREATE INDEX benchmark_runs_finished ON benchmark_runs (finished_at)",
)

# Version 3: ``rubric_routes``, which rubric a new call gets by agent, skill group or team
# (`core.storage.routes`), set from the admin web through the daemon's gRPC API. A route of
# the ``rubric_routes`` setting applies where this table has none for the same key.
V3_RUBRIC_ROUTES = (
    """
    CREATE TABLE rubric_routes (
        kind TEXT NOT NULL CHECK (kind IN ('agent', 'skill', 'team')),
        value TEXT NOT NULL CHECK (value <> ''),
        rubric_id TEXT NOT NULL CHECK (rubric_id <> ''),
        updated_at TEXT NOT NULL,
        PRIMARY KEY (kind, value)
    )
    """,
)

# Version 4: ``leg_timelines``, one row per leg of a scored call: what the rubric engine
# read besides the transcript (`core.storage.timelines`), so that a draft rubric can score
# the call again without its audio. ``call_duration_s`` and ``language`` are the call's as
# the engine saw them (the same on every leg); ``voiced`` holds the VAD's speech runs as
# zlib-compressed float64 (start, end) pairs; ``levels`` and ``pitch`` one byte per frame of
# ``frame_s`` (zlib), NULL where the leg was not analysed whole (live calls).
V4_LEG_TIMELINES = (
    """
    CREATE TABLE leg_timelines (
        call_id TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
        speaker TEXT NOT NULL,
        duration_s REAL NOT NULL,
        call_duration_s REAL NOT NULL,
        language TEXT NOT NULL,
        voiced BLOB NOT NULL,
        frame_s REAL,
        levels BLOB,
        pitch BLOB,
        PRIMARY KEY (call_id, speaker)
    )
    """,
)

# Version 5: covering indexes for the admin web's quality reports (`admin_web.report_data`),
# which aggregate every call of a period with its score and findings. Each holds every column
# a report reads from its table, so a report over 100,000 calls reads the indexes only and
# never the wide rows (a score row carries kilobytes of JSON): see benchmarks/bench_report.py.
# By time (the center, a team or an agent within it), by team and time (a team's report),
# then per call its score and its findings, and the items' names.
REPORT_INDEXES: tuple[tuple[str, str], ...] = (
    ("calls_report_time", "calls (started_at, team_id, agent_id, id)"),
    ("calls_report_team", "calls (team_id, started_at, agent_id, id)"),
    ("scores_report", "scores (call_id, score, passed, fatal, rubric_id, rubric_version)"),
    ("findings_report", "findings (call_id, item_id, severity, deduct)"),
    # each item's name without reading the findings (the agreement's and the call list's)
    ("findings_item_name", "findings (item_id, name)"),
)
V5_REPORT_INDEXES = tuple(f"CREATE INDEX {name} ON {on}" for name, on in REPORT_INDEXES)

# Version 6: ``call_decisions``, a recorded call's decision record (`core.storage.decisions`):
# which streams were taken and why, who the agent is and why, each metadata update, pause
# and resume, in the order they were made (``seq``), with their details as JSON.
V6_CALL_DECISIONS = (
    """
    CREATE TABLE call_decisions (
        call_id TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        summary TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (call_id, seq)
    )
    """,
)

# Version 7: how sure the machine is. ``findings.confidence`` (0..1, core.rubric.confidence;
# NULL for findings stored before it was judged); per utterance the near-missed rubric phrases
# checked against the audio (``checks``, JSON, core.calls.PhraseCheck) and, where an accepted
# check changed the text, the text as decoded (``decoded_text``).
V7_CONFIDENCE = (
    "ALTER TABLE findings ADD COLUMN confidence REAL",
    "ALTER TABLE utterances ADD COLUMN checks TEXT NOT NULL DEFAULT '[]'",
    "ALTER TABLE utterances ADD COLUMN decoded_text TEXT",
)

# Version 8: retention (`core.storage.retention`). A call whose recording or transcript was
# deleted says when (``recording_deleted_at``, ``transcript_deleted_at``); its row no longer
# names the file. ``retention_files`` holds the recordings whose rows let go of them in the
# same transaction and that are still to be removed from disk, so a crash between the commit
# and the unlink leaves a record the next pass finishes. ``retention_runs``: what each pass
# deleted, for the log, the metrics and `callqa retention`.
V8_RETENTION = (
    "ALTER TABLE calls ADD COLUMN recording_deleted_at TEXT",
    "ALTER TABLE calls ADD COLUMN transcript_deleted_at TEXT",
    """
    CREATE TABLE retention_files (
        path TEXT PRIMARY KEY,
        call_id TEXT NOT NULL,
        queued_at TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE retention_runs (
        id INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        recordings INTEGER NOT NULL DEFAULT 0,
        transcripts INTEGER NOT NULL DEFAULT 0,
        calls INTEGER NOT NULL DEFAULT 0,
        files INTEGER NOT NULL DEFAULT 0,
        held INTEGER NOT NULL DEFAULT 0,
        first_call_id TEXT,
        last_call_id TEXT,
        error TEXT
    )
    """,
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "calls, legs, utterances with full-text index, findings, scores, rubrics",
              _run(V1_SCHEMA)),
    Migration(2, "benchmark_runs: capacity benchmark results", _run(V2_BENCHMARK_RUNS)),
    Migration(3, "rubric_routes: rubric per agent, skill group or team", _run(V3_RUBRIC_ROUTES)),
    Migration(4, "leg_timelines: each leg's voice timeline, to score a call again",
              _run(V4_LEG_TIMELINES)),
    Migration(5, "report indexes: calls by time and team, scores and findings per call",
              _run(V5_REPORT_INDEXES)),
    Migration(6, "call_decisions: what the recorder decided about each call, and why",
              _run(V6_CALL_DECISIONS)),
    Migration(7, "confidence of findings; phrase checks and decoded text of utterances",
              _run(V7_CONFIDENCE)),
    Migration(8, "retention: deletion marks on calls, recordings to remove, passes made",
              _run(V8_RETENTION)),
)


def latest_version(migrations: Sequence[Migration] = MIGRATIONS) -> int:
    return max((m.version for m in migrations), default=0)


def _ensure_table(db: Database) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )


def applied_versions(db: Database) -> set[int]:
    """The migration versions recorded in the database (empty for a new file)."""
    if not db["schema_migrations"].exists():
        return set()
    return {int(row[0]) for row in db.execute("SELECT version FROM schema_migrations")}


def _db_file(db: Database) -> str:
    for row in db.execute("PRAGMA database_list"):
        if row[1] == "main":
            return str(row[2] or ":memory:")
    return "the database"


def _refuse_newer(db: Database, applied: set[int], known: int) -> None:
    newest = max(applied, default=0)
    if newest > known:
        raise SchemaTooNewError(
            f"{_db_file(db)} has schema version {newest}, newer than version {known} that "
            f"this callqa understands; upgrade callqa or point it at another data directory"
        )


def migrate(db: Database, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Apply the migrations `db` lacks, each with its record; returns the versions applied."""
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)) or (versions and versions[0] < 1):
        raise ValueError(f"migration versions must be distinct, ascending and >= 1: {versions}")
    known = latest_version(migrations)
    _refuse_newer(db, applied_versions(db), known)
    if all(v in applied_versions(db) for v in versions):
        return []
    _ensure_table(db)
    db.execute("BEGIN IMMEDIATE")
    done: list[int] = []
    try:
        applied = applied_versions(db)
        _refuse_newer(db, applied, known)
        for m in migrations:
            if m.version in applied:
                continue
            m.apply(db)
            db.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                [m.version, m.name, dt.datetime.now(dt.UTC).isoformat(timespec="seconds")],
            )
            done.append(m.version)
        db.execute("COMMIT")
    except BaseException:
        db.rollback()
        raise
    return done
