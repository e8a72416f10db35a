"""Persistence of calls, transcripts, findings, scores and rubric versions in SQLite.

* `core.storage.db`: `open_db`, the configured, migrated connection.
* `core.storage.migrations`: the numbered schema migrations.
* `core.storage.repository`: reading and writing calls and rubrics (every SQL statement
  about calls lives in this package).
* `core.storage.filing`: `store_call`, a call's recording and rows filed as one step.
* `core.storage.live_calls`: what the daemon's writer thread runs for live calls.
* `core.storage.rubric_catalog`: finding a rubric by path, stored id or built-in id.
* `core.storage.benchmarks`: capacity benchmark results.
* `core.storage.routes`: which rubric each team, skill group or agent gets (data, not only
  the `rubric_routes` setting).
* `core.storage.timelines`: each leg's voice timeline, stored so calls can be re-scored
  without re-transcribing them; `core.storage.evidence` rebuilds a call's evidence from it.
* `core.storage.search`: full-text search in the stored transcripts.
* `core.storage.writer`: `StorageWriter`, the one thread that writes for the daemon.
"""

__all__ = [
    "benchmarks", "db", "evidence", "filing", "live_calls", "migrations", "repository",
    "routes", "rubric_catalog", "search", "timelines", "writer",
]
