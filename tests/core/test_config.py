"""Settings: sources and their order, errors, and documentation of settings and commands."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from core.cli import build_parser
from core.config import SETTINGS, ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def test_defaults_file_env_and_overrides_in_order(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('model = "tiny.en"\nasr_beam_size = 3\nmin_silence_s = 0.7\n')
    env = {"CALLQA_ASR_BEAM_SIZE": "2", "CALLQA_DATA_DIR": str(tmp_path / "d")}
    cfg = load_settings(toml, {"min_silence_s": 0.4}, environ=env)
    assert cfg.model == "tiny.en"  # file over default
    assert cfg.asr_beam_size == 2  # environment over file
    assert cfg.min_silence_s == 0.4  # flag over file
    assert cfg.data_dir == tmp_path / "d"
    assert load_settings(None, None, environ={}).asr_beam_size == 3


def test_bad_values_name_the_setting(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("asr_beam_size = 'many'\n")
    with pytest.raises(ConfigError, match="asr_beam_size"):
        load_settings(toml, environ={})
    toml.write_text("no_such_thing = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'no_such_thing'"):
        load_settings(toml, environ={})
    with pytest.raises(ConfigError, match="agent_channel"):
        load_settings(None, {"agent_channel": "middle"}, environ={})
    with pytest.raises(ConfigError, match="asr_device"):
        load_settings(None, None, environ={"CALLQA_ASR_DEVICE": "tpu"})
    for interval in (0.0, -1.0, 0.5):
        with pytest.raises(ConfigError, match="gil_switch_interval_s"):
            load_settings(None, {"gil_switch_interval_s": interval}, environ={})


def test_settings_are_typed_and_serialise_for_a_child(tmp_path: Path) -> None:
    settings = load_settings(None, {"data_dir": "~/x", "sip_enabled": "no"}, environ={})
    assert settings.data_dir == Path("~/x").expanduser()
    assert settings.sip_enabled is False and settings.sip_port == 5060
    env = settings.to_env()
    assert env["CALLQA_SIP_ENABLED"] == "false" and env["CALLQA_ASR_WINDOW_MIN_S"] == "10.0"
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert load_settings(empty, None, env) == settings  # what a child given `env` reads
    assert settings.replace(live_partial_every_s="0").live_partial_every_s == 0.0
    with pytest.raises(ConfigError, match="unknown setting 'nope'"):
        settings.replace(nope=1)


def test_every_setting_is_documented_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    missing = [s.name for s in SETTINGS if f"`{s.name}`" not in text]
    assert not missing, f"settings missing from README.md: {missing}"


def test_every_cli_command_is_documented_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    missing = [name for name in sub.choices if f"callqa {name}" not in text]
    assert not missing, f"commands missing from README.md: {missing}"


def test_the_dataclass_and_the_table_are_one_declaration() -> None:
    fields = dataclasses.fields(Settings)
    assert [s.name for s in SETTINGS] == [f.name for f in fields]
    for f, s in zip(fields, SETTINGS, strict=True):
        assert f.metadata["help"].strip() and s.help == f.metadata["help"], f.name
        assert s.default == f.default and isinstance(f.default, type(load_settings(
            environ={}).as_dict()[f.name])), f.name  # fmt: skip


def _lists_of_setting_names(tree: ast.AST) -> list[int]:
    """Lines of a tuple, list or set of setting names (a picked list: ``PASSED_ON``), or of a
    dict from setting names to other names (a rename map). Dicts of values (a child's
    settings) are serialisation, not a reader, and pass."""
    names = {s.name for s in SETTINGS}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            texts = [e.value for e in node.elts if isinstance(e, ast.Constant)]
            if len(texts) >= 3 and all(t in names for t in texts):
                found.append(node.lineno)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if (isinstance(key, ast.Constant) and key.value in names
                        and isinstance(value, ast.Constant) and isinstance(value.value, str)
                        and re.fullmatch(r"[a-z]+(_[a-z0-9]+)+", value.value)):
                    found.append(node.lineno)
    return found


SHOWN = {"admin_web/capacity.py": "SHOWN_SETTINGS"}
"""Picked lists that only choose what a page shows, reading the one `Settings` object."""


def test_no_second_reader_of_settings() -> None:
    """Only core/config.py reads settings: nothing else calls a raw-dict reader, parses
    `CALLQA_<NAME>` by name or keeps its own list of setting names."""
    offenders = []
    for folder in ("core", "admin_web", "telephony", "kernels", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "core" / "config.py":
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                called = node.func if isinstance(node, ast.Call) else None
                name = getattr(called, "id", getattr(called, "attr", None))
                if name in ("load_values", "load_config", "from_values"):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
            where = str(path.relative_to(ROOT))
            if where in SHOWN:
                assert SHOWN[where] in path.read_text(encoding="utf-8")
                continue
            offenders += [f"{where}:{line}: a list of setting names"
                          for line in _lists_of_setting_names(tree)]  # fmt: skip
    assert not offenders, "\n".join(offenders)
