"""The sound card through PortAudio (pyaudio, the optional ``audio`` extra), for `callqa listen`
(playback) and `callqa capture` (recording).

A device is named by its PortAudio index (``--device 3``) or by its name or a unique part of
it (``--device "USB Audio"``, an ALSA PCM such as ``default`` or one defined in
``~/.asoundrc``); none: the system's default device. An unknown or unsuitable device is
refused with the list of the devices there are.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

INSTALL_HINT = (
    "pyaudio is not installed: pip install 'callqa[audio]' (it builds against Debian's "
    "portaudio19-dev; scripts/setup installs both)"
)


class SoundCardError(ValueError):
    """A sound card that cannot be used; the text says why and what to do."""


@dataclass(frozen=True)
class Device:
    index: int
    name: str
    inputs: int
    outputs: int


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Standard error muted at the C level: PortAudio's start-up probes ALSA and JACK, which
    print what they do not find there."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def port_audio() -> Any:
    """A started ``pyaudio.PyAudio`` (call ``terminate()`` when done)."""
    try:
        import pyaudio
    except ImportError as exc:
        raise SoundCardError(INSTALL_HINT) from exc
    with _quiet_stderr():
        return pyaudio.PyAudio()


def devices(pa: Any) -> list[Device]:
    out = []
    for i in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(i)
        out.append(Device(i, str(info.get("name", "")), int(info.get("maxInputChannels", 0)),
                          int(info.get("maxOutputChannels", 0))))  # fmt: skip
    return out


def describe_devices(pa: Any) -> str:
    lines = [f"  {d.index:>3}  {d.name}  (in {d.inputs}, out {d.outputs})" for d in devices(pa)]
    return "\n".join(lines) or "  (none: PortAudio finds no sound device)"


def find_device(pa: Any, spec: str | None, *, output: bool, channels: int) -> Device:
    """The device for ``spec`` (index, name or part of a name; None: the default one) that
    plays (``output``) or records ``channels`` channels."""
    found = devices(pa)
    direction = "playback" if output else "recording"
    if spec is None or spec == "":
        try:
            info = (pa.get_default_output_device_info() if output
                    else pa.get_default_input_device_info())  # fmt: skip
        except OSError as exc:
            raise SoundCardError(
                f"no default {direction} device; name one with --device:\n"
                f"{describe_devices(pa)}"
            ) from exc
        chosen = found[int(info["index"])]
    elif spec.isdigit():
        index = int(spec)
        if index >= len(found):
            raise SoundCardError(f"no sound device {index}; the devices are:\n"
                                 f"{describe_devices(pa)}")  # fmt: skip
        chosen = found[index]
    else:
        exact = [d for d in found if d.name == spec]
        partial = [d for d in found if spec.lower() in d.name.lower()]
        matches = exact or partial
        if len(matches) != 1:
            why = "no sound device is" if not matches else "more than one sound device is"
            raise SoundCardError(f"{why} named {spec!r}; give its number or a longer name:\n"
                                 f"{describe_devices(pa)}")  # fmt: skip
        chosen = matches[0]
    have = chosen.outputs if output else chosen.inputs
    if have < channels:
        raise SoundCardError(
            f"sound device {chosen.index} ({chosen.name}) has {have} {direction} channels, "
            f"{channels} are needed; the devices are:\n{describe_devices(pa)}"
        )
    return chosen


def open_stream(pa: Any, device: Device, *, output: bool, rate: int, channels: int,
                frames: int) -> Any:  # fmt: skip
    """A blocking 16-bit stream on ``device`` at ``rate`` hertz."""
    import pyaudio

    try:
        with _quiet_stderr():
            return pa.open(
                format=pyaudio.paInt16, channels=channels, rate=rate, output=output,
                input=not output, frames_per_buffer=frames,
                output_device_index=device.index if output else None,
                input_device_index=None if output else device.index,
            )  # fmt: skip
    except (OSError, ValueError) as exc:
        raise SoundCardError(
            f"sound device {device.index} ({device.name}) does not take {channels} channel(s) "
            f"of 16-bit audio at {rate} Hz ({exc}); a device that converts, such as ALSA's "
            "'default' or 'plughw:N', does"
        ) from exc
