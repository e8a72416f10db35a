"""Recording metadata XML refuses entity expansion and external entities, in any encoding."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from telephony.siprec import MetadataError, parse_metadata

NS = "urn:ietf:params:xml:ns:recording:1"

# Ten levels of ten: a billion "lol"s once expanded.
_LEVELS = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
BILLION_LAUGHS = (
    '<?xml version="1.0" encoding="{enc}"?>\n'
    f'<!DOCTYPE recording [<!ENTITY lol0 "lol">{_LEVELS}]>\n'
    f'<recording xmlns="{NS}"><datamode>&lol9;</datamode></recording>'
)
SMALL_EXPANSION = (
    '<?xml version="1.0" encoding="{enc}"?>\n'
    '<!DOCTYPE recording [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>\n'
    f'<recording xmlns="{NS}"><datamode>&b;</datamode></recording>'
)
EXTERNAL_ENTITY = (
    '<?xml version="1.0" encoding="{enc}"?>\n'
    '<!DOCTYPE recording [<!ENTITY leak SYSTEM "file:///etc/passwd">]>\n'
    f'<recording xmlns="{NS}"><datamode>&leak;</datamode></recording>'
)
EXTERNAL_DTD = (
    '<?xml version="1.0" encoding="{enc}"?>\n'
    '<!DOCTYPE recording SYSTEM "http://203.0.113.9/recording.dtd">\n'
    f'<recording xmlns="{NS}"><datamode>separate</datamode></recording>'
)
ENCODINGS = {"UTF-8": "utf-8", "UTF-16": "utf-16"}


def _encoded(template: str, name: str) -> bytes:
    return template.replace("{enc}", name).encode(ENCODINGS[name])


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_billion_laughs_is_refused(encoding: str) -> None:
    with pytest.raises(MetadataError, match="DOCTYPE or entity declaration is refused"):
        parse_metadata(_encoded(BILLION_LAUGHS, encoding))


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_external_entity_is_refused(encoding: str) -> None:
    with pytest.raises(MetadataError, match="DOCTYPE or entity declaration is refused"):
        parse_metadata(_encoded(EXTERNAL_ENTITY, encoding))


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_external_dtd_is_refused(encoding: str) -> None:
    with pytest.raises(MetadataError, match="DOCTYPE or entity declaration is refused"):
        parse_metadata(_encoded(EXTERNAL_DTD, encoding))


def test_utf16_hides_entities_from_a_byte_search() -> None:
    """The plain parser expands a UTF-16 document's entities; parse_metadata must not."""
    data = _encoded(SMALL_EXPANSION, "UTF-16")
    assert b"<!DOCTYPE" not in data.upper()
    expanded = ET.fromstring(data).find(f"{{{NS}}}datamode")
    assert expanded is not None and expanded.text == "a" * 50
    with pytest.raises(MetadataError, match="refused"):
        parse_metadata(data)


def test_utf16_metadata_without_a_dtd_is_read() -> None:
    xml = (
        '<?xml version="1.0" encoding="UTF-16"?>'
        f'<recording xmlns="{NS}"><datamode>separate</datamode></recording>'
    )
    assert parse_metadata(xml.encode("utf-16")).datamode == "separate"
