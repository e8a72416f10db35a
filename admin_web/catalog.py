"""The message catalogues: extract the site's strings, keep the Chinese catalogue complete.

Source strings are English, in templates (`{{ _('...') }}`) and Python (`gettext`,
`lazy_gettext`). ``translations/zh/LC_MESSAGES/messages.po`` holds their Chinese, and
``messages.mo`` is its compiled form, which Flask-Babel reads; both are committed, so a box
needs no build step.

    python -m admin_web.catalog --check            # untranslated strings, stale .mo: exit 1
    python -m admin_web.catalog --update [--add FILE.tsv ...]

``--update`` re-extracts the strings, keeps the translations the catalogue has, takes new
ones from tab-separated files (English, then Chinese, one pair a line), drops strings no
longer used, and rewrites the .po and the .mo.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Iterable
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

PACKAGE_DIR = Path(__file__).resolve().parent
TRANSLATIONS_DIR = PACKAGE_DIR / "translations"
LANGUAGES = ("zh",)
KEYWORDS = {"_": None, "gettext": None, "lazy_gettext": None, "_l": None,
            "ngettext": (1, 2)}
METHOD_MAP = [("**.py", "python"), ("templates/**.html", "jinja2")]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.do", "trimmed": "true"}}


def po_path(lang: str) -> Path:
    return TRANSLATIONS_DIR / lang / "LC_MESSAGES" / "messages.po"


def extract() -> dict[str, list[tuple[str, int]]]:
    """Every msgid used by the site, with where it is used."""
    found: dict[str, list[tuple[str, int]]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(PACKAGE_DIR), METHOD_MAP, OPTIONS, KEYWORDS,
    ):
        if filename.startswith(("translations", "static")):
            continue
        msgid = message[0] if isinstance(message, tuple) else message
        if msgid:
            found.setdefault(msgid, []).append((filename, lineno))
    return found


def read_catalog(lang: str) -> Catalog:
    path = po_path(lang)
    if not path.exists():
        return Catalog(locale=lang, project="callqa admin web", charset="utf-8")
    with path.open("rb") as f:
        return read_po(f, locale=lang)


def read_tsv(paths: Iterable[Path]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if "\t" in line:
                english, chinese = line.split("\t", 1)
                if english.strip() and chinese.strip():
                    pairs[english] = chinese.strip()
    return pairs


def _mo_bytes(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_mo(out, catalog)
    return out.getvalue()


def update(additions: dict[str, str]) -> list[str]:
    """Rewrite each catalogue from the current strings; returns the untranslated ones."""
    used = extract()
    untranslated: list[str] = []
    for lang in LANGUAGES:
        old = read_catalog(lang)
        known = {m.id: m.string for m in old if m.id and m.string}
        new = Catalog(locale=lang, project="callqa admin web", charset="utf-8")
        for msgid in sorted(used):
            text = additions.get(msgid) or known.get(msgid) or ""
            if not text:
                untranslated.append(msgid)
            new.add(msgid, text, locations=sorted(used[msgid])[:3])
        path = po_path(lang)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            write_po(f, new, width=100, omit_header=False, sort_output=True)
        path.with_suffix(".mo").write_bytes(_mo_bytes(read_catalog(lang)))
    return untranslated


def check() -> list[str]:
    """What is wrong with the catalogues: strings without Chinese, a .mo older than its .po."""
    problems: list[str] = []
    used = extract()
    for lang in LANGUAGES:
        catalog = read_catalog(lang)
        translated = {m.id for m in catalog if m.id and m.string}
        for msgid in sorted(used):
            if msgid not in translated:
                where = ", ".join(f"{f}:{n}" for f, n in used[msgid][:2])
                problems.append(f"{lang}: no translation for {msgid!r} ({where})")
        mo = po_path(lang).with_suffix(".mo")
        if not mo.exists() or mo.read_bytes() != _mo_bytes(catalog):
            problems.append(f"{lang}: {mo.name} does not match {po_path(lang).name}: run --update")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m admin_web.catalog")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", action="store_true")
    group.add_argument("--update", action="store_true")
    parser.add_argument("--add", nargs="*", default=[], type=Path,
                        help="tab-separated files of English and Chinese")
    args = parser.parse_args(argv)
    if args.update:
        missing = update(read_tsv(args.add))
        for msgid in missing:
            print(f"untranslated: {msgid}")
        return 1 if missing else 0
    problems = check()
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
