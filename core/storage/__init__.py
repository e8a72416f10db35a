"""Persistence of calls, transcripts, findings, scores and rubric versions in SQLite.

* `core.storage.db`: `open_db`, the configured, migrated connection.
* `core.storage.migrations`: the numbered schema migrations.
* `core.storage.repository`: reading and writing calls and rubrics.
* `core.storage.search`: full-text search in the stored transcripts.
* `core.storage.writer`: `StorageWriter`, the one thread that writes for the daemon.
"""
