"""The `callqa` command on good and bad files, as a user runs it (a real process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.audio.samples import Line, SampleCall, render
from core.audio.wav import write_wav_g711, write_wav_pcm16
from kernels.g711 import ulaw_encode

SHORT_CALL = SampleCall(
    name="short",
    title="short call",
    lines=(
        Line("agent", "Thank you for calling Northwind support, how can I help you?", 0.3),
        Line("customer", "I want to file a complaint about my refund."),
        Line("agent", "I don't know anything about that."),
    ),
    expected_items=(),
)


def run_cli(
    data_dir: Path, *args: str, model: Path | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "core.cli", "--data-dir", str(data_dir)]
    if model is not None:
        cmd += ["--model", str(model)]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def short_call(tmp_path_factory: pytest.TempPathFactory) -> Path:
    agent, customer, _ = render(SHORT_CALL)
    codes = [ulaw_encode(np.round(x * 32767).astype(np.int16)) for x in (agent, customer)]
    path = tmp_path_factory.mktemp("calls") / "short.wav"
    write_wav_g711(path, codes, 8000, law="mulaw")
    return path


def _stored_files(data_dir: Path) -> list[Path]:
    rec = data_dir / "recordings"
    return [p for p in rec.rglob("*") if p.is_file()] if rec.exists() else []


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"this is plain text, not a recording" * 4, "not a WAV file"),
        (
            b"RIFF\x24\x08\x00\x00WAVEfmt \x10\x00\x00\x00\x07\x00\x02\x00@\x1f\x00\x00"
            b"\x80>\x00\x00\x02\x00\x08\x00data\x00\x08\x00\x00" + b"\xff" * 100,
            "truncated",
        ),
    ],
)
def test_bad_file_exit_2_and_nothing_stored(tmp_path: Path, content: bytes, reason: str) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    data = tmp_path / "data"
    proc = run_cli(data, "score", str(bad))
    assert proc.returncode == 2, proc.stderr
    assert reason in proc.stderr
    assert "Traceback" not in proc.stderr
    listed = run_cli(data, "calls", "list", "--json")
    assert json.loads(listed.stdout) == []
    assert _stored_files(data) == []


def test_wrong_channel_count_and_mono_without_speaker(tmp_path: Path) -> None:
    data = tmp_path / "data"
    mono = tmp_path / "mono.wav"
    write_wav_pcm16(mono, [np.zeros(8000, np.float32)], 8000)
    proc = run_cli(data, "score", str(mono))
    assert proc.returncode == 2
    assert "--speaker" in proc.stderr
    three = tmp_path / "three.wav"
    write_wav_g711(three, [np.full(800, 0xFF, np.uint8)] * 3, 8000, law="mulaw")
    proc = run_cli(data, "score", str(three))
    assert proc.returncode == 2 and "3 channels" in proc.stderr


def test_rubric_commands(tmp_path: Path) -> None:
    data = tmp_path / "data"
    out = tmp_path / "zh.yaml"
    assert run_cli(data, "rubric", "export", "default-zh", "-o", str(out)).returncode == 0
    assert run_cli(data, "rubric", "validate", str(out)).returncode == 0
    imported = run_cli(data, "rubric", "import", str(out), "--activate")
    assert imported.returncode == 0 and "version" in imported.stdout
    listed = run_cli(data, "rubric", "list")
    assert "default-zh" in listed.stdout and "default-en" in listed.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text(out.read_text(encoding="utf-8").replace("kind: silence", "kind: sighs", 1))
    proc = run_cli(data, "rubric", "validate", str(broken))
    assert proc.returncode == 2
    assert "kind" in proc.stderr and "sighs" in proc.stderr


@pytest.mark.model
def test_score_stores_and_finds(tmp_path: Path, short_call: Path, base_model_dir: Path) -> None:
    data = tmp_path / "data"
    proc = run_cli(
        data,
        "score",
        str(short_call),
        "--rubric",
        "default-en",
        "--json",
        "--agent",
        "A01",
        "--team",
        "T1",
        model=base_model_dir,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    text = " ".join(u["text"] for u in result["transcript"]).lower()
    assert "complaint" in text and "northwind" in text.replace(" ", "")
    speakers = {u["speaker"] for u in result["transcript"]}
    assert speakers == {"agent", "customer"}
    items = {f["item_id"] for f in result["findings"]}
    assert any("forbidden" in i for i in items), items
    assert 0 <= result["score"] < 100
    call_id = result["call_id"]
    assert len(_stored_files(data)) == 1

    shown = json.loads(run_cli(data, "calls", "show", call_id, "--json").stdout)
    assert shown["agent_id"] == "A01" and shown["rubric_id"] == "default-en"
    assert shown["rubric_version"] >= 1
    hits = run_cli(data, "search", "complaint", "--json")
    assert any(h["call_id"] == call_id for h in json.loads(hits.stdout))

    report = run_cli(
        data, "score", str(short_call), "--rubric", "default-en", "-q", model=base_model_dir
    )
    assert report.returncode == 0
    assert "Transcript:" in report.stdout and "Findings" in report.stdout


@pytest.mark.model
def test_mono_with_speaker(tmp_path: Path, short_call: Path, base_model_dir: Path) -> None:
    from core.audio.wav import read_wav

    agent = read_wav(short_call).channels[0]
    mono = tmp_path / "agent.wav"
    write_wav_pcm16(mono, [agent], 8000)
    proc = run_cli(
        tmp_path / "d",
        "score",
        str(mono),
        "--speaker",
        "agent",
        "--json",
        "--rubric",
        "default-en",
        "--no-store",
        model=base_model_dir,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert {u["speaker"] for u in result["transcript"]} == {"agent"}
    assert result["call_id"] is None
