"""Streaming VAD: synthetic signals with known answers, chunking invariance, the corpus."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import lfilter

from kernels.g711 import ulaw_decode
from kernels.levels import LEVEL_FLOOR_DBFS, frame_level_dbfs
from kernels.vad import FRAME_MS, StreamingVad, VadConfig, detect_voice
from kernels.vad_bank import VadBank

CORPUS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
RATE = 8000
FRAME = 160
FRAME_S = 0.02
HANGOVER_FRAMES = VadConfig().hangover_ms // 20


MULAW = (ulaw_decode(np.arange(256, dtype=np.uint8)) / 32768.0).astype(np.float32)
_ORDER = np.argsort(MULAW, kind="stable")
_SORTED = MULAW[_ORDER]


def g711(x: np.ndarray) -> np.ndarray:
    """Quantise float samples through mu-law (nearest code) and decode them again."""
    i = np.clip(np.searchsorted(_SORTED, x), 1, 255)
    pick = np.where(np.abs(x - _SORTED[i - 1]) <= np.abs(_SORTED[i] - x), i - 1, i)
    return _SORTED[pick]


def white_noise(dbfs: float, seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * RATE)) * 10 ** (dbfs / 20)).astype(np.float32)


def speech_like(
    seconds: float, f0: float = 200.0, dbfs: float = -28.0, seed: int = 0
) -> np.ndarray:
    """Harmonic tone with 1/k harmonics, gliding pitch and 4 Hz syllabic modulation."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))) / RATE
    x = sum(np.sin(k * phase + rng.uniform(0, 6.3)) / k for k in range(1, 16) if k * f0 < 3600)
    x = x * (0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t))
    x *= 10 ** (dbfs / 20) / np.sqrt(np.mean(x**2))
    return x.astype(np.float32)


def test_digital_silence_and_mulaw_idle_noise_are_not_speech() -> None:
    assert not detect_voice(np.zeros(RATE * 5, np.float32)).any()
    rng = np.random.default_rng(1)
    idle_codes = rng.choice(np.array([0xFF, 0x7F, 0xFE, 0x7E], np.uint8), RATE * 10)
    assert not detect_voice(MULAW[idle_codes]).any()


@pytest.mark.parametrize("dbfs", [-56.0, -50.0, -47.0])
def test_faint_white_noise_is_rarely_speech(dbfs: float) -> None:
    x = g711(white_noise(dbfs, 30.0, seed=int(-dbfs)))
    assert detect_voice(x).mean() <= 0.05


def test_speech_like_bursts_are_flagged_with_hangover() -> None:
    # 2 s noise, burst 1 s, 0.2 s pause, burst 1 s, 2 s noise; all over -50 dBFS noise.
    pieces = [np.zeros(2 * RATE), speech_like(1.0), np.zeros(int(0.2 * RATE))]
    pieces += [speech_like(1.0, f0=230.0, seed=1), np.zeros(2 * RATE)]
    clean = np.concatenate(pieces).astype(np.float32)
    x = g711(clean + white_noise(-50.0, len(clean) / RATE, seed=3))
    d = detect_voice(x)
    on, off = 100, 100 + 50 + 10 + 50  # frame indices of the speech span
    assert d[on + 2 : off].all(), "speech frames and the 0.2 s pause must all be flagged"
    assert not d[: on - 1].any(), "noise before the speech must not be flagged"
    tail = d[off:]
    assert tail[: HANGOVER_FRAMES - 2].all(), "the hangover keeps speech after the end"
    assert not tail[HANGOVER_FRAMES + 3 :].any(), "the hangover ends"


def test_loud_noise_start_is_learnt() -> None:
    # Noise that appears at -42 dBFS after digital silence is learnt within seconds.
    x = np.concatenate([np.zeros(RATE * 3, np.float32), g711(white_noise(-42.0, 20.0, seed=5))])
    d = detect_voice(x)
    assert not d[150 + 5 * 50 :].any()


def test_sixteen_khz() -> None:
    t = np.arange(16000) / 16000
    x = 0.05 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    x = np.concatenate([np.zeros(16000), x]).astype(np.float32)
    d = detect_voice(x, sample_rate=16000, frame_ms=20)
    assert d.shape == (100,)
    assert not d[:50].any() and d[52:].all()


def test_streaming_over_random_chunks_equals_one_shot() -> None:
    clean = np.concatenate([np.zeros(RATE), speech_like(2.0), np.zeros(RATE)]).astype(np.float32)
    x = g711(clean + white_noise(-48.0, len(clean) / RATE, seed=7))
    whole = detect_voice(x)
    rng = np.random.default_rng(11)
    vad = StreamingVad()
    parts, pos = [], 0
    while pos < len(x):
        n = int(rng.choice([0, 1, 7, 80, 159, 160, 161, 333, 1000]))
        parts.append(vad.process(x[pos : pos + n]))
        pos += n
    streamed = np.concatenate(parts)
    assert np.array_equal(streamed, whole)
    assert vad.pending_samples == len(x) % FRAME


def test_levels_in_the_same_pass_match_frame_level_dbfs_over_any_chunking() -> None:
    clean = np.concatenate([np.zeros(RATE), speech_like(2.0), np.zeros(RATE)]).astype(np.float32)
    x = g711(clean + white_noise(-48.0, len(clean) / RATE, seed=3))
    x = np.concatenate([x, np.zeros(RATE // 2, np.float32)])
    voice_whole, like_whole = StreamingVad().process_detail(x)
    levels_whole = frame_level_dbfs(x, RATE, FRAME_MS)
    assert levels_whole.min() == LEVEL_FLOOR_DBFS  # the digital silence reads the floor
    rng = np.random.default_rng(5)
    vad = StreamingVad()
    voice, like, levels, pos = [], [], [], 0
    while pos < len(x):
        n = int(rng.choice([0, 1, 80, 159, 160, 161, 800, 1999]))
        v, k, lv = vad.process_levels(x[pos : pos + n])
        assert len(v) == len(k) == len(lv) and lv.dtype == np.float32
        voice.append(v)
        like.append(k)
        levels.append(lv)
        pos += n
    assert np.array_equal(np.concatenate(voice), voice_whole)
    assert np.array_equal(np.concatenate(like), like_whole)
    assert np.array_equal(np.concatenate(levels), levels_whole)  # to the bit


def test_reset_and_detail_flags() -> None:
    x = g711(np.concatenate([np.zeros(RATE), speech_like(1.0), np.zeros(RATE)]))
    vad = StreamingVad()
    first = vad.process(x)
    vad.reset()
    voice, like = vad.process_detail(x)
    assert np.array_equal(first, voice)
    assert like.any()
    assert (like & ~voice).sum() <= 2, "only the onset frames are speech-like yet not voice"
    assert (voice & ~like).sum() >= HANGOVER_FRAMES - 1, "hangover frames are voice, not like"


def test_bank_equals_streaming() -> None:
    legs = [
        g711(np.concatenate([np.zeros(RATE), speech_like(1.0, seed=i), np.zeros(RATE)]))
        + white_noise(-50.0 + i, 3.0, seed=i)
        for i in range(5)
    ]
    expected = np.stack([detect_voice(leg) for leg in legs])
    bank = VadBank(len(legs))
    frames = np.stack(legs).reshape(len(legs), -1, FRAME)
    got = np.stack([bank.process(np.ascontiguousarray(frames[:, k])) for k in range(150)], 1)
    assert np.array_equal(got, expected)


def test_nan_does_not_poison_state() -> None:
    x = g711(np.concatenate([np.zeros(RATE), speech_like(1.0), np.zeros(RATE)]))
    y = x.copy()
    y[100:300] = np.nan
    d = detect_voice(y)
    assert not d[:45].any() and d[55:95].all()


def test_non_finite_frames_leave_the_noise_floors_alone() -> None:
    vad = StreamingVad()
    vad.process(g711(white_noise(-50.0, 3.0, seed=8)))
    before = vad.noise_floor_dbfs
    assert not vad.process(np.full(RATE, np.inf, np.float32)).any()
    assert vad.process(np.full(RATE, np.nan, np.float32)).sum() == 0
    assert vad.noise_floor_dbfs == before
    assert not vad.process(g711(white_noise(-50.0, 2.0, seed=9))).any()


def test_bank_detail_equals_streaming_detail_and_legs_reset_alone() -> None:
    legs = [
        g711(np.concatenate([np.zeros(RATE), speech_like(1.0, seed=i), np.zeros(RATE)]))
        for i in range(3)
    ]
    singles = [StreamingVad().process_detail(leg) for leg in legs]
    bank = VadBank(3)
    out, like_out = np.empty(3, np.bool_), np.empty(3, np.bool_)
    voice, like = [], []
    for k in range(150):
        block = np.ascontiguousarray(np.stack([leg[k * FRAME : (k + 1) * FRAME] for leg in legs]))
        v, lk = bank.process_detail(block, out, like_out)
        assert v is out and lk is like_out
        voice.append(v.copy())
        like.append(lk.copy())
    assert np.array_equal(np.array(voice).T, np.stack([v for v, _ in singles]))
    assert np.array_equal(np.array(like).T, np.stack([lk for _, lk in singles]))
    assert bank._states[1].any()
    bank.reset([1])
    assert not bank._states[1].any() and bank._states[0].any() and bank._states[2].any()


def test_input_errors_say_how_to_fix() -> None:
    with pytest.raises(TypeError, match="32768"):
        detect_voice(np.zeros(160, np.int16))
    with pytest.raises(TypeError, match=r"numpy\.asarray"):
        detect_voice([0.0] * 160)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1-D"):
        detect_voice(np.zeros((2, 160), np.float32))
    with pytest.raises(ValueError, match="resample"):
        StreamingVad(sample_rate=44100)
    with pytest.raises(ValueError, match="frame_ms"):
        StreamingVad(frame_ms=3)
    with pytest.raises(TypeError, match="VadConfig"):
        StreamingVad(config={"hangover_ms": 200})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        VadBank(3).process(np.zeros((2, 160), np.float32))
    with pytest.raises(TypeError, match="astype"):
        VadBank(3).process(np.zeros((3, 160), np.float64))
    with pytest.raises(ValueError, match="C-contiguous"):
        VadBank(3).process(np.zeros((160, 3), np.float32).T)
    with pytest.raises(TypeError, match="bool"):
        VadBank(3).process(np.zeros((3, 160), np.float32), out=np.zeros(3, np.int8))
    with pytest.raises(ValueError, match="different"):
        buf = np.zeros(3, np.bool_)
        VadBank(3).process_detail(np.zeros((3, 160), np.float32), buf, buf)
    with pytest.raises(IndexError, match=r"0\.\.2"):
        VadBank(3).reset([3])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"onset_ms": 0}, "onset_ms must be > 0"),
        ({"hangover_ms": -20}, "hangover_ms must be >= 0"),
        ({"snr_low_db": float("nan")}, "finite"),
        ({"short_hangover_ms": 400}, "must not exceed hangover_ms"),
        ({"highpass_hz": 2000.0}, "below 1000 Hz"),
    ],
)
def test_config_errors_name_the_field(change: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VadConfig(**change)  # type: ignore[arg-type]


def test_rumble_dc_and_mains_hum_are_not_speech() -> None:
    rng = np.random.default_rng(21)
    n = RATE * 30
    brown = lfilter([1.0], [1.0, -0.99], rng.standard_normal(n))
    brown *= 10 ** (-40 / 20) / np.sqrt(np.mean(brown**2))
    t = np.arange(n) / RATE
    hum = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in range(1, 8))
    hum *= 10 ** (-40 / 20) / np.sqrt(np.mean(hum**2))
    offset = 0.05 + white_noise(-55.0, 30.0, seed=22)
    for name, x in (("brown noise", brown), ("50 Hz hum", hum), ("DC offset", offset)):
        d = detect_voice(g711(x.astype(np.float32)))
        assert d[150:].mean() == 0.0, f"{name} flagged as speech after the first 3 s"
        assert d.mean() <= 0.05, name


def test_speech_over_rumble_is_still_found() -> None:
    rng = np.random.default_rng(23)
    clean = np.concatenate([np.zeros(2 * RATE), speech_like(2.0), np.zeros(2 * RATE)])
    brown = lfilter([1.0], [1.0, -0.995], rng.standard_normal(len(clean)))
    brown *= 10 ** (-38 / 20) / np.sqrt(np.mean(brown**2))
    d = detect_voice(g711((clean + brown).astype(np.float32)))
    assert d[102:200].mean() >= 0.95
    assert not d[:95].any()


def reference_vad(
    x: np.ndarray, cfg: VadConfig, rate: int = RATE, frame_ms: int = FRAME_MS
) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Slow, direct transcription of the documented rules: (voice, speech_like, floors)."""
    n = rate * frame_ms // 1000
    m = len(x) // n
    pole = math.exp(-2 * math.pi * cfg.highpass_hz / rate)
    y = lfilter([1.0, -1.0], [1.0, -pole], x.astype(np.float64))
    y_prev = np.concatenate([[0.0], y[:-1]])
    low = (((y + y_prev) / 2) ** 2)[: m * n].reshape(m, n).mean(axis=1)
    high = (((y - y_prev) / 2) ** 2)[: m * n].reshape(m, n).mean(axis=1)
    db_low = 10 * np.log10(low + 1e-12)
    db_high = 10 * np.log10(high + 1e-12)
    db_total = 10 * np.log10(low + high + 1e-12)

    def frames_of(ms: float) -> float:
        return ms / frame_ms

    onset = max(1, round(frames_of(cfg.onset_ms)))
    hang_long = round(frames_of(cfg.hangover_ms))
    hang_short = round(frames_of(cfg.short_hangover_ms))
    long_burst = max(1, round(frames_of(cfg.long_burst_ms)))
    fall = 1 - math.exp(-frame_ms / cfg.floor_fall_ms)
    smooth = 1 - math.exp(-frame_ms / cfg.steady_ms)
    per_frame = frame_ms / 1000

    voice = np.zeros(m, bool)
    like = np.zeros(m, bool)
    f_low = f_high = 0.0
    last = motion = 0.0
    run = burst = hang = 0
    active = False
    for k in range(m):
        if k == 0:
            f_low = max(min(db_low[0], cfg.floor_init_max_dbfs), cfg.floor_min_dbfs)
            f_high = max(min(db_high[0], cfg.floor_init_max_dbfs), cfg.floor_min_dbfs)
            last, motion = db_low[0], 10 * cfg.steady_db
        like[k] = db_total[k] > cfg.gate_dbfs and (
            db_low[k] - f_low > cfg.snr_low_db or db_high[k] - f_high > cfg.snr_high_db
        )
        strong = like[k] and db_low[k] - f_low > cfg.snr_strong_db
        run = run + 1 if like[k] else 0
        if active:
            if like[k]:
                burst += 1
                hang = hang_long if burst >= long_burst else hang_short
            elif hang > 0:
                hang -= 1
            else:
                active = False
        elif like[k] and (strong or run >= onset):
            active = True
            burst = run
            hang = hang_long if burst >= long_burst else hang_short
        if not active:
            burst = hang = 0
        voice[k] = active
        motion += smooth * (abs(db_low[k] - last) - motion)
        last = db_low[k]
        if motion < cfg.steady_db:
            rise = cfg.floor_rise_steady_db_per_s * per_frame
        elif active:
            rise = cfg.floor_rise_speech_db_per_s * per_frame
        else:
            rise = cfg.floor_rise_noise_db_per_s * per_frame
        new = []
        for floor, level in ((f_low, db_low[k]), (f_high, db_high[k])):
            floor = (
                floor + fall * (level - floor)
                if level < floor
                else floor + min(rise, level - floor)
            )
            new.append(max(floor, cfg.floor_min_dbfs))
        f_low, f_high = new
    return voice, like, (f_low, f_high)


@pytest.mark.parametrize(
    ("rate", "cfg"),
    [
        (8000, VadConfig()),
        (16000, VadConfig()),
        (8000, VadConfig(hangover_ms=200, onset_ms=60, snr_low_db=6.0, highpass_hz=0.0)),
    ],
)
def test_kernel_matches_the_slow_reference(rate: int, cfg: VadConfig) -> None:
    # Speech bursts at several levels over noise that steps up and down, cut into odd chunks.
    rng = np.random.default_rng(rate)
    step = rate // RATE
    pieces = [np.zeros(rate)]
    for i, dbfs in enumerate((-30.0, -22.0, -38.0, -27.0)):
        burst = np.repeat(speech_like(1.0 + 0.3 * i, f0=150 + 30 * i, dbfs=dbfs, seed=i), step)
        pieces += [burst, np.zeros(int(rate * rng.uniform(0.1, 1.5)))]
    clean = np.concatenate(pieces)
    noise_db = np.repeat(rng.choice([-60.0, -52.0, -45.0], len(clean) // rate + 1), rate)
    x = clean + rng.standard_normal(len(clean)) * 10 ** (noise_db[: len(clean)] / 20)
    x = g711(x.astype(np.float32)) if rate == RATE else x.astype(np.float32)
    vad = StreamingVad(rate, FRAME_MS, cfg)
    got_v, got_l = [], []
    pos = 0
    while pos < len(x):
        n = int(rng.integers(1, 3000))
        v, lk = vad.process_detail(x[pos : pos + n])
        got_v.append(v)
        got_l.append(lk)
        pos += n
    ref_v, ref_l, ref_floors = reference_vad(x, cfg, rate)
    assert ref_v.any() and not ref_v.all()
    assert np.mean(np.concatenate(got_v) != ref_v) <= 0.002
    assert np.mean(np.concatenate(got_l) != ref_l) <= 0.002
    assert vad.noise_floor_dbfs == pytest.approx(ref_floors, abs=1e-6)


# --- corpus -------------------------------------------------------------------------------


def read_mulaw_stereo(path: Path) -> np.ndarray:
    """(2, n) float32 legs of a stereo mu-law WAV (channel 0 agent, 1 customer)."""
    data = path.read_bytes()
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = struct.unpack_from("<4sI", data, pos)
        if chunk_id == b"data":
            codes = np.frombuffer(data, np.uint8, size, pos + 8)
            return MULAW[codes].reshape(-1, 2).T.copy()
        pos += 8 + size + (size & 1)
    raise ValueError(f"{path}: no data chunk")


def corpus_legs() -> list[tuple[str, str, np.ndarray, list[tuple[float, float]]]]:
    """(call id, speaker, audio, labelled utterance spans) for every leg of the corpus."""
    out = []
    for label_path in sorted(CORPUS_DIR.glob("dev*.json")):
        label = json.loads(label_path.read_text())
        audio = read_mulaw_stereo(CORPUS_DIR / label["audio"])
        for ch, speaker in enumerate(("agent", "customer")):
            spans = [(t["start"], t["end"]) for t in label["transcript"] if t["speaker"] == speaker]
            out.append((label["call_id"], speaker, audio[ch], spans))
    return out


def frame_truth(spans: list[tuple[float, float]], n_frames: int) -> np.ndarray:
    """Frames whose centre lies inside a labelled utterance are speech."""
    centre = (np.arange(n_frames) + 0.5) * FRAME_S
    truth = np.zeros(n_frames, bool)
    for start, end in spans:
        truth |= (centre >= start) & (centre < end)
    return truth


@pytest.mark.corpus
def test_corpus_frame_agreement_on_every_leg() -> None:
    agreement: dict[str, float] = {}
    per_call: dict[str, list[int]] = {}
    for call_id, speaker, audio, spans in corpus_legs():
        d = detect_voice(audio)
        same = d == frame_truth(spans, len(d))
        agreement[f"{call_id}/{speaker}"] = float(same.mean())
        counts = per_call.setdefault(call_id, [0, 0])
        counts[0] += int(same.sum())
        counts[1] += len(d)
    for call_id, (same_n, n) in per_call.items():
        legs = ", ".join(
            f"{k.split('/')[1]} {v:.3f}"
            for k, v in agreement.items()
            if k.startswith(call_id + "/")
        )
        print(f"{call_id}: {same_n / n:.3f} ({legs})")
    overall = sum(c[0] for c in per_call.values()) / sum(c[1] for c in per_call.values())
    values = np.array(list(agreement.values()))
    print(
        f"VAD frame agreement over {len(values)} legs: overall {overall:.3f}, "
        f"min {values.min():.3f}, median {np.median(values):.3f}"
    )
    assert len(values) >= 12
    assert overall >= 0.93
    worst = {k: round(v, 3) for k, v in agreement.items() if v < 0.9}
    assert not worst, f"legs under 0.9 frame agreement: {worst}"
