"""Every string of the site has its Chinese, and the compiled catalogue is current."""

from __future__ import annotations

from admin_web import catalog


def test_every_string_is_translated_and_the_mo_is_current() -> None:
    problems = catalog.check()
    assert problems == [], "\n".join(problems[:20])


def test_extraction_finds_template_and_python_strings() -> None:
    used = catalog.extract()
    assert "Log in to callqa" in used          # a template
    assert "Wrong user name or password." in used  # Python
