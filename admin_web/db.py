"""The request's database connection (`flask.g`), opened on first use and closed at teardown."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from flask import Flask, current_app, g

from admin_web import site_db


def get_conn() -> sqlite3.Connection:
    conn = g.get("conn")
    if conn is None:
        conn = site_db.connect(Path(current_app.config["DATA_DIR"]))
        g.conn = conn
    return conn


def _close(_exc: BaseException | None = None) -> None:
    conn = g.pop("conn", None)
    if conn is not None:
        conn.close()


def init_app(app: Flask) -> None:
    app.teardown_appcontext(_close)
