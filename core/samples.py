"""Sample calls made on the box from Debian's espeak-ng and sox, for the demo and smoke tests.

Each sample is a stereo G.711 mu-law WAV at 8 kHz (agent left, customer right), the format
a PBX recorder writes, plus a JSON file with its script and the findings the default English
rubric is expected to raise. The voices are espeak-ng's English voices, which Whisper reads
well; nothing here comes from a recorded person.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.audio_io import write_wav_g711
from kernels.g711 import ulaw_encode

SAMPLE_RATE = 8000
AGENT_VOICE = "en-us"
CUSTOMER_VOICE = "en-gb"
WORDS_PER_MIN = 140
LEVEL_DBFS = -24.0


@dataclass(frozen=True)
class Line:
    speaker: str  # agent | customer
    text: str
    gap_s: float = 0.6  # silence before the line starts (after the previous line ends)
    loud_db: float = 0.0  # level above the speaker's normal level


@dataclass(frozen=True)
class SampleCall:
    name: str
    title: str
    lines: tuple[Line, ...]
    expected_items: tuple[str, ...]


SAMPLE_CALLS: tuple[SampleCall, ...] = (
    SampleCall(
        name="en-clean-billing",
        title="A courteous billing call: greeting, apology, thanks, closing",
        lines=(
            Line(
                "agent",
                "Good morning, thank you for calling Northwind support. "
                "My name is Anna. How can I help you today?",
                0.5,
            ),
            Line("customer", "Hi Anna. I was charged twice for my internet plan this month."),
            Line(
                "agent",
                "I am sorry about that. Let me check your account. "
                "Could you give me the last four digits of your phone number?",
            ),
            Line("customer", "Sure, it is four five six seven."),
            Line(
                "agent",
                "Thank you. I can see the second charge. "
                "I have refunded it, and you will see the money in three days.",
            ),
            Line("customer", "That is great, thanks for your help."),
            Line("agent", "You are welcome. Is there anything else I can do for you?"),
            Line("customer", "No, that is all."),
            Line("agent", "Thank you for calling Northwind. Have a nice day, goodbye."),
        ),
        expected_items=(),
    ),
    SampleCall(
        name="en-complaint-rude",
        title=(
            "A complaint handled badly: no greeting, no apology, a forbidden phrase said loudly, "
            "dead air, no courtesy words, no closing"
        ),
        lines=(
            Line("agent", "Support. What is it?", 0.5),
            Line(
                "customer",
                "My internet has been down for three days and nobody called me back. "
                "This is ridiculous. I want to file a complaint.",
            ),
            Line("agent", "I don't know why it is down. That is not my problem.", 0.8, 9.0),
            Line("customer", "Hello? Are you still there?", 9.0),
            Line("agent", "Yes. A technician will come on Friday."),
            Line("customer", "Friday? I will report you to the regulator."),
            Line("agent", "Fine. Call back later then."),
        ),
        expected_items=(
            "greeting",
            "apology",
            "forbidden_words",
            "volume",
            "complaint_risk",
            "customer_emotion",
            "dead_air",
            "polite",
            "closing",
        ),
    ),
)


class SampleError(RuntimeError):
    """A tool needed to make the samples is missing or failed."""


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SampleError(
            f"{name} is not installed; run scripts/setup (it installs espeak-ng and sox)"
        )
    return path


def synthesize(text: str, voice: str) -> np.ndarray:
    """Speak `text` with espeak-ng and return float32 audio at 8 kHz."""
    espeak = subprocess.run(
        [_tool("espeak-ng"), "-v", voice, "-s", str(WORDS_PER_MIN), "--stdout", text],
        check=True,
        capture_output=True,
    )
    sox = subprocess.run(
        [
            _tool("sox"),
            "-t",
            "wav",
            "-",
            "-r",
            str(SAMPLE_RATE),
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            "-t",
            "raw",
            "-",
        ],
        input=espeak.stdout,
        check=True,
        capture_output=True,
    )
    audio = np.frombuffer(sox.stdout, dtype="<i2").astype(np.float32) / 32768.0
    nz = np.flatnonzero(np.abs(audio) > 1e-3)
    return audio[nz[0] : nz[-1] + 1] if len(nz) else audio


def _set_level(audio: np.ndarray, level_dbfs: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) if len(audio) else 0.0
    if rms <= 0:
        return audio
    gain = 10 ** (level_dbfs / 20) / rms
    return np.clip(audio * gain, -0.99, 0.99).astype(np.float32)


def render(call: SampleCall) -> tuple[np.ndarray, np.ndarray, list[dict[str, object]]]:
    """Lay the lines out on a timeline; return agent and customer audio and the script."""
    clips = []
    t = 0.0
    script: list[dict[str, object]] = []
    for line in call.lines:
        voice = AGENT_VOICE if line.speaker == "agent" else CUSTOMER_VOICE
        audio = _set_level(synthesize(line.text, voice), LEVEL_DBFS + line.loud_db)
        t += line.gap_s
        clips.append((line.speaker, int(t * SAMPLE_RATE), audio))
        dur = len(audio) / SAMPLE_RATE
        script.append(
            {
                "speaker": line.speaker,
                "start": round(t, 3),
                "end": round(t + dur, 3),
                "text": line.text,
            }
        )
        t += dur
    total = int((t + 1.0) * SAMPLE_RATE)
    legs = {"agent": np.zeros(total, np.float32), "customer": np.zeros(total, np.float32)}
    rng = np.random.default_rng(7)
    for leg in legs.values():
        leg += rng.normal(0.0, 10 ** (-60 / 20), total).astype(np.float32)
    for speaker, start, audio in clips:
        legs[speaker][start : start + len(audio)] += audio
    return legs["agent"], legs["customer"], script


def make_samples(out_dir: Path) -> list[Path]:
    """Write every sample call into `out_dir`; return the WAV paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for call in SAMPLE_CALLS:
        wav = out_dir / f"{call.name}.wav"
        agent, customer, script = render(call)
        codes = [
            ulaw_encode(np.round(np.clip(x, -1, 1) * 32767).astype(np.int16))
            for x in (agent, customer)
        ]
        write_wav_g711(wav, codes, SAMPLE_RATE, law="mulaw")
        meta = {
            "name": call.name,
            "title": call.title,
            "language": "en",
            "channels": {"left": "agent", "right": "customer"},
            "expected_items": list(call.expected_items),
            "script": script,
        }
        wav.with_suffix(".json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        paths.append(wav)
    return paths
