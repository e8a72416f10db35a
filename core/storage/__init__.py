"""Persistence of calls, transcripts, findings, scores and rubric versions in SQLite.

* `core.storage.db`: `open_db`, the configured, migrated connection.
* `core.storage.migrations`: the numbered schema migrations.
* `core.storage.repository`: reading and writing calls and rubrics (every SQL statement
  about calls lives in this package).
* `core.storage.filing`: `store_call`, a call's recording and rows filed as one step.
* `core.storage.live_calls`: what the daemon's writer thread runs for live calls.
* `core.storage.rubric_catalog`: finding a rubric by path, stored id or built-in id.
* `core.storage.benchmarks`: capacity benchmark results.
* `core.storage.search`: full-text search in the stored transcripts.
* `core.storage.writer`: `StorageWriter`, the one thread that writes for the daemon.
"""
