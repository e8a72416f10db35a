"""Log setup for the entry points: plain text lines, or one JSON object per line.

Plain (``log_format = "plain"``, the default) reads well in a terminal and in journald. JSON
(``log_format = "json"``) is for a log shipper that indexes fields: every record is one
object with ``ts`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``, ``thread``,
``stage`` (the pipeline stage of the thread that logged it, ``core.stage_cpu``), ``message``,
``exc`` when an exception was logged, and any field a module gave with ``extra=``: the call
modules give ``call_id`` (the box's id of a call) and ``leg`` (``agent`` or ``customer``)
where a record is about one call or leg, and the SIP server ``sip_call_id`` (the sender's
Call-ID); the record of a call's start has both ids.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.config import ConfigError
from core.stage_cpu import current_stage

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"
LOG_FORMATS = ("plain", "json")
LOG_FILE_BYTES = 50_000_000
LOG_FILE_BACKUPS = 5
QUIET_LOGGERS = ("numba", "grpc._cython", "asyncio")
"""Libraries that log too much below warning."""

_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName",
}  # fmt: skip
"""Attributes every record has; the others came from ``extra=``."""


class JsonFormatter(logging.Formatter):
    """One JSON object per record; see the module notes for its fields. A handler formats on
    the thread that logs, so ``stage`` is that thread's."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "thread": record.threadName,
            "stage": getattr(record, "stage", None) or current_stage(),
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key in _RECORD_FIELDS or key in out or value is None:
                continue  # a field given as None is left out
            out[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False)


def formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    if log_format == "plain":
        return logging.Formatter(PLAIN_FORMAT)
    raise ConfigError(f"setting 'log_format' must be plain or json: {log_format!r}")


def setup_logging(level: str, log_file: str = "", log_format: str = "plain") -> None:
    """Log to standard error (journald picks it up), and to ``log_file`` when given."""
    numeric = getattr(logging, level.upper(), None)
    if not isinstance(numeric, int):
        raise ConfigError(f"setting 'log_level' must be debug, info, warning or error: {level!r}")
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.RotatingFileHandler(
            log_file, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8",
        ))  # fmt: skip
    shape = formatter(log_format)
    for handler in handlers:
        handler.setFormatter(shape)
    logging.basicConfig(level=numeric, handlers=handlers, force=True)
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
