"""The call page and the call's recording routes: scope, permissions, range requests, the
converted WAV, peaks, the audit of playbacks and downloads, and the page's own helpers."""

from __future__ import annotations

import json
import re
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin_web import audio, audit, site_db
from admin_web.call_view import (
    SHAKY_CONFIDENCE,
    EvidenceContext,
    finding_evidence,
    line_confidence,
    timeline,
)
from core.audio.wav import parse_wav, write_wav_g711
from core.rubric.schema import Item
from kernels.g711 import ulaw_encode
from tests.admin_web.conftest import SAMPLE_RATE, StoredCall, login, make_user

ClientAs = Callable[[str], FlaskClient]
AGENT_HZ = 220.0
CUSTOMER_HZ = 330.0


# ---------------------------------------------------------------- helpers


def call_row(data_dir: Path, call_id: str) -> dict[str, Any]:
    conn = sqlite3.connect(data_dir / "callqa.db")
    conn.row_factory = sqlite3.Row
    try:
        return dict(conn.execute("SELECT * FROM calls WHERE id = ?", [call_id]).fetchone())
    finally:
        conn.close()


def update_call(data_dir: Path, call_id: str, **values: Any) -> None:
    conn = sqlite3.connect(data_dir / "callqa.db")
    try:
        sets = ", ".join(f"{k} = ?" for k in values)
        conn.execute(f"UPDATE calls SET {sets} WHERE id = ?", [*values.values(), call_id])
        conn.commit()
    finally:
        conn.close()


def write_tones(path: Path, *, agent_right: bool = False, seconds: float = 12.0) -> None:
    """A mu-law stereo recording: the agent's 220 Hz tone in 0-2 s, 4-6 s...; the customer's
    330 Hz in 2-4 s, 6-8 s...; the agent on the right channel when `agent_right`."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    agent = 0.3 * np.sin(2 * np.pi * AGENT_HZ * t) * (t % 4 < 2)
    customer = 0.3 * np.sin(2 * np.pi * CUSTOMER_HZ * t) * (t % 4 >= 2)
    legs = [customer, agent] if agent_right else [agent, customer]
    codes = [ulaw_encode(np.round(x * 32767).astype(np.int16)) for x in legs]
    write_wav_g711(path, codes, SAMPLE_RATE, "mulaw")


def dominant_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spectrum))])


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def audit_count(app: Flask, call_id: str, action: str) -> int:
    conn = site_db.connect(Path(app.config["DATA_DIR"]))
    try:
        return len(audit.entries(conn, call_id=call_id, action=action))
    finally:
        conn.close()


def page_data(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="call-data">(.*?)</script>', html,
                      re.S)
    assert match, "no #call-data block"
    return json.loads(match.group(1))


@pytest.fixture
def t1_call(calls: list[StoredCall]) -> StoredCall:
    return calls[0]             # team T1, a fatal call with three findings


@pytest.fixture
def t2_call(calls: list[StoredCall]) -> StoredCall:
    return calls[2]             # team T2


# ---------------------------------------------------------------- the page


@pytest.mark.parametrize("role", ["admin", "inspector", "supervisor", "viewer"])
def test_page_renders_for_each_reading_role(client_as: ClientAs, t1_call: StoredCall,
                                            role: str) -> None:
    response = client_as(role).get(f"/calls/{t1_call.id}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for marker in ('id="timeline"', 'id="score-breakdown"', 'id="review-panel"',
                   'class="transcript-line', 'id="call-data"'):
        assert marker in html, marker
    assert t1_call.agent in html and t1_call.team in html
    assert "default-zh" in html
    data = page_data(html)
    assert data["callId"] == t1_call.id
    assert data["duration"] == pytest.approx(12.0)
    if role == "viewer":
        assert 'id="player"' not in html and 'id="play-button"' not in html
        assert 'id="player-note"' in html
        assert data["canPlay"] is False and data["audioUrl"] is None
        assert "wavesurfer.min.js" not in html
    else:
        assert 'id="player"' in html and 'id="play-button"' in html
        assert 'id="current-time"' in html
        assert data["canPlay"] is True
        assert data["audioUrl"] == f"/calls/{t1_call.id}/recording.wav"
        assert data["peaksUrl"] == f"/calls/{t1_call.id}/peaks.json"
        scripts = [s.rsplit("/", 1)[-1] for s in re.findall(r'<script src="([^"]+)"', html)]
        assert [s for s in scripts if "wavesurfer" in s or s == "call.js"] == [
            "wavesurfer.min.js", "wavesurfer.regions.min.js", "wavesurfer.timeline.min.js",
            "call.js"]
    assert ('id="download-link"' in html) == (role in ("admin", "inspector"))


def test_page_has_no_inline_script_or_handler(client_as: ClientAs, t1_call: StoredCall) -> None:
    html = client_as("admin").get(f"/calls/{t1_call.id}").get_data(as_text=True)
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert 'src="' in tag or 'type="application/json"' in tag, tag
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"


def test_page_lists_findings_marks_and_transcript(client_as: ClientAs,
                                                  t1_call: StoredCall) -> None:
    html = client_as("admin").get(f"/calls/{t1_call.id}").get_data(as_text=True)
    seqs = re.findall(r'<li class="finding[^"]*" data-seq="(\d+)"', html)
    assert sorted(int(s) for s in seqs) == list(range(t1_call.findings))
    marks = re.findall(r'class="timeline-mark mark-finding sev-([ABC])"\s+data-start="([\d.]+)"',
                       html)
    assert len(marks) == t1_call.findings
    assert re.search(r'class="timeline-mark mark-silence"\s+data-start="6.00" data-end="9.50"',
                     html)
    starts = re.findall(r'class="transcript-line[^"]*" data-start="([\d.]+)"', html)
    assert starts == ["0.20", "2.20", "4.20"]
    # The customer's line was recognised with avg_logprob -1.2: shaky, with an explanation.
    assert re.search(r'class="transcript-line speaker-customer shaky" data-start="2.20"', html)
    assert 'class="shaky-marker" title="' in html
    assert html.count("shaky-marker") == 1


def test_supervisor_sees_only_own_team(client_as: ClientAs, app: Flask, data_dir: Path,
                                       t1_call: StoredCall, t2_call: StoredCall) -> None:
    make_user(data_dir, "sue", "supervisor", team="T1", recording="play,download")
    client = app.test_client()
    assert login(client, "sue").status_code == 302
    for suffix in ("", "/recording.wav", "/peaks.json", "/download"):
        assert client.get(f"/calls/{t2_call.id}{suffix}").status_code == 404, suffix
        assert client.get(f"/calls/{t1_call.id}{suffix}").status_code == 200, suffix
    assert client_as("supervisor").get(f"/calls/{t2_call.id}").status_code == 404


def test_missing_call_is_404(client_as: ClientAs, calls: list[StoredCall]) -> None:
    client = client_as("admin")
    for suffix in ("", "/recording.wav", "/peaks.json", "/download"):
        assert client.get(f"/calls/20990101T000000-000000{suffix}").status_code == 404


@pytest.mark.parametrize("suffix", ["/recording.wav", "/peaks.json", "/download"])
def test_viewer_may_not_play_or_download(client_as: ClientAs, t1_call: StoredCall,
                                         suffix: str) -> None:
    assert client_as("viewer").get(f"/calls/{t1_call.id}{suffix}").status_code == 403


def test_supervisor_may_play_but_not_download(client_as: ClientAs, t1_call: StoredCall) -> None:
    client = client_as("supervisor")
    assert client.get(f"/calls/{t1_call.id}/recording.wav").status_code == 200
    assert client.get(f"/calls/{t1_call.id}/download").status_code == 403


# ---------------------------------------------------------------- the recording


def test_recording_is_pcm16_stereo_with_agent_left(client_as: ClientAs, data_dir: Path,
                                                   t1_call: StoredCall) -> None:
    write_tones(Path(call_row(data_dir, t1_call.id)["recording_path"]))
    response = client_as("admin").get(f"/calls/{t1_call.id}/recording.wav")
    assert response.status_code == 200
    assert response.mimetype == "audio/wav"
    assert response.headers["Accept-Ranges"] == "bytes"
    rec = parse_wav(response.data)
    assert rec.encoding == "pcm16" and rec.sample_rate == SAMPLE_RATE
    assert len(rec.channels) == 2
    assert rec.duration_s == pytest.approx(12.0)
    left, right = rec.channels
    agent_turn, customer_turn = slice(0, 2 * SAMPLE_RATE), slice(2 * SAMPLE_RATE, 4 * SAMPLE_RATE)
    assert dominant_hz(left[agent_turn], SAMPLE_RATE) == pytest.approx(AGENT_HZ, abs=1)
    assert dominant_hz(right[customer_turn], SAMPLE_RATE) == pytest.approx(CUSTOMER_HZ, abs=1)
    assert rms(left[agent_turn]) > 0.15 and rms(left[customer_turn]) < 0.01
    assert rms(right[customer_turn]) > 0.15 and rms(right[agent_turn]) < 0.01


def test_agent_on_the_right_of_the_stored_file_comes_out_left(client_as: ClientAs,
                                                              data_dir: Path,
                                                              t1_call: StoredCall) -> None:
    client = client_as("admin")
    client.get(f"/calls/{t1_call.id}/recording.wav")          # cache the left-agent version
    write_tones(Path(call_row(data_dir, t1_call.id)["recording_path"]), agent_right=True)
    update_call(data_dir, t1_call.id,
                meta=json.dumps({"agent_channel": "right", "channels": 2}))
    left, right = parse_wav(client.get(f"/calls/{t1_call.id}/recording.wav").data).channels
    assert dominant_hz(left[: 2 * SAMPLE_RATE], SAMPLE_RATE) == pytest.approx(AGENT_HZ, abs=1)
    assert rms(right[: 2 * SAMPLE_RATE]) < 0.01


def test_mono_recording_gives_one_lane(client_as: ClientAs, data_dir: Path,
                                       t1_call: StoredCall) -> None:
    path = Path(call_row(data_dir, t1_call.id)["recording_path"])
    t = np.arange(4 * SAMPLE_RATE) / SAMPLE_RATE
    tone = np.round(0.3 * np.sin(2 * np.pi * AGENT_HZ * t) * 32767).astype(np.int16)
    write_wav_g711(path, [ulaw_encode(tone)], SAMPLE_RATE, "mulaw")
    update_call(data_dir, t1_call.id, meta=json.dumps({"channels": 1,
                                                       "mono_speaker": "customer"}))
    client = client_as("admin")
    assert len(parse_wav(client.get(f"/calls/{t1_call.id}/recording.wav").data).channels) == 1
    peaks = client.get(f"/calls/{t1_call.id}/peaks.json").get_json()
    assert peaks["lanes"] == ["customer"] and len(peaks["peaks"]) == 1


def test_range_request_returns_206_with_those_bytes(client_as: ClientAs,
                                                    t1_call: StoredCall) -> None:
    client = client_as("admin")
    whole = client.get(f"/calls/{t1_call.id}/recording.wav").data
    assert len(whole) == 44 + 12 * SAMPLE_RATE * 2 * 2
    part = client.get(f"/calls/{t1_call.id}/recording.wav", headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{len(whole)}"
    assert part.data == whole[1000:2000]
    assert part.headers["Cache-Control"] == "no-store"
    tail = client.get(f"/calls/{t1_call.id}/recording.wav", headers={"Range": "bytes=-100"})
    assert tail.status_code == 206 and tail.data == whole[-100:]
    beyond = client.get(f"/calls/{t1_call.id}/recording.wav",
                        headers={"Range": f"bytes={len(whole) + 10}-"})
    assert beyond.status_code == 416


def test_one_audit_entry_per_playback(client_as: ClientAs, app: Flask,
                                      t1_call: StoredCall) -> None:
    client = client_as("admin")
    url = f"/calls/{t1_call.id}/recording.wav"
    client.get(f"/calls/{t1_call.id}")
    assert audit_count(app, t1_call.id, "play") == 0          # opening the page is not a play
    client.get(url, headers={"Range": "bytes=0-"})             # the media element starts
    assert audit_count(app, t1_call.id, "play") == 1
    for later in ("bytes=65536-", "bytes=100-199", "bytes=-500"):  # seeking and buffering
        assert client.get(url, headers={"Range": later}).status_code == 206
    assert audit_count(app, t1_call.id, "play") == 1
    client.get(url)                                            # a whole-file fetch
    assert audit_count(app, t1_call.id, "play") == 2
    entry = audit.entries(site_db.connect(Path(app.config["DATA_DIR"])),
                          call_id=t1_call.id, action="play")[0]
    assert entry["username"] == "alice"


def test_download_is_an_audited_attachment(client_as: ClientAs, app: Flask,
                                           t1_call: StoredCall) -> None:
    response = client_as("inspector").get(f"/calls/{t1_call.id}/download")
    assert response.status_code == 200
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment") and f"{t1_call.id}.wav" in disposition
    assert parse_wav(response.data).encoding == "pcm16"
    assert audit_count(app, t1_call.id, "download") == 1
    assert audit_count(app, t1_call.id, "play") == 0


def test_peaks_json(client_as: ClientAs, data_dir: Path, t1_call: StoredCall) -> None:
    write_tones(Path(call_row(data_dir, t1_call.id)["recording_path"]))
    response = client_as("supervisor").get(f"/calls/{t1_call.id}/peaks.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    body = response.get_json()
    assert body["duration"] == pytest.approx(12.0)
    assert body["sample_rate"] == SAMPLE_RATE
    assert body["lanes"] == ["agent", "customer"]
    assert audio.MIN_PEAK_BUCKETS <= body["buckets"] <= audio.MAX_PEAK_BUCKETS
    assert len(body["peaks"]) == 2
    for channel in body["peaks"]:
        assert len(channel) == 2 * body["buckets"]
        values = np.array(channel)
        assert values.min() >= -1.0 and values.max() <= 1.0
        assert all(round(v, 3) == v for v in channel)
        assert (values[0::2] <= values[1::2]).all()            # min then max
    first_quarter = body["buckets"] // 6                        # 0-2 s: the agent speaks
    agent, customer = (np.array(c[: 2 * first_quarter]) for c in body["peaks"])
    assert agent.max() > 0.25 and abs(customer).max() < 0.01


def test_peaks_bucket_count_follows_duration() -> None:
    assert audio.peak_buckets(10.0, 80_000) == audio.MIN_PEAK_BUCKETS
    assert audio.peak_buckets(120.0, 960_000) == 2400
    assert audio.peak_buckets(3600.0, 28_800_000) == audio.MAX_PEAK_BUCKETS
    assert audio.peak_buckets(0.01, 80) == 80


def test_cache_files_are_private_and_replaced_when_the_source_changes(
        client_as: ClientAs, data_dir: Path, t1_call: StoredCall) -> None:
    client = client_as("admin")
    client.get(f"/calls/{t1_call.id}/recording.wav")
    cache = data_dir / audio.CACHE_DIR_NAME
    first = sorted(p.name for p in cache.iterdir())
    assert len(first) == 2 and all(n.startswith(t1_call.id) for n in first)
    for p in cache.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    write_tones(Path(call_row(data_dir, t1_call.id)["recording_path"]), seconds=8.0)
    assert len(parse_wav(client.get(f"/calls/{t1_call.id}/recording.wav").data)
               .channels[0]) == 8 * SAMPLE_RATE
    second = sorted(p.name for p in cache.iterdir())
    assert len(second) == 2 and set(second).isdisjoint(first)


def test_missing_recording_file_is_404_with_a_message(client_as: ClientAs, data_dir: Path,
                                                      t1_call: StoredCall) -> None:
    Path(call_row(data_dir, t1_call.id)["recording_path"]).unlink()
    client = client_as("admin")
    response = client.get(f"/calls/{t1_call.id}/recording.wav")
    assert response.status_code == 404
    assert "no longer on the box" in response.get_data(as_text=True)
    peaks = client.get(f"/calls/{t1_call.id}/peaks.json")
    assert peaks.status_code == 404
    assert "no longer on the box" in peaks.get_json()["error"]["message"]
    assert client.get(f"/calls/{t1_call.id}/download").status_code == 404
    assert client.get(f"/calls/{t1_call.id}").status_code == 200   # the page still opens


def test_call_without_recording(client_as: ClientAs, data_dir: Path,
                                t1_call: StoredCall) -> None:
    update_call(data_dir, t1_call.id, recording_path=None)
    client = client_as("admin")
    response = client.get(f"/calls/{t1_call.id}/recording.wav")
    assert response.status_code == 404
    assert "has no recording" in response.get_data(as_text=True)
    html = client.get(f"/calls/{t1_call.id}").get_data(as_text=True)
    assert 'id="player"' not in html and 'id="download-link"' not in html


def test_unreadable_recording_says_so(client_as: ClientAs, data_dir: Path,
                                      t1_call: StoredCall) -> None:
    Path(call_row(data_dir, t1_call.id)["recording_path"]).write_bytes(b"not a wav file")
    response = client_as("admin").get(f"/calls/{t1_call.id}/peaks.json")
    assert response.status_code == 500
    assert "cannot be read" in response.get_json()["error"]["message"]


# ---------------------------------------------------------------- confidence and evidence


def test_confidence_ranks_a_clean_line_above_a_noisy_one() -> None:
    clean = line_confidence(-0.1, 0.01)
    noisy = line_confidence(-1.2, 0.05)
    assert clean.value is not None and noisy.value is not None
    assert clean.value > noisy.value
    assert clean.value == pytest.approx(np.exp(-0.1))
    assert not clean.shaky and noisy.shaky and noisy.low_confidence
    assert noisy.value < SHAKY_CONFIDENCE


def test_confidence_edges() -> None:
    assert line_confidence(0.3, 0.0).value == 1.0                # clamped
    assert line_confidence(float("-inf"), None).value == 0.0
    none = line_confidence(None, None)
    assert none.value is None and not none.shaky
    not_speech = line_confidence(-0.05, 0.8)
    assert not_speech.shaky and not_speech.maybe_not_speech and not not_speech.low_confidence


def finding(kind: str, detail: dict[str, Any], evidence: str = "raw evidence",
            item_id: str = "item", start: float = 1.0, end: float = 2.0) -> dict[str, Any]:
    return {"kind": kind, "detail": detail, "evidence": evidence, "item_id": item_id,
            "start_s": start, "end_s": end, "seq": 0}


EVIDENCE_CASES: list[tuple[dict[str, Any], list[str]]] = [
    (finding("forbidden_phrase", {"phrase": "不知道", "utterance_text": "我也不知道"}, "不知道"),
     ["Said “不知道”"]),
    (finding("forbidden_phrase", {"phrase": "不清楚", "edits": 1}, "不请楚"),
     ["Close match for “不清楚”", "the transcript says “不请楚”", "1 differences"]),
    (finding("keyword_alert", {"phrase": "投诉", "matched": "头诉"}, "头诉"),
     ["Close match for “投诉”", "“头诉”"]),
    (finding("required_phrase", {"missing": ["您好", "很高兴为您服务"],
                                 "window": {"start": 0.0, "end": 15.0}}),
     ["None of “您好”, “很高兴为您服务” was said between 0:00 and 0:15"]),
    (finding("trigger_response", {"trigger_phrase": "投诉", "trigger_speaker": "customer",
                                  "within_turns": 2, "missing": ["抱歉"]}),
     ["After the customer said “投诉”", "“抱歉”", "2 turns"]),
    (finding("silence", {"duration_s": 13.74, "resumed_by": "agent"}),
     ["Silence of 13.7 s; the agent spoke next"]),
    (finding("overtalk", {"overlap_s": 1.25, "other_speaker": "customer"}),
     ["Talked over the customer for 1.2 s"]),
    (finding("speech_rate", {"rate_per_min": 412.1, "unit": "chars", "too": "fast"},
             item_id="pace"),
     ["Too fast: 412 characters per minute (allowed 120–300)"]),
    (finding("speech_rate", {"rate_per_min": 80, "unit": "words", "too": "slow"},
             item_id="unknown"),
     ["Too slow: 80 words per minute"]),
    (finding("volume", {"rise_db": 8.46, "median_level_db": -29.6}),
     ["8.5 dB louder than the speaker’s median level (-29.6 dB)"]),
    (finding("volume", {"level_rel_db": 7.0}),
     ["7.0 dB louder than the speaker’s median level"]),
    (finding("filler_words", {"count": 13, "by_phrase": {"啊": 3, "这个": 10},
                              "per_min_talk": 12.34}, item_id="fillers"),
     ["13 filler words (啊×3, 这个×10): 12.3 per minute of talk, allowed 6"]),
    (finding("emotion", {"confidence": 0.82, "words": ["气死了"], "level_rise_db": 6.2}),
     ["Sounds upset (confidence 82%)", "cue words: “气死了”", "voice 6.2 dB louder"]),
    (finding("a_kind_from_the_future", {"x": 1}, "stored evidence"), ["stored evidence"]),
    (finding("required_phrase", {}, "missing: 您好"), ["missing: 您好"]),
]


@pytest.mark.parametrize(("f", "expected"), EVIDENCE_CASES,
                         ids=[f"{c[0]['kind']}-{i}" for i, c in enumerate(EVIDENCE_CASES)])
def test_evidence_text_per_kind(app: Flask, f: dict[str, Any], expected: list[str]) -> None:
    ctx = EvidenceContext(items={
        "pace": Item(id="pace", kind="speech_rate", severity="C", min_per_min=120,
                     max_per_min=300),
        "fillers": Item(id="fillers", kind="filler_words", severity="C", max_per_min=6),
    })
    with app.test_request_context(headers={"Accept-Language": "en"}):
        text = finding_evidence(f, ctx)
    for part in expected:
        assert part in text, (part, text)


def test_page_shows_readable_evidence_from_the_rubric(client_as: ClientAs, app: Flask,
                                                       data_dir: Path,
                                                       calls: list[StoredCall]) -> None:
    """The stored speech-rate finding is explained with the range of the rubric version."""
    conn = sqlite3.connect(data_dir / "callqa.db")
    try:
        call_id = calls[2].id
        conn.execute("UPDATE findings SET detail = ? WHERE call_id = ? AND kind = 'speech_rate'",
                     [json.dumps({"rate_per_min": 420.0, "unit": "chars", "too": "fast",
                                  "utterance": 2}), call_id])
        conn.commit()
    finally:
        conn.close()
    html = client_as("admin").get(f"/calls/{call_id}").get_data(as_text=True)
    assert re.search(r"Too fast: 420 characters per minute \(allowed [\d,]+–[\d,]+\)", html), html
    assert "“这个我也不知道。”" in html                   # the utterance it is about


def test_timeline_stacks_overlapping_marks(app: Flask) -> None:
    call = {
        "findings": [
            {"seq": 0, "item_id": "a", "name": "A", "severity": "A", "start_s": 0.0, "end_s": 15.0},
            {"seq": 1, "item_id": "b", "name": "B", "severity": "C", "start_s": 5.0, "end_s": 6.0},
            {"seq": 2, "item_id": "c", "name": "C", "severity": "B", "start_s": 20.0,
             "end_s": 21.0},
        ],
        "metrics": {"silence": [{"start": 30.0, "end": 40.0}], "overtalk": [[50.0, 51.0]]},
    }
    with app.test_request_context():
        lanes = {lane.kind: lane for lane in timeline(call, 100.0)}
    assert [m.row for m in lanes["finding"].marks] == [0, 1, 0]
    assert lanes["finding"].rows == 2
    assert lanes["silence"].marks[0].left_pct == 30.0
    assert lanes["silence"].marks[0].width_pct == 10.0
    assert lanes["overtalk"].marks[0].start == 50.0


def test_element_ids_are_unique(client_as: ClientAs, t1_call: StoredCall) -> None:
    html = client_as("admin").get(f"/calls/{t1_call.id}").get_data(as_text=True)
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
