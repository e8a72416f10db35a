"""Settings: sources and their order, errors, and documentation of settings and commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.cli import build_parser
from core.config import SETTINGS, ConfigError, load_config

README = Path(__file__).resolve().parents[2] / "README.md"


def test_defaults_file_env_and_overrides_in_order(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('model = "tiny.en"\nasr_beam_size = 3\nmin_silence_s = 0.7\n')
    env = {"CALLQA_ASR_BEAM_SIZE": "2", "CALLQA_DATA_DIR": str(tmp_path / "d")}
    cfg = load_config(toml, {"min_silence_s": 0.4}, environ=env)
    assert cfg.model == "tiny.en"  # file over default
    assert cfg.asr_beam_size == 2  # environment over file
    assert cfg.min_silence_s == 0.4  # flag over file
    assert cfg.data_dir == tmp_path / "d"
    assert load_config(None, None, environ={}).asr_beam_size == 3


def test_bad_values_name_the_setting(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("asr_beam_size = 'many'\n")
    with pytest.raises(ConfigError, match="asr_beam_size"):
        load_config(toml, environ={})
    toml.write_text("no_such_thing = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'no_such_thing'"):
        load_config(toml, environ={})
    with pytest.raises(ConfigError, match="agent_channel"):
        load_config(None, {"agent_channel": "middle"}, environ={})


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
