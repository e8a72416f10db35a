"""When `callqa capture` starts and ends a call: by voice, by Enter, or both."""

from __future__ import annotations

from core.cli.capture import CallControl


def _run(control: CallControl, frames: list[tuple[bool, bool]]) -> list[tuple[int, str]]:
    return [(i, a) for i, (voice, key) in enumerate(frames)
            if (a := control.step(voice, key)) is not None]  # fmt: skip


def test_voice_starts_a_call_and_silence_ends_it() -> None:
    control = CallControl(by_voice=True, end_silence_s=0.1)  # 5 frames of 20 ms
    frames = [(False, False)] * 3 + [(True, False)] * 4 + [(False, False)] * 4
    frames += [(True, False)] + [(False, False)] * 5 + [(False, False)] * 3
    assert _run(control, frames) == [(3, "start"), (16, "end")]
    assert not control.in_call


def test_by_key_enter_toggles_and_voice_alone_does_nothing() -> None:
    control = CallControl(by_voice=False, end_silence_s=0.1)
    frames = [(True, False)] * 3 + [(False, True)] + [(False, False)] * 20 + [(True, True)]
    assert _run(control, frames) == [(3, "start"), (24, "end")]


def test_enter_ends_a_call_started_by_voice_and_starts_one_in_silence() -> None:
    control = CallControl(by_voice=True, end_silence_s=1.0)
    frames = [(True, False)] * 2 + [(True, True)] + [(False, False)] * 3 + [(False, True)]
    assert _run(control, frames) == [(0, "start"), (2, "end"), (6, "start")]
    assert control.in_call


def test_after_enter_ends_a_call_voice_starts_the_next_only_after_a_silence() -> None:
    control = CallControl(by_voice=True, end_silence_s=0.1)  # 5 frames
    frames = [(True, False)] * 2 + [(True, True)] + [(True, False)] * 10
    frames += [(False, False)] * 5 + [(True, False)]
    assert _run(control, frames) == [(0, "start"), (2, "end"), (18, "start")]
