"""A stored recording against the audio that was sent for its call, sample for sample.

The simulator sends each leg of a stereo WAV file as G.711; the box decodes it and records
the agent on channel 0 and the customer on channel 1. Nothing is lost on loopback, so each
channel must hold exactly the decoded G.711 of its leg (`sent_legs`), starting where the
leg's first packet arrived: the first leg to arrive is sample 0, the other a few samples
later, with silence before it.

`compare` finds each channel's start (where a stretch of the leg's first sound lies in the
channel), then counts the samples that differ. A recording cut by a crash may end with
silence where audio had not arrived yet: with ``cut=True`` a trailing run of silence is not
counted as a mismatch, only as audio missing. ``covered_s`` is how much of the call (both
legs) the recording holds, from its start, so that a caller can check it reaches the
moment of the crash.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.capacity.load import RATE_HZ
from kernels.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

MAX_START_S = 0.5
"""How far into the recording a leg's first sample may lie (the other leg came first)."""
PROBE_SAMPLES = 160
"""Samples of a leg's first sound that are looked for to find where the leg starts."""


@dataclass(frozen=True)
class Comparison:
    """One recording against what was sent."""

    samples_compared: int
    """Samples of both channels compared with the audio sent."""
    mismatches: int
    """Samples that differ from what was sent (silence where audio was expected included,
    except the tail of a cut recording)."""
    covered_s: float
    """Seconds of the call the recording holds on both channels, as sent."""
    sent_s: float
    """Length of the audio sent for the call."""
    note: str = ""
    """Why a channel could not be compared at all (its start not found); empty otherwise."""

    @property
    def complete(self) -> bool:
        """Everything sent is in the recording, sample for sample."""
        return not self.note and self.mismatches == 0 and self.covered_s >= self.sent_s


def sent_legs(path: Path, codec: str = "PCMU") -> tuple[np.ndarray, np.ndarray]:
    """The agent and customer legs of a stereo 16-bit WAV as the box decodes them from G.711."""
    with wave.open(str(path)) as w:
        if w.getnchannels() != 2 or w.getsampwidth() != 2 or w.getframerate() != RATE_HZ:
            raise ValueError(f"{path}: not a stereo 16-bit {RATE_HZ} Hz WAV file")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    if codec.upper() == "PCMA":
        legs = [alaw_decode(alaw_encode(np.ascontiguousarray(data[:, c]))) for c in (0, 1)]
    else:
        legs = [ulaw_decode(ulaw_encode(np.ascontiguousarray(data[:, c]))) for c in (0, 1)]
    return np.asarray(legs[0], dtype=np.int16), np.asarray(legs[1], dtype=np.int16)


def read_recording(path: Path) -> np.ndarray:
    """A stored recording's samples, shape (frames, channels)."""
    with wave.open(str(path)) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return data.reshape(-1, w.getnchannels())


def leg_start(channel: np.ndarray, sent: np.ndarray) -> int | None:
    """Where ``sent`` begins in ``channel``: its first sound looked for within MAX_START_S."""
    loud = np.flatnonzero(sent)
    if len(loud) == 0:
        return 0  # a silent leg: it can only be compared as silence from the start
    first = int(loud[0])
    probe = sent[first : first + PROBE_SAMPLES]
    limit = min(len(channel), first + int(MAX_START_S * RATE_HZ) + len(probe))
    if limit < len(probe):
        return None
    windows = np.lib.stride_tricks.sliding_window_view(channel[:limit], len(probe))
    hits = np.flatnonzero((windows == probe).all(axis=1))
    for hit in hits:
        if hit >= first:
            return int(hit) - first
    return None


def compare(recorded: np.ndarray, sent: tuple[np.ndarray, np.ndarray], *, cut: bool) -> Comparison:
    """Compare a recording (frames, 2) with the legs sent; ``cut``: the call was cut short
    (by a crash), so the recording may end before the audio did."""
    compared = mismatches = 0
    covered: list[int] = []
    notes = []
    for ch, leg in enumerate(sent):
        channel = recorded[:, ch] if recorded.ndim == 2 and recorded.shape[1] > ch else None
        start = None if channel is None else leg_start(channel, leg)
        if channel is None or start is None:
            notes.append(f"channel {ch}: the audio sent is not found at its start")
            covered.append(0)
            continue
        mismatches += int(np.count_nonzero(channel[:start]))  # only silence before the leg
        n = min(len(channel) - start, len(leg))
        got, want = channel[start : start + n], leg[:n]
        differ = got != want
        matched = n
        if cut and differ.any():
            # A tail of silence where audio had not arrived when the recording ended.
            last_sound = np.flatnonzero(got)
            tail_from = int(last_sound[-1]) + 1 if len(last_sound) else 0
            if not differ[:tail_from].any():
                matched = tail_from
                differ = differ[:tail_from]
        compared += matched
        mismatches += int(np.count_nonzero(differ))
        mismatches += int(np.count_nonzero(channel[start + n :]))  # nothing after the call
        covered.append(matched if not differ.any() else int(np.argmax(differ)))
    return Comparison(
        samples_compared=compared, mismatches=mismatches,
        covered_s=min(covered) / RATE_HZ, sent_s=min(len(leg) for leg in sent) / RATE_HZ,
        note="; ".join(notes),
    )  # fmt: skip


def compare_file(recording: Path, wav_sent: Path, *, cut: bool, codec: str = "PCMU") -> Comparison:
    """`compare` for a stored recording file and the WAV file that was sent."""
    return compare(read_recording(recording), sent_legs(wav_sent, codec), cut=cut)
