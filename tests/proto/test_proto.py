"""The public gRPC API: generated modules up to date, every RPC and field documented.

The documentation rules are checked on the `.proto` text with a deliberately simple reader:
every RPC, message field (oneof members and maps included) and enum value must have a
comment on the line right above it (protoc's "leading comment", which ends up in generated
documentation), and a floating-point field must carry its unit in its name unless it is a
unitless quantity listed in `UNITLESS_FLOATS`. What the reader finds is compared with the
compiled descriptors, so a construct it fails to read cannot slip past it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from proto import build

REPO = Path(__file__).resolve().parents[2]
PROTO = REPO / "proto" / "callqa.proto"

# Suffixes that name a unit: seconds, milliseconds, hertz, decibels, percent, rubric points.
UNIT_SUFFIXES = ("_s", "_ms", "_hz", "_db", "_percent", "_points")
# Floating-point fields without a physical unit, and what they are measured in.
UNITLESS_FLOATS = {
    "score": "rubric points (named like the rubric's own field)",
    "min_score": "rubric points",
    "max_score": "rubric points",
    "asr_real_time_factor": "a ratio: seconds of ASR time per second of audio",
    "confidence": "a probability-like figure in 0..1 (how sure the machine is)",
}

_BLOCK = re.compile(r"^(message|enum|service|oneof)\s+(\w+)\s*\{")
_FIELD = re.compile(
    r"^(?:(?:optional|repeated)\s+)?(map\s*<[^>]+>|[\w.]+)\s+(\w+)\s*=\s*\d+\s*(?:\[[^\]]*\])?\s*;"
)
_ENUM_VALUE = re.compile(r"^([A-Z][A-Z0-9_]*)\s*=\s*-?\d+\s*(?:\[[^\]]*\])?\s*;")
_RPC = re.compile(r"^rpc\s+(\w+)\s*\(")


@dataclass(frozen=True)
class Element:
    """One documented thing in a `.proto` file."""

    what: str  # "field", "enum value" or "rpc"
    owner: str  # the message, enum or service it belongs to
    name: str
    type: str  # the field's type; empty for enum values and RPCs
    line: int  # 1-based
    commented: bool


def read_proto(text: str) -> list[Element]:
    """The fields, enum values and RPCs of a `.proto` text, and whether each has a comment
    on the line right above it.

    Handles the subset of the language this project writes: one declaration per line, no
    block comments, no nested messages.
    """
    elements: list[Element] = []
    stack: list[tuple[str, str]] = []  # (keyword, name) of the enclosing blocks
    previous = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        block = _BLOCK.match(line)
        if block:
            stack.append((block.group(1), block.group(2)))
            if line.endswith("}"):  # an empty block on one line: `message Foo {}`
                stack.pop()
        elif line.startswith("}"):
            if stack:
                stack.pop()
        elif stack:
            commented = previous.startswith("//")
            kind = stack[-1][0]
            owner = next(name for k, name in reversed(stack) if k != "oneof")
            if kind in ("message", "oneof") and (field := _FIELD.match(line)):
                elements.append(
                    Element("field", owner, field.group(2), field.group(1), number, commented)
                )
            elif kind == "enum" and (value := _ENUM_VALUE.match(line)):
                elements.append(Element("enum value", owner, value.group(1), "", number, commented))
            elif kind == "service" and (rpc := _RPC.match(line)):
                elements.append(Element("rpc", owner, rpc.group(1), "", number, commented))
        previous = line
    return elements


def _where(e: Element) -> str:
    return f"callqa.proto:{e.line}: {e.what} {e.owner}.{e.name}"


@pytest.fixture(scope="module")
def elements() -> list[Element]:
    return read_proto(PROTO.read_text(encoding="utf-8"))


def test_generated_modules_are_up_to_date() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "proto.build", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr or done.stdout


def test_generated_modules_import_as_a_package() -> None:
    from proto import callqa_pb2, callqa_pb2_grpc

    assert callqa_pb2.DESCRIPTOR.name == "proto/callqa.proto"
    assert callqa_pb2.DESCRIPTOR.package == "callqa.v1"
    # The service module must import its messages from the package, not as a top-level
    # `callqa_pb2` (which only works with proto/ on sys.path).
    source = (REPO / "proto" / "callqa_pb2_grpc.py").read_text(encoding="utf-8")
    assert re.search(r"^from proto import callqa_pb2 as \w+$", source, re.MULTILINE)
    assert callable(callqa_pb2_grpc.CallQaStub)
    assert callable(callqa_pb2_grpc.add_CallQaServicer_to_server)


def test_every_field_enum_value_and_rpc_has_a_leading_comment(
    elements: list[Element],
) -> None:
    missing = [_where(e) for e in elements if not e.commented]
    assert not missing, "needs a comment on the line above:\n" + "\n".join(missing)


def test_floating_point_fields_name_their_unit(elements: list[Element]) -> None:
    floats = [e for e in elements if e.what == "field" and e.type in ("double", "float")]
    assert floats
    unnamed = [
        _where(e)
        for e in floats
        if not e.name.endswith(UNIT_SUFFIXES) and e.name not in UNITLESS_FLOATS
    ]
    assert not unnamed, (
        f"name the unit ({', '.join(UNIT_SUFFIXES)}) or list the field in UNITLESS_FLOATS:\n"
        + "\n".join(unnamed)
    )


def test_reader_sees_everything_the_compiler_sees(elements: list[Element]) -> None:
    from proto import callqa_pb2

    file = callqa_pb2.DESCRIPTOR
    compiled = set()
    for message in file.message_types_by_name.values():
        compiled |= {("field", message.name, f.name) for f in message.fields}
    for enum in file.enum_types_by_name.values():
        compiled |= {("enum value", enum.name, v.name) for v in enum.values}
    for service in file.services_by_name.values():
        compiled |= {("rpc", service.name, m.name) for m in service.methods}
    read = {(e.what, e.owner, e.name) for e in elements}
    assert read == compiled


def test_reader_flags_what_is_undocumented() -> None:
    text = """
syntax = "proto3";
// Documented.
service S {
  // Documented.
  rpc A(M) returns (M);

  rpc B(M) returns (M);
}
// Documented.
message M {
  // Documented, in seconds.
  double start_s = 1;
  double level = 2;
  // Documented.
  oneof o {
    string x = 3;
    // Documented.
    map<string, double> y = 4;
  }
}
message Empty {}
enum E {
  E_UNSPECIFIED = 0;
}
"""
    found = {(e.what, e.owner, e.name): e.commented for e in read_proto(text)}
    assert found == {
        ("rpc", "S", "A"): True,
        ("rpc", "S", "B"): False,
        ("field", "M", "start_s"): True,
        ("field", "M", "level"): False,
        ("field", "M", "x"): False,
        ("field", "M", "y"): True,
        ("enum value", "E", "E_UNSPECIFIED"): False,
    }


def test_every_generated_file_is_listed_by_the_build() -> None:
    on_disk = {
        str(p.relative_to(REPO))
        for p in (REPO / "proto").iterdir()
        if re.search(r"_pb2(_grpc)?\.pyi?$", p.name)
    }
    assert on_disk == set(build.GENERATED)
