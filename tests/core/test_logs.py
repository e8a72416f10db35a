"""The log formats: plain stays as it was; JSON lines carry call id, leg and stage."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable

import pytest

from core.config import ConfigError, Settings
from core.logs import JsonFormatter, formatter, setup_logging
from core.stage_cpu import name_thread


def _emit(shape: logging.Formatter, log: Callable[[logging.Logger], None]) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(shape)
    logger = logging.getLogger("callqa.test.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        log(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_json_lines_carry_call_leg_and_the_logging_threads_stage() -> None:
    lines: list[str] = []

    def on_rules_thread() -> None:
        name_thread("rules")
        lines.append(_emit(JsonFormatter(), lambda log: log.info(
            "ALERT call %s: %s", "c-1", "forbidden_words", extra={"call_id": "c-1", "leg": "agent"}
        )))  # fmt: skip

    thread = threading.Thread(target=on_rules_thread)
    thread.start()
    thread.join()
    record = json.loads(lines[0])
    assert record["message"] == "ALERT call c-1: forbidden_words"
    assert (record["call_id"], record["leg"], record["stage"]) == ("c-1", "agent", "rules")
    assert record["level"] == "info" and record["logger"] == "callqa.test.logs"
    assert record["ts"].endswith("+00:00")


def test_json_keeps_exceptions_and_unicode_on_one_line() -> None:
    def log(logger: logging.Logger) -> None:
        try:
            raise ValueError("坏了")
        except ValueError:
            logger.exception("通话 %s 失败", "c-2")

    text = _emit(JsonFormatter(), log)
    assert text.count("\n") == 1
    record = json.loads(text)
    assert record["message"] == "通话 c-2 失败"
    assert "ValueError: 坏了" in record["exc"]
    assert "call_id" not in record


def test_plain_is_the_default_and_unchanged() -> None:
    assert Settings().log_format == "plain"
    text = _emit(formatter("plain"), lambda log: log.info("hello", extra={"call_id": "c-3"}))
    assert " INFO callqa.test.logs [" in text and text.rstrip().endswith("] hello")


def test_unknown_format_is_refused_with_the_setting_named() -> None:
    with pytest.raises(ConfigError, match="log_format"):
        Settings().replace(log_format="xml")
    with pytest.raises(ConfigError, match="log_format"):
        setup_logging("info", "", "xml")
