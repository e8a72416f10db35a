"""`callqa serve` as a process, driven by real gRPC clients (and, in test_serve_sipp, SIPp).

What is checked: a StreamAudio round trip (transcripts, the alert, the score, the stored
call), PutRubric refusing an invalid rubric with its reasons, SIGTERM ending a live call
and storing it scored, and kill -9 mid-call: the recording is on disk and the call is
scored as interrupted after the restart.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import sqlite3
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from core.audio.samples import SAMPLE_CALLS, make_samples
from core.audio.wav import read_wav
from proto import callqa_pb2 as pb
from tests.core.serve_harness import Daemon, EventCollector, audio_frames, legs_int16

pytestmark = pytest.mark.model

RUDE = "en-complaint-rude"


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("samples")
    paths = make_samples(out)
    return {p.stem: p for p in paths if p.suffix == ".wav"}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path):  # type: ignore[no-untyped-def]
    d = Daemon(tmp_path_factory.mktemp("serve"), base_model_dir).start()
    yield d
    d.stop()


def _kinds(events: list[pb.CallEvent]) -> list[str]:
    return [e.WhichOneof("event") or "" for e in events]


def _wait_status(daemon: Daemon, call_id: str, statuses: set[int], timeout_s: float) -> pb.Call:
    stub = daemon.stub()
    deadline = time.monotonic() + timeout_s
    call = None
    while time.monotonic() < deadline:
        try:
            call = stub.GetCall(pb.CallRef(call_id=call_id), timeout=5)
            if call.status in statuses:
                return call
        except grpc.RpcError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"call {call_id} never reached {statuses}: {call}\n{daemon.log()}")


def test_stream_audio_round_trip(daemon: Daemon, samples: dict[str, Path]) -> None:
    expected = next(c for c in SAMPLE_CALLS if c.name == RUDE)
    agent, customer = legs_int16(samples[RUDE])
    stub = daemon.stub()
    alerts = EventCollector(stub.WatchAlerts(pb.AlertFilter(agent_ids=["E07"])))
    wallboard = EventCollector(stub.WatchCalls(pb.WatchCallsRequest(agent_ids=["E07"])))
    elsewhere = EventCollector(stub.WatchCalls(pb.WatchCallsRequest(agent_ids=["X99"])))
    time.sleep(0.3)
    events = list(stub.StreamAudio(
        audio_frames(agent, customer, speed=3.0, rubric="default-en", agent_id="E07",
                     encoding=pb.AUDIO_ENCODING_PCMU, external_id="pbx-77"),
        timeout=300,
    ))  # fmt: skip
    alerts.cancel()
    time.sleep(0.5)
    wallboard.cancel()
    elsewhere.cancel()
    kinds = _kinds(events)
    assert kinds[0] == "started" and kinds[-1] == "ended", kinds
    assert kinds[-2] == "scored", kinds
    call_id = events[0].call_id
    assert all(e.call_id == call_id for e in events)
    assert events[0].started.rubric_id == "default-en"
    finals = [e.transcript.utterance for e in events if e.WhichOneof("event") == "transcript"
              and not e.transcript.utterance.partial]  # fmt: skip
    text = " ".join(u.text for u in finals).lower()
    assert "complaint" in text, text
    stream_alerts = [e.alert for e in events if e.WhichOneof("event") == "alert"]
    assert {"forbidden_words", "complaint_risk"} <= {a.item_id for a in stream_alerts}, kinds
    # WatchCalls saw the call from start to end, finals only, each with its latency; a
    # filter on another agent saw nothing.
    board = _kinds(wallboard.items)
    assert board[0] == "started" and board[-1] == "ended", board
    assert {e.call_id for e in wallboard.items} == {call_id}
    assert wallboard.items[0].started.external_call_id == "pbx-77"
    board_finals = [e.transcript for e in wallboard.items
                    if e.WhichOneof("event") == "transcript"]  # fmt: skip
    assert [t.utterance.text for t in board_finals] == [u.text for u in finals]
    assert all(not t.utterance.partial and t.latency_ms > 0 for t in board_finals)
    assert elsewhere.items == []
    # Every alert on the call's stream also reached the WatchAlerts subscriber.
    assert {a.alert_id for a in stream_alerts} <= {a.alert_id for a in alerts.items}
    for a in alerts.items:
        assert a.agent_id == "E07" and a.call_id == call_id
        assert a.latency_ms >= 0 and a.raised_at.seconds > 0
    scored = events[-2].scored
    stored = stub.GetCall(pb.CallRef(call_id=call_id))
    assert stored.status == pb.CALL_STATUS_SCORED
    assert stored.source == pb.CALL_SOURCE_GRPC
    assert stored.score == pytest.approx(scored.score)
    assert Path(stored.recording_path).is_file()
    assert stored.duration_s == pytest.approx(len(agent) / 8000, abs=0.5)
    found = {f.item_id for f in stored.findings}
    assert set(expected.expected_items) <= found, (expected.expected_items, found)
    listed = stub.ListCalls(pb.ListCallsRequest(agent_id="E07"))
    assert [c.call_id for c in listed.calls] == [call_id]
    hits = stub.SearchTranscripts(pb.SearchRequest(query="complaint"))
    assert any(h.call_id == call_id for h in hits.hits)
    # WatchCall on an ended call replays it from the store.
    replay = list(stub.WatchCall(pb.CallRef(call_id=call_id), timeout=30))
    assert _kinds(replay)[0] == "started" and _kinds(replay)[-1] == "ended"


def test_stream_audio_refuses_a_bad_setup(daemon: Daemon) -> None:
    stub = daemon.stub()

    def frames():  # type: ignore[no-untyped-def]
        yield pb.AudioFrame(setup=pb.CallSetup(encoding=pb.AUDIO_ENCODING_PCMU,
                                               sample_rate_hz=16000))  # fmt: skip

    with pytest.raises(grpc.RpcError) as err:
        list(stub.StreamAudio(frames(), timeout=30))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "8000" in err.value.details()

    def no_setup():  # type: ignore[no-untyped-def]
        yield pb.AudioFrame(audio=pb.AudioChunk(leg=pb.LEG_AGENT, payload=b"\xff" * 160))

    with pytest.raises(grpc.RpcError) as err:
        list(stub.StreamAudio(no_setup(), timeout=30))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_put_rubric_invalid_and_valid(daemon: Daemon) -> None:
    stub = daemon.stub()
    bad = "format: 1\nid: broken\nlanguage: zh\npass_score: 60\nitems:\n  - id: x\n    kind: nope\n"
    with pytest.raises(grpc.RpcError) as err:
        stub.PutRubric(pb.PutRubricRequest(yaml=bad))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reasons = err.value.details().splitlines()
    assert reasons and any("kind" in r for r in reasons), reasons
    with pytest.raises(grpc.RpcError) as err:
        stub.PutRubric(pb.PutRubricRequest(yaml="{{{ not yaml"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    names = {r.rubric_id for r in stub.ListRubrics(pb.ListRubricsRequest()).rubrics}
    assert "broken" not in names and {"default-zh", "default-en"} <= names

    text = (Path(__file__).resolve().parents[3] / "core/rubrics/default-en.yaml").read_text()
    text = text.replace("id: default-en", "id: team-en", 1)
    put = stub.PutRubric(pb.PutRubricRequest(yaml=text, activate=True))
    assert put.rubric_id == "team-en" and put.version == 1 and put.active
    again = stub.PutRubric(pb.PutRubricRequest(yaml=text))
    assert again.version == 1 and again.unchanged
    info = stub.ActivateRubric(pb.ActivateRubricRequest(rubric_id="team-en", version=1))
    assert info.active_version == 1 and info.language == "en"
    with pytest.raises(grpc.RpcError) as err:
        stub.ActivateRubric(pb.ActivateRubricRequest(rubric_id="team-en", version=9))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_capacity_and_live_calls(daemon: Daemon, samples: dict[str, Path]) -> None:
    stub = daemon.stub()
    agent, customer = legs_int16(samples[RUDE])
    events = EventCollector(stub.StreamAudio(
        audio_frames(agent, customer, speed=1.0, rubric="default-en", agent_id="E09",
                     stop_after_s=6.0),
        timeout=120,
    ))  # fmt: skip
    time.sleep(3.0)
    live = stub.ListLiveCalls(pb.ListLiveCallsRequest(agent_ids=["E09"]))
    assert len(live.calls) == 1 and live.calls[0].source == pb.CALL_SOURCE_GRPC
    assert live.calls[0].duration_s > 1.0
    cap = stub.GetCapacity(pb.GetCapacityRequest())
    assert cap.live_lines >= 1 and cap.asr_device == "cpu" and cap.model_name
    events.join(120)
    assert _kinds(events.items)[-1] == "ended"


def test_run_benchmark_streams_steps_and_is_kept(daemon: Daemon) -> None:
    stub = daemon.stub()
    request = pb.RunBenchmarkRequest(max_lines=2, step_lines=1, step_s=10.0,
                                     audio=pb.BENCHMARK_AUDIO_SAMPLES)  # fmt: skip
    alerts = EventCollector(stub.WatchAlerts(pb.AlertFilter()))
    *steps, final = list(stub.RunBenchmark(request, timeout=300))
    alerts.cancel()
    assert final.done and not any(s.done for s in steps)
    assert steps and [s.lines for s in steps] == [1, 2][: len(steps)]
    assert all(s.latency_p95_ms > 0 for s in steps)
    result = final.result
    assert result.model_name and result.asr_device == "cpu" and result.summary
    assert result.max_lines == max((s.lines for s in steps if s.held), default=0)
    cap = stub.GetCapacity(pb.GetCapacityRequest())
    assert cap.last_benchmark.summary == result.summary
    assert alerts.items == []  # the simulated calls raise nothing to watchers
    assert not [c for c in stub.ListCalls(pb.ListCallsRequest(limit=100)).calls
                if c.source == pb.CALL_SOURCE_UNSPECIFIED]  # fmt: skip
    with pytest.raises(grpc.RpcError) as err:
        list(stub.RunBenchmark(pb.RunBenchmarkRequest(max_lines=5, step_lines=9)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_sigterm_finishes_live_calls(
    tmp_path: Path, base_model_dir: Path, samples: dict[str, Path]
) -> None:
    d = Daemon(tmp_path / "term", base_model_dir).start()
    try:
        agent, customer = legs_int16(samples[RUDE])
        stream = EventCollector(d.stub().StreamAudio(
            audio_frames(agent, customer, speed=1.0, rubric="default-en", end=False),
            timeout=120,
        ))  # fmt: skip
        time.sleep(8.0)
        d.signal(signal.SIGTERM)
        assert d.wait(90) == 0, d.log()
        stream.join(10)
        kinds = _kinds(stream.items)
        assert kinds[0] == "started" and "scored" in kinds and kinds[-1] == "ended", kinds
        ended = stream.items[-1].ended
        assert ended.reason in (pb.END_REASON_SHUTDOWN, pb.END_REASON_CANCELLED), ended
        call_id = stream.items[0].call_id
        log = d.log()
        assert "stopping" in log and "stopped" in log
    finally:
        d.stop()
    again = Daemon(tmp_path / "term", base_model_dir).start()
    try:
        call = again.stub().GetCall(pb.CallRef(call_id=call_id))
        assert call.status == pb.CALL_STATUS_SCORED, call.status
        assert 5.0 < call.duration_s < 12.0
        assert Path(call.recording_path).is_file()
    finally:
        again.stop()


def test_kill_9_mid_call_is_recovered_after_restart(
    tmp_path: Path, base_model_dir: Path, samples: dict[str, Path]
) -> None:
    from telephony.recorder import recover_wav

    d = Daemon(tmp_path / "crash", base_model_dir).start()
    agent, customer = legs_int16(samples[RUDE])
    stream = EventCollector(d.stub().StreamAudio(
        audio_frames(agent, customer, speed=1.0, rubric="default-en", end=False), timeout=120,
    ))  # fmt: skip
    time.sleep(9.0)
    d.signal(signal.SIGKILL)
    d.wait(10)
    stream.join(10)
    call_id = stream.items[0].call_id
    spooled = list((tmp_path / "crash" / "spool" / "live").glob(f"{call_id}.wav"))
    assert len(spooled) == 1
    on_disk = recover_wav(spooled[0])
    assert 7.5 < on_disk <= 9.5, on_disk  # up to the last second before the kill

    again = Daemon(tmp_path / "crash", base_model_dir).start()
    try:
        call = _wait_status(again, call_id, {pb.CALL_STATUS_INTERRUPTED}, 120)
        assert call.HasField("score"), call
        assert call.duration_s == pytest.approx(on_disk, abs=0.05)
        assert Path(call.recording_path).is_file()
        assert '"interrupted"' in call.metadata_json
        assert any(u.speaker == pb.SPEAKER_AGENT for u in call.transcript)
    finally:
        again.stop()


def test_watch_call_command_replays_a_stored_call(daemon: Daemon, samples: dict[str, Path]) -> None:
    import subprocess
    import sys

    agent, customer = legs_int16(samples["en-clean-billing"])
    events = list(daemon.stub().StreamAudio(
        audio_frames(agent, customer, speed=4.0, rubric="default-en", agent_id="E11"),
        timeout=300,
    ))  # fmt: skip
    call_id = events[0].call_id
    done = subprocess.run(
        [sys.executable, "-m", "core.cli", "watch", "call", call_id, "--address",
         f"127.0.0.1:{daemon.grpc_port}"],
        capture_output=True, text=True, timeout=60,
        cwd=Path(__file__).resolve().parents[3],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "started, rubric default-en" in lines[0]
    assert any("Northwind" in line for line in lines)
    assert "scored 100 (pass)" in done.stdout and "ended" in lines[-1]
    missing = subprocess.run(
        [sys.executable, "-m", "core.cli", "watch", "call", "no-such-call", "--address",
         f"127.0.0.1:{daemon.grpc_port}"],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[3],
    )  # fmt: skip
    assert missing.returncode == 2 and "NOT_FOUND" in missing.stderr


def test_token_health_and_reflection(tmp_path: Path, base_model_dir: Path) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    env = {"CALLQA_GRPC_TOKEN": "s3cret-token-0123456789", "CALLQA_SIP_ENABLED": "0"}
    d = Daemon(tmp_path / "token", base_model_dir, env=env).start()
    try:
        channel = d.channel()
        stub = pb_grpc_stub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.GetCapacity(pb.GetCapacityRequest())
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as err:
            stub.GetCapacity(pb.GetCapacityRequest(), metadata=[("authorization", "Bearer no")])
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        cap = stub.GetCapacity(pb.GetCapacityRequest(),
                               metadata=[("authorization",
                                          "Bearer s3cret-token-0123456789")])  # fmt: skip
        assert cap.model_name
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service="callqa.v1.CallQa"))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = reflect.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
            metadata=[("authorization", "Bearer s3cret-token-0123456789")],
        )
        names = {s.name for a in answers for s in a.list_services_response.service}
        assert {"callqa.v1.CallQa", "grpc.health.v1.Health"} <= names
    finally:
        d.stop()


def pb_grpc_stub(channel: grpc.Channel):  # type: ignore[no-untyped-def]
    from proto import callqa_pb2_grpc

    return callqa_pb2_grpc.CallQaStub(channel)


# Four customers' phone tails cut from the corpus (call, start, end of the utterance, its
# characters; the last four are the digits): 5116 6843 5957 0299, a Luhn-valid card number.
CARD_PIECES = (("dev004", 28.376, 31.386, 11), ("dev005", 23.441, 26.331, 11),
               ("dev007", 21.683, 24.359, 11), ("dev014", 21.0, 23.31, 9))  # fmt: skip
LEAD_S = 0.5
_D = "[0-9零〇一幺二两三四五六七八九]"
_DIGIT_RUN = re.compile(rf"{_D}(?:[\s,.，。、-]?{_D}){{3}}")  # four digits in a row, any form
# A live line still being said may show the first five digits of a run (README, Redaction).
_LIVE_RUN = re.compile(rf"{_D}(?:[\s,.，。、-]?{_D}){{5}}")


def _spoken_card(corpus: Path) -> tuple[np.ndarray, float]:
    """A customer leg that reads a card number (16 digits, 4 groups) after LEAD_S of silence;
    and the end of the speech (s)."""
    parts = [np.zeros(int(LEAD_S * 8000), np.float32)]
    for name, start, end, chars in CARD_PIECES:
        leg = read_wav(corpus / f"{name}.wav").channels[1]
        first = start + (end - start) * ((chars - 4) / chars - 0.02)
        parts += [leg[int(first * 8000) : int(end * 8000)], np.zeros(800, np.float32)]
    speech_end = sum(len(p) for p in parts) / 8000
    parts.append(np.zeros(8000, np.float32))
    pcm = np.concatenate(parts)
    return np.clip(pcm * 32768.0, -32768, 32767).astype(np.int16), speech_end


@pytest.mark.corpus
def test_a_spoken_card_number_is_stored_nowhere(daemon: Daemon, corpus_dir: Path) -> None:
    """Real audio through the real pipeline: the digits never reach an event, a row, the
    search index or the recording, and the transcript says where a number was."""
    customer, speech_end = _spoken_card(corpus_dir)
    agent = np.zeros_like(customer)
    events = list(daemon.stub().StreamAudio(
        audio_frames(agent, customer, speed=3.0, rubric="default-zh", agent_id="P01",
                     external_id="pci-1"), timeout=120))  # fmt: skip
    call_id = events[0].call_id
    sent = [e.transcript.utterance.text for e in events if e.WhichOneof("event") == "transcript"]
    assert sent and not any(_LIVE_RUN.search(t) for t in sent), sent
    stored = _wait_status(daemon, call_id, {pb.CALL_STATUS_SCORED}, 60)
    lines = [u.text for u in stored.transcript]
    assert any("[卡号]" in t or "[账号]" in t for t in lines), lines  # heard, and masked
    db = sqlite3.connect(f"file:{daemon.data_dir / 'callqa.db'}?mode=ro", uri=True)
    rows = db.execute("SELECT text, search_text FROM utterances WHERE call_id = ?",
                      (call_id,)).fetchall()  # fmt: skip
    rows += db.execute("SELECT evidence, '' FROM findings WHERE call_id = ?", (call_id,)).fetchall()
    meta = json.loads(db.execute("SELECT meta FROM calls WHERE id = ?", (call_id,)).fetchone()[0])
    assert rows and not any(_DIGIT_RUN.search(a + b) for a, b in rows), rows
    with sqlite3.connect(daemon.data_dir / "fts-check.db") as check:  # the index's own terms
        db.backup(check)
        db.close()
        check.execute("CREATE VIRTUAL TABLE v USING fts5vocab(utterances_fts, 'row')")
        terms = [t for (t,) in check.execute("SELECT term FROM v")]
    assert terms and not any(_DIGIT_RUN.search(t) for t in terms), terms
    spans = meta["redaction"]["spans"]
    assert spans and {s["speaker"] for s in spans} == {"customer"}, spans
    recording = read_wav(stored.recording_path)
    said = recording.channels[1][int(LEAD_S * 8000) : int(speech_end * 8000)]
    assert len(said) > 3 * 8000 and not np.any(said), "the spoken number is still in the file"


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_the_api_listens_on_an_ipv6_address(tmp_path: Path, base_model_dir: Path) -> None:
    """``grpc_host = "::1"``: the daemon binds ``[::1]:port`` and a client on the box reaches
    it there (`core.api.client.daemon_address`)."""
    d = Daemon(tmp_path / "v6", base_model_dir,
               env={"CALLQA_GRPC_HOST": "::1", "CALLQA_SIP_ENABLED": "0"}).start()  # fmt: skip
    try:
        assert d.address == f"[::1]:{d.grpc_port}"
        cap = pb_grpc_stub(d.channel()).GetCapacity(pb.GetCapacityRequest(), timeout=10)
        assert cap.model_name
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # not on IPv4 as well
            assert s.connect_ex(("127.0.0.1", d.grpc_port)) != 0
    finally:
        d.stop()


def test_sighup_reloads_the_api_tokens(tmp_path: Path, base_model_dir: Path) -> None:
    """A token rotated in the secrets file takes effect at SIGHUP, without a restart; a
    reload with a malformed token is refused whole and the tokens in use stay."""
    secrets = tmp_path / "grpc-tokens.toml"
    old, new = "old-token-0123456789abcdef", "new-token-0123456789abcdef"
    secrets.write_text(f'grpc_token_read = "{old}"\n', encoding="utf-8")
    secrets.chmod(0o600)
    d = Daemon(tmp_path / "d", base_model_dir,
               env={"CALLQA_GRPC_TOKENS_FILE": str(secrets), "CALLQA_SIP_ENABLED": "0"}).start()

    def answers(token: str) -> grpc.StatusCode:
        try:
            pb_grpc_stub(d.channel()).GetCapacity(
                pb.GetCapacityRequest(), metadata=[("authorization", f"Bearer {token}")],
                timeout=10)  # fmt: skip
        except grpc.RpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    def after_sighup(token: str, want: grpc.StatusCode) -> grpc.StatusCode:
        d.signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while (got := answers(token)) != want and time.monotonic() < deadline:
            time.sleep(0.2)
        return got

    try:
        assert answers(old) == grpc.StatusCode.OK
        assert answers(new) == grpc.StatusCode.UNAUTHENTICATED
        secrets.write_text(f'grpc_token_read = "{new}"\n', encoding="utf-8")
        assert after_sighup(new, grpc.StatusCode.OK) == grpc.StatusCode.OK
        assert answers(old) == grpc.StatusCode.UNAUTHENTICATED
        assert "API tokens reloaded: grpc_token_read 1" in d.log()

        secrets.write_text('grpc_token_read = "short"\n', encoding="utf-8")  # malformed
        d.signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while "reload refused" not in d.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "reload refused" in d.log()
        assert answers(new) == grpc.StatusCode.OK
    finally:
        d.stop()
