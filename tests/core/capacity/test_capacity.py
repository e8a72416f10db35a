"""`callqa bench`: the audio cuts, the argument checks, socket drops, the chart, and one
short ramp through a real `callqa serve` and the simulator."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from core.audio.wav import read_wav, write_wav_pcm16
from core.capacity.load import RATE_HZ, Source, load_sources, write_cuts
from core.capacity.observe import SocketDrops
from core.capacity.offline_check import check_findings
from core.capacity.ramp import Ramp, RampOutcome, StepResult, summarize
from core.capacity.report import TOP, chart_svg, ratio_text, table, verdict
from core.cli import main
from core.cli.bench import BASELINE, parse_ladder, parse_sets
from core.config import ConfigError, load_settings


def _source(name: str, seconds: float) -> Source:
    n = int(seconds * RATE_HZ)
    ramp = (np.arange(n, dtype=np.float32) / n) * 0.5
    return Source(name, ramp, -ramp)


def test_cuts_have_the_step_length_and_different_offsets(tmp_path: Path) -> None:
    src = _source("a", 10.0)
    paths = write_cuts([src], 3, 4.0, tmp_path)
    assert len(paths) == 3
    starts = []
    for path in paths:
        rec = read_wav(path)
        assert rec.sample_rate == RATE_HZ and len(rec.channels) == 2
        assert len(rec.channels[0]) == 4 * RATE_HZ
        np.testing.assert_allclose(rec.channels[1], -rec.channels[0], atol=1e-4)
        starts.append(float(rec.channels[0][0]))
    assert len({round(s, 3) for s in starts}) == 3  # each call starts elsewhere in the file


def test_a_cut_past_the_end_wraps_around(tmp_path: Path) -> None:
    src = _source("short", 1.0)
    (path,) = write_cuts([src], 1, 2.5, tmp_path)
    leg = read_wav(path).channels[0]
    assert len(leg) == int(2.5 * RATE_HZ)
    np.testing.assert_allclose(leg[RATE_HZ : 2 * RATE_HZ], leg[:RATE_HZ], atol=1e-4)


def test_sources_must_be_stereo_8k(tmp_path: Path) -> None:
    mono = tmp_path / "mono.wav"
    write_wav_pcm16(mono, [np.zeros(800, np.float32)], 8000)
    with pytest.raises(ValueError, match="stereo 8 kHz"):
        load_sources([mono])
    wide = tmp_path / "wide.wav"
    write_wav_pcm16(wide, [np.zeros(1600, np.float32)] * 2, 16000)
    with pytest.raises(ValueError, match="16000 Hz"):
        load_sources([wide])


def test_ladder_and_setting_changes_are_checked() -> None:
    assert parse_ladder("1,2,8", (4,)) == [1, 2, 8]
    assert parse_ladder(None, (4, 8)) == [4, 8]
    for bad in ("2,1", "0,1", "1,x", "1,1"):
        with pytest.raises(ConfigError):
            parse_ladder(bad, (1,))
    assert parse_sets(["asr_beam_size=1"]) == {"asr_beam_size": "1"}
    with pytest.raises(ConfigError, match="known setting"):
        parse_sets(["no_such_setting=1"])
    with pytest.raises(ConfigError, match="asr_beam_size"):
        parse_sets(["asr_beam_size=wide"])
    assert BASELINE["asr_batch_size"] == "1" and BASELINE["asr_window_min_s"] == "30"


def test_socket_drops_counts_what_the_kernel_dropped_on_our_socket() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    receiver.bind(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    drops = SocketDrops(os.getpid())
    before = drops.update()
    try:
        for _ in range(400):  # never read: the small buffer fills, the rest is dropped
            sender.sendto(b"x" * 172, receiver.getsockname())
        after = drops.update()
    finally:
        sender.close()
        receiver.close()
    assert after - before > 100


def test_socket_queue_shows_what_waits_unread():
    """The receive path's lag: datagrams not yet read count in the 90th-percentile queue."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    drops = SocketDrops(os.getpid())
    try:
        for _ in range(50):
            sender.sendto(b"x" * 172, receiver.getsockname())
        drops.update()
        waiting = drops.queue_p90_bytes
        read = 0
        with contextlib.suppress(BlockingIOError):
            while receiver.recv(2048):
                read += 1
        drops.update()
        after_reading = drops.queue_p90_bytes
    finally:
        sender.close()
        receiver.close()
    assert read == 50
    assert waiting >= 50 * 172
    assert after_reading == 0


def test_a_front_end_step_whose_sockets_fill_up_is_not_held() -> None:
    """Packets waiting unread in the sockets are late audio, though none is lost yet."""
    ramp = SimpleNamespace(front_end=True, deadline_ms=2000.0)
    keeping_up = StepResult(**{**_step("front-end", 300, None, True).__dict__,
                               "receive_queue_kb": 4.0})  # fmt: skip
    behind = StepResult(**{**_step("front-end", 450, None, True).__dict__,
                           "receive_queue_kb": 250.0})  # fmt: skip
    assert Ramp.verdict(ramp, keeping_up, "").held  # type: ignore[arg-type]
    late = Ramp.verdict(ramp, behind, "")  # type: ignore[arg-type]
    assert not late.held and not late.sustained
    assert "receive fell behind: 250 KiB waited unread in the sockets" in late.note


def _step(config: str, lines: int, p95: float | None, held: bool) -> StepResult:
    return StepResult(
        config=config, lines=lines, calls_ok=lines, step_s=20.0, utterances=10,
        latency_p50_ms=p95 and p95 / 2, latency_p95_ms=p95, latency_p99_ms=p95,
        latency_max_ms=p95, server_latency_p95_ms=p95, backlog_first_half=0.5,
        backlog_second_half=0.7, backlog_max=2, backlog_growing=False, drained=True,
        drain_s=1.0, daemon_cores=0.5, stage_cores={"asr": 0.4, "receive": 0.05},
        simulator_cores=0.02, sender_max_late_ms=3.0, cpu_ms_per_line_s=50.0, rss_peak_mb=400,
        packets_received=1000, packets_lost=0, packets_late=0, packets_malformed=0,
        kernel_drops=0, asr_busy_fraction=0.4, asr_audio_s=30.0, asr_batches=10,
        asr_audio_fraction=0.35,
        asr_mean_batch=1.5, asr_partials_skipped=0, transcripts_answered=10, held=held,
        sustained=True,
        note="" if held else "p95 3000 ms > 2000 ms",
    )  # fmt: skip


def _outcome(config: str, steps: list[StepResult]) -> RampOutcome:
    return RampOutcome(config=config, settings={}, steps=steps, asr_device="cpu",
                       compute_type="int8", model_name="whisper-base",
                       started_at="2026-01-01T00:00:00+00:00")  # fmt: skip


def test_chart_and_table_show_every_step() -> None:
    ours = _outcome("callqa", [_step("callqa", 2, 900.0, True),
                               _step("callqa", 4, 3000.0, False)])  # fmt: skip
    base = _outcome("baseline", [_step("baseline", 2, 2500.0, False)])
    svg = ET.fromstring(chart_svg([ours, base], "capacity"))
    ns = "{http://www.w3.org/2000/svg}"
    circles = svg.findall(f"{ns}circle")
    assert len(circles) == 3
    assert sum(1 for c in circles if c.get("fill") == "white") == 2  # the two that failed
    texts = {t.text or "": t for t in svg.findall(f"{ns}text")}
    # The legend sits below the plot, clear of the lines, one row per configuration.
    x_axis_y = float(svg.findall(f"{ns}line")[0].get("y2") or 0)
    for label in ("callqa: 2 lines held, 4 kept up", "baseline: 0 lines held, 2 kept up"):
        assert float(texts[label].get("y") or 0) > x_axis_y + 20, label
    assert float(svg.get("height") or 0) > float(texts["baseline: 0 lines held, 2 kept up"]
                                                  .get("y") or 0)  # fmt: skip
    # A step far above the axis is drawn at its top, with its value beside it.
    far = _outcome("baseline", [_step("baseline", 2, 2500.0, False),
                                _step("baseline", 3, 31_000.0, False)])  # fmt: skip
    svg = ET.fromstring(chart_svg([ours, far], "capacity"))
    tops = [float(c.get("cy") or 0) for c in svg.findall(f"{ns}circle")]
    assert tops.count(min(tops)) == 1 and min(tops) == pytest.approx(TOP)
    assert "\u2191 31.0 s" in {t.text for t in svg.findall(f"{ns}text")}
    printed = table([ours, base])
    assert "p95 3000 ms > 2000 ms" in printed
    assert printed.count("yes") == 4 and printed.count(" NO") == 2
    said = verdict(ours, base)
    assert "held in real time (p95 within the deadline): 2 vs 0 for the baseline" in said
    assert "kept up with (backlog not growing, any latency): 4 vs 2" in said
    assert "ratio 2.0x" in said


def test_summary_gives_the_cpu_share_and_stages_at_the_last_held_step_and_the_ratio() -> None:
    ours = _outcome("callqa", [_step("callqa", 2, 900.0, True), _step("callqa", 4, 1500.0, True),
                               _step("callqa", 8, 3000.0, False)])  # fmt: skip
    ours.steps[1] = StepResult(**{**ours.steps[1].__dict__, "daemon_cores": 1.5,
                                  "stage_cores": {"receive": 0.2, "asr": 1.25}})  # fmt: skip
    said = summarize(ours, box_cores=2)
    assert "held 4 lines (p95 1500 ms, 1.50 cores, 75 % of the box's 2" in said
    assert "by stage, % of a core: asr 125.0, receive 20.0)" in said
    assert "\n" not in said
    base = _outcome("baseline", [_step("baseline", 1, 2500.0, False)])
    assert ratio_text(ours, base) == (
        "ratio to the baseline: 4 vs 0 lines held (the baseline none), 8 vs 1 kept up (8.0x)"
    )
    base.steps = [_step("baseline", 2, 900.0, True)]
    assert "4 vs 2 lines held (2.0x)" in ratio_text(ours, base)


def test_bench_passes_the_settings_file_and_global_flags_to_every_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`callqa --config F --model M bench`: each `callqa serve` child reads F and runs M."""
    from core.capacity import ramp
    from core.config import load_settings
    from core.daemon.child import ServeProcess

    started: list[dict[str, str]] = []

    def start(self: ServeProcess, timeout_s: float = 180.0) -> ServeProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        started.append(self.environment())
        return self

    class Steps:
        """Stands for the calls placed on the daemon: one step that holds."""

        def __init__(self, config: str, serve: ServeProcess, *args: object, **kw: object):
            self.config = config
            self.step_calls: dict[int, list[str]] = {}  # no call reached a daemon

        def identity(self) -> tuple[str, str, str]:
            return "cpu", "int8", "tiny.en"

        def run_step(self, index: int, lines: int) -> StepResult:
            return _step(self.config, lines, 500.0, True)

        def close(self) -> None:
            pass

    monkeypatch.setattr(ServeProcess, "start", start)
    monkeypatch.setattr(ServeProcess, "stop", lambda self, timeout_s=90.0: 0)
    monkeypatch.setattr(ramp, "Ramp", Steps)
    for name in ("CALLQA_MODEL", "CALLQA_ASR_BEAM_SIZE", "CALLQA_ASR_QUEUE_MEMORY_S"):
        monkeypatch.delenv(name, raising=False)
    settings = tmp_path / "box.toml"
    settings.write_text("asr_beam_size = 2\nasr_queue_memory_s = 123.0\n", encoding="utf-8")
    wav = tmp_path / "call.wav"
    write_wav_pcm16(wav, [np.zeros(8000, np.float32)] * 2, 8000)
    code = main(["--config", str(settings), "--model", "tiny.en", "--data-dir",
                 str(tmp_path / "data"), "bench", str(wav), "--lines", "1", "--step-s", "1",
                 "--no-store", "--out", str(tmp_path / "out"),
                 "--work-dir", str(tmp_path / "work")])  # fmt: skip
    assert code == 0, capsys.readouterr()
    assert len(started) == 2  # callqa, then the baseline
    for env, beam in zip(started, ("2", "5"), strict=True):
        assert env["CALLQA_CONFIG"] == str(settings)
        child = load_settings(environ=env)  # what the child reads: its file, then its variables
        assert child.model == "tiny.en"
        assert child.asr_queue_memory_s == 123.0  # from the file, not passed on by name
        assert str(child.asr_beam_size) == beam  # the baseline's own beam wins
        assert child.grpc_host == "127.0.0.1" and child.grpc_token == ""


@pytest.mark.model
@pytest.mark.speech
def test_a_short_ramp_through_the_daemon(tmp_path: Path, base_model_dir: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from core.audio.samples import make_samples

    wavs = make_samples(tmp_path / "samples")
    zh = [p for p in wavs if p.stem == "zh-complaint-rude"]
    out = tmp_path / "out"
    data = tmp_path / "data"
    step_s = 8
    code = main(["--data-dir", str(data), "bench", *map(str, zh), "--lines", "1,2",
                 "--step-s", str(step_s), "--no-baseline", "--set", f"model={base_model_dir}",
                 "--out", str(out), "--work-dir", str(tmp_path / "work")])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "CPU per stage" in printed and "callqa: whisper-base on cpu" in printed
    runs = json.loads((out / "capacity.json").read_text())
    (run,) = runs
    steps = run["steps"]
    assert [s["lines"] for s in steps] == [1, 2]
    for step in steps:
        assert step["calls_ok"] == step["lines"]
        assert step["utterances"] > 0 and step["latency_p95_ms"] is not None
        assert step["packets_received"] >= step["lines"] * 2 * step_s * 50 * 0.95
        assert step["stage_cores"]["asr"] > 0 and step["stage_cores"]["receive"] > 0
        assert step["rss_peak_mb"] > 50
    ET.parse(out / "capacity.svg")
    with sqlite3.connect(data / "callqa.db") as db:
        rows = db.execute("SELECT kind, max_lines_held FROM benchmark_runs").fetchall()
    assert rows == [("capacity-callqa", run["max_lines_held"])]
    # The calls of the last step held were scored again offline: the same findings.
    (check,) = run["findings_checks"]  # the last step held is the last kept up
    assert check["lines"] == 2 and check["calls"] == 2, check
    assert check["same"] == 2, check["differing"]
    assert "findings against offline scoring at 2 lines: 2 of 2 calls the same" in printed

    # The check sees a stored finding that offline scoring does not give.
    daemon_data = tmp_path / "work" / "callqa" / "data"
    with sqlite3.connect(daemon_data / "callqa.db") as db:
        calls = [r[0] for r in db.execute("SELECT call_id FROM scores ORDER BY call_id")]
        db.execute("UPDATE findings SET start_s = start_s + 5 WHERE call_id = ? AND rowid ="
                   " (SELECT MIN(rowid) FROM findings WHERE call_id = ?)", [calls[0]] * 2)
    settings = load_settings(overrides={"data_dir": str(daemon_data), "model": str(base_model_dir)},
                             environ={})  # fmt: skip
    again = check_findings(settings, calls, lines=2)
    assert len(again.calls) == 3 and again.same == 2, again.summary()
    assert "live only" in again.summary() and "offline only" in again.summary()
