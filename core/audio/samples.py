"""Sample calls made on the box from Debian's espeak-ng and sox, for the demo and smoke tests.

Each sample is a stereo G.711 mu-law WAV at 8 kHz (agent left, customer right), the format
a PBX recorder writes, plus a JSON file with its script, the built-in rubric it is scored
with and the findings that rubric is expected to raise. Every voice is synthetic, made by
espeak-ng from the text below; nothing here was recorded from a person.

* English calls (rubric ``default-en``): espeak-ng's ``en-us`` (agent) and ``en-gb``
  (customer) voices, which Whisper base reads well.
* Mandarin calls (rubric ``default-zh``): espeak-ng's ``cmn-latn-pinyin`` voice with the
  ``f3`` and ``f5`` variants for the agents and ``m7`` and ``m4`` for the customers. The
  plain ``cmn`` voice is unusable: espeak-ng 1.51 turns each character into pinyin with a
  tone digit and, its Latin text being read as English, says "nin two hao three".

Whisper base reads espeak-ng's Mandarin far worse than its English (40 to 60 % of the
characters wrong on sentences picked without care, through G.711), so the Mandarin lines were chosen
by transcribing candidates (``benchmarks/demo_samples_check.py`` prints what is heard).
The rubric phrases kept are those heard reliably: 您好, 抱歉, 祝您生活愉快, 不清楚, 不知道,
太差了, 太过分, 一二三一五 (12315), 找律师. Others are avoided because the synthetic voice is
heard as something else: 再见 as 太天, 投诉 as 告诉, 感谢 in most positions, 您 now and
then as 林 or 宁. The customer's anger is also said 12 dB louder, which the emotion rule
hears as well.

``sox -D`` (no dither) makes the samples the same on every run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.audio.wav import write_wav_g711
from kernels.g711 import ulaw_encode

SAMPLE_RATE = 8000
WORDS_PER_MIN = 140
LEVEL_DBFS = -24.0


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice: `name` as `-v` takes it (with an optional `+variant`), its speed
    and pitch."""

    name: str
    speed: int = WORDS_PER_MIN  # espeak-ng -s, words per minute
    pitch: int = 50  # espeak-ng -p, 0..99 (50 is espeak-ng's own default)


AGENT_VOICE = "en-us"
CUSTOMER_VOICE = "en-gb"
EN_AGENT = Voice(AGENT_VOICE)
EN_CUSTOMER = Voice(CUSTOMER_VOICE)
# Mandarin: characters -> pinyin -> Mandarin phonemes (see the module docstring).
ZH_AGENT = Voice("cmn-latn-pinyin+f3", 150)
ZH_AGENT_2 = Voice("cmn-latn-pinyin+f5", 150)
ZH_CUSTOMER = Voice("cmn-latn-pinyin+m7", 160)
ZH_CUSTOMER_2 = Voice("cmn-latn-pinyin+m4", 150)


@dataclass(frozen=True)
class Line:
    speaker: str  # agent | customer
    text: str
    # silence before the line starts, after the lines before it have ended; negative: the
    # line starts that long before they end (the speaker talks over the other side)
    gap_s: float = 0.6
    loud_db: float = 0.0  # level above the speaker's normal level
    voice: Voice | None = None  # None: the call's voice for this speaker


@dataclass(frozen=True)
class SampleCall:
    name: str
    title: str
    lines: tuple[Line, ...]
    expected_items: tuple[str, ...]
    rubric: str = "default-en"  # the built-in rubric the call is scored with
    agent_voice: Voice = EN_AGENT
    customer_voice: Voice = EN_CUSTOMER

    @property
    def language(self) -> str:
        return "zh" if self.rubric.endswith("-zh") else "en"

    def voice_of(self, line: Line) -> Voice:
        if line.voice is not None:
            return line.voice
        return self.agent_voice if line.speaker == "agent" else self.customer_voice


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
    SampleCall(
        name="zh-clean-delivery",
        title="快递延误，处理得当：开头语、致歉、称呼“您”、结束语",
        lines=(
            Line("agent", "您好，请问有什么可以帮您？", 0.5),  # greeting 您好
            Line("customer", "我的快递一个星期了还没到。"),  # apology trigger 还没到
            Line("agent", "非常抱歉，我马上帮您查一下。"),  # the apology 抱歉
            Line("customer", "好的，谢谢你。"),
            Line("agent", "我已经帮您催了，明天送到。"),
            Line("customer", "好的，那我等你们的消息。"),
            Line("agent", "请问还有别的问题吗？"),
            Line("customer", "没有了，谢谢你。"),
            Line("agent", "好的，祝您生活愉快。"),  # closing
        ),
        expected_items=(),
        rubric="default-zh",
        agent_voice=ZH_AGENT,
        customer_voice=ZH_CUSTOMER,
    ),
    SampleCall(
        name="zh-complaint-rude",
        title=(
            "投诉处理不当：无开头语、打断客户、不致歉、服务禁语且提高音量、沉默冷场、"
            "客户情绪激动并要起诉、无“您”、无结束语"
        ),
        lines=(
            Line("agent", "喂，什么事？", 0.5),  # no greeting; no 您 anywhere
            Line("customer", "你们的服务太差了，我的快递一个星期了还没到。"),  # 太差了, 还没到
            Line("agent", "我也不清楚。", -2.0),  # cuts in 2 s early; 不清楚 is forbidden
            Line("customer", "太差了，真是太过分了！", 1.2, 12.0),  # 太过分, shouted
            Line("agent", "我不知道。", 0.8, 9.0),  # forbidden, 9 dB louder
            Line("customer", "喂，有人吗？", 9.0),  # after 9 s of dead air
            Line("agent", "那你去问别人吧。"),  # still no apology
            Line("customer", "我要打一二三一五，还要找律师起诉你们。"),  # 12315, 找律师
            Line("agent", "那我也没有办法。"),  # no closing
        ),
        expected_items=(
            "greeting",
            "apology",
            "forbidden_words",
            "interrupt",
            "volume",
            "complaint_risk",
            "customer_emotion",
            "dead_air",
            "polite",
            "closing",
        ),
        rubric="default-zh",
        agent_voice=ZH_AGENT_2,
        customer_voice=ZH_CUSTOMER_2,
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


def synthesize(text: str, voice: Voice | str) -> np.ndarray:
    """Speak `text` with espeak-ng and return float32 audio at 8 kHz."""
    if isinstance(voice, str):
        voice = Voice(voice)
    espeak = subprocess.run(
        [
            _tool("espeak-ng"),
            "-v",
            voice.name,
            "-s",
            str(voice.speed),
            "-p",
            str(voice.pitch),
            "--stdout",
            text,
        ],
        check=True,
        capture_output=True,
    )
    sox = subprocess.run(
        [
            _tool("sox"),
            "-D",  # no dither: the same text always gives the same samples
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
        voice = call.voice_of(line)
        audio = _set_level(synthesize(line.text, voice), LEVEL_DBFS + line.loud_db)
        start = max(0.0, t + line.gap_s)
        clips.append((line.speaker, int(start * SAMPLE_RATE), audio))
        dur = len(audio) / SAMPLE_RATE
        script.append(
            {
                "speaker": line.speaker,
                "start": round(start, 3),
                "end": round(start + dur, 3),
                "text": line.text,
                "voice": voice.name,
                "speed": voice.speed,
                "pitch": voice.pitch,
            }
        )
        t = max(t, start + dur)
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
            "rubric": call.rubric,
            "language": call.language,
            "channels": {"left": "agent", "right": "customer"},
            "expected_items": list(call.expected_items),
            "script": script,
        }
        wav.with_suffix(".json").write_text(
            json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8"
        )
        paths.append(wav)
    return paths
