"""SIP header fields (RFC 3261 §7.3): names, compact forms and the `Headers` container.

Header names are stored in their long, conventionally capitalised form (compact forms such as
`i`, `m`, `v` are expanded); lookups ignore case. Fields whose grammar is a comma-separated
list are split into their elements by `Headers.get_all`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

# RFC 3261 §7.3.3 and the extensions that define one-letter forms.
COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_CANONICAL: dict[str, str] = {
    name.lower(): name
    for name in (
        *COMPACT_FORMS.values(),
        *("Accept", "Accept-Encoding", "Accept-Language", "Allow", "Authorization", "CSeq"),
        *("Date", "Expires", "Max-Forwards", "Min-Expires", "MIME-Version", "Organization"),
        *("Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "Record-Route"),
        *("Require", "Retry-After", "Route", "Server", "Timestamp", "Unsupported"),
        *("User-Agent", "Warning", "WWW-Authenticate", "P-Asserted-Identity", "Reason"),
        *("Content-Disposition", "Content-Language", "Content-ID", "Min-SE"),
    )
}

# Header fields whose grammar is a comma-separated list (`#element` in RFC 3261 §25).
_LIST_HEADERS = frozenset(
    name.lower()
    for name in (
        *("Accept", "Accept-Encoding", "Accept-Language", "Allow", "Allow-Events", "Contact"),
        *("Content-Encoding", "Content-Language", "Proxy-Require", "Record-Route", "Require"),
        *("Route", "Supported", "Unsupported", "Via", "Warning", "P-Asserted-Identity"),
        *("Accept-Contact", "Reject-Contact"),
    )
)


MAX_NUMBER_DIGITS = 18  # every number in SIP and SDP fits; int() refuses over 4,300 digits


def is_number(text: str) -> bool:
    """Whether `text` is 1 to 18 ASCII digits (`str.isdigit` takes `²`, which int() refuses)."""
    return len(text) <= MAX_NUMBER_DIGITS and text.isascii() and text.isdigit()


def canonical_name(name: str) -> str:
    """The long, conventionally capitalised form of a header name."""
    lower = name.lower()
    if lower in COMPACT_FORMS:
        return COMPACT_FORMS[lower]
    return _CANONICAL.get(lower, name)


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, keeping commas inside quotes and `<...>`."""
    items: list[str] = []
    start = 0
    in_quotes = False
    in_angle = False
    i = 0
    while i < len(value):
        ch = value[i]
        if in_quotes:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_quotes = False
        elif ch == '"':
            in_quotes = True
        elif ch == "<":
            in_angle = True
        elif ch == ">":
            in_angle = False
        elif ch == "," and not in_angle:
            items.append(value[start:i].strip())
            start = i + 1
        i += 1
    items.append(value[start:].strip())
    return [item for item in items if item]


class Headers:
    """Ordered header fields with case-insensitive lookup by long name."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(canonical_name(n), v) for n, v in items]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of the first field of this name."""
        key = canonical_name(name).lower()
        for n, v in self._items:
            if n.lower() == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of this name; list-valued fields are split at their commas."""
        key = canonical_name(name).lower()
        values: list[str] = []
        for n, v in self._items:
            if n.lower() == key:
                if key in _LIST_HEADERS and v.strip() != "*":
                    values.extend(split_list(v))
                else:
                    values.append(v.strip())
        return values

    def add(self, name: str, value: str) -> None:
        self._items.append((canonical_name(name), value))

    def set(self, name: str, value: str) -> None:
        """Replace every field of this name by one, in the place of the first."""
        key = canonical_name(name).lower()
        for i, (n, _) in enumerate(self._items):
            if n.lower() == key:
                self._items[i] = (canonical_name(name), value)
                self._items = [
                    item for j, item in enumerate(self._items) if j <= i or item[0].lower() != key
                ]
                return
        self.add(name, value)

    def remove(self, name: str) -> None:
        key = canonical_name(name).lower()
        self._items = [item for item in self._items if item[0].lower() != key]

    def copy(self) -> Headers:
        return Headers(self._items)
