"""Chinese and English: the language of each request, and formats that follow it.

The language is the user's own (chosen on the site, stored with the user); before login it
is the one picked on the login page, then the browser's preference, then Chinese, the
default of a new box. Message catalogues live in ``admin_web/translations``; the source
strings are English.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from babel.dates import format_datetime as babel_datetime
from babel.numbers import format_decimal
from flask import Flask, g, request, session
from flask_babel import Babel, get_locale

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
# Calls are shown in the center's time; Chinese call centers work in UTC+8.
DISPLAY_TZ = dt.timezone(dt.timedelta(hours=8))


def select_locale() -> str:
    user = g.get("user")
    if user is not None and user.language in LANGUAGES:
        return str(user.language)
    chosen = session.get("language")
    if chosen in LANGUAGES:
        return str(chosen)
    best = request.accept_languages.best_match(LANGUAGES)
    return best or DEFAULT_LANGUAGE


def language() -> str:
    return str(get_locale() or DEFAULT_LANGUAGE)


def fmt_datetime(value: str | dt.datetime | None, with_seconds: bool = False) -> str:
    """A stored ISO time in the center's time zone, written the way the language does."""
    if not value:
        return ""
    when = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    when = when.astimezone(DISPLAY_TZ)
    if language() == "zh":
        pattern = "yyyy-MM-dd HH:mm:ss" if with_seconds else "yyyy-MM-dd HH:mm"
    else:
        pattern = "d MMM yyyy, HH:mm:ss" if with_seconds else "d MMM yyyy, HH:mm"
    return babel_datetime(when, pattern, locale=language())


def fmt_duration(seconds: float | None) -> str:
    """A duration: 1分05秒 in Chinese, 1 min 05 s in English."""
    if seconds is None:
        return ""
    total = round(float(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if language() == "zh":
        if hours:
            return f"{hours}小时{minutes:02d}分{secs:02d}秒"
        return f"{minutes}分{secs:02d}秒" if minutes else f"{secs}秒"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def fmt_clock(seconds: float | None) -> str:
    """A position in a call, m:ss (the same in both languages)."""
    if seconds is None:
        return ""
    total = max(0, int(float(seconds)))
    return f"{total // 60}:{total % 60:02d}"


def fmt_number(value: float | None, digits: int = 1) -> str:
    if value is None:
        return ""
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return str(format_decimal(value, format=pattern, locale=language()))


def fmt_percent(value: float | None, digits: int = 0) -> str:
    if value is None:
        return ""
    return fmt_number(100.0 * value, digits) + "%"


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=select_locale)
    filters: dict[str, Any] = {
        "datetime": fmt_datetime,
        "duration": fmt_duration,
        "clock": fmt_clock,
        "number": fmt_number,
        "percent": fmt_percent,
    }
    app.jinja_env.filters.update(filters)
    app.jinja_env.globals["current_language"] = language
