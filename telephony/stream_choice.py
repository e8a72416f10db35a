"""Which offered audio streams a recording session records, and whether each one is live.

An SRC may offer more m-lines than there are parties (an Oracle SBC recording a Genesys call
offers four: two `sendonly`, two `inactive`), and pauses a stream in one of several ways
(RFC 7866 §8.1.7 and the older hold forms): `a=inactive`, `a=recvonly` (the SRC will send
nothing), `c=IN IP4 0.0.0.0` (BroadWorks), or port 0. `media_state` reads one m-line's
state; `choose_streams` picks the streams to record:

* only audio streams in PCMU or PCMA with a port are candidates;
* live streams come before paused ones: a paused stream is never taken over a live one;
* with recording metadata, a stream whose sender is known comes before one whose sender is
  not, and a stream of another party before a second stream of the same party;
* then m-line order; at most `MAX_RECORDED_STREAMS` (one per recording channel).

Each decision carries its reason in words, for the call's decision record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from telephony.rs_metadata import RecordingMetadata
from telephony.sip.sdp import MediaDescription, SessionDescription, choose_codec

MAX_RECORDED_STREAMS = 2
UNSPECIFIED_ADDRESSES = ("0.0.0.0", "::")


@dataclass(frozen=True)
class MediaState:
    """Whether an offered m-line carries media now, and the form that says so."""

    live: bool
    form: str
    """`a=sendonly`, `a=inactive`, `a=recvonly`, `c=0.0.0.0`, `port 0`, ..."""


def media_state(media: MediaDescription) -> MediaState:
    """The state of one offered m-line, seen from the recorder (which only receives)."""
    if media.port == 0:
        return MediaState(False, "port 0")
    if media.connection in UNSPECIFIED_ADDRESSES:
        return MediaState(False, f"c={media.connection}")
    if media.direction in ("inactive", "recvonly"):
        return MediaState(False, f"a={media.direction}")
    return MediaState(True, f"a={media.direction}")


@dataclass
class StreamChoice:
    """The m-lines taken (in m-line order) and why each offered one was or was not."""

    taken: list[int]
    reasons: dict[int, str] = field(default_factory=dict)

    def as_record(self, offer: SessionDescription) -> list[dict[str, object]]:
        return [
            {"m_line": i, "label": m.label, "taken": i in self.taken,
             "why": self.reasons.get(i, "")}
            for i, m in enumerate(offer.media)
        ]  # fmt: skip


def _senders(meta: RecordingMetadata | None, media: MediaDescription) -> tuple[str, ...]:
    if meta is None:
        return ()
    return tuple(sorted(p.id for p in meta.senders_of_label(media.label)))


def choose_streams(
    offer: SessionDescription,
    meta: RecordingMetadata | None,
    max_streams: int = MAX_RECORDED_STREAMS,
) -> StreamChoice:
    """The streams of a first offer to record (see the module notes); none when nothing
    recordable is offered."""
    choice = StreamChoice([])
    candidates: list[int] = []
    for i, media in enumerate(offer.media):
        if media.kind != "audio":
            choice.reasons[i] = f"not audio ({media.kind})"
        elif media.port == 0:
            choice.reasons[i] = "refused by the SRC (port 0)"
        elif choose_codec(media) is None:
            choice.reasons[i] = "no PCMU or PCMA"
        else:
            candidates.append(i)
    knows = meta is not None and meta.knows_senders()
    taken_senders: list[tuple[str, ...]] = []
    remaining = list(candidates)
    while remaining and len(choice.taken) < max_streams:

        def rank(i: int) -> tuple[int, int, int, int]:
            media = offer.media[i]
            senders = _senders(meta, media)
            return (
                0 if media_state(media).live else 1,
                0 if not knows or senders else 1,
                1 if senders and senders in taken_senders else 0,
                i,
            )

        best = min(remaining, key=rank)
        remaining.remove(best)
        choice.taken.append(best)
        taken_senders.append(_senders(meta, offer.media[best]))
        state = media_state(offer.media[best])
        who = _describe_senders(meta, offer.media[best])
        choice.reasons[best] = (
            f"live ({state.form}){who}" if state.live
            else f"paused ({state.form}){who}: no live stream left for its channel"
        )  # fmt: skip
    for i in remaining:
        state = media_state(offer.media[i])
        choice.reasons[i] = (
            f"{'live' if state.live else 'paused'} ({state.form}): the {max_streams} recorded "
            "channels are taken by " + ("other live streams" if state.live else "live streams")
        )
    choice.taken.sort()
    return choice


def _describe_senders(meta: RecordingMetadata | None, media: MediaDescription) -> str:
    if meta is None:
        return ""
    people = meta.senders_of_label(media.label)
    if not people:
        return ", sender not in the metadata" if meta.knows_senders() else ""
    return ", sent by " + " and ".join(p.aor or p.name or p.id for p in people)
