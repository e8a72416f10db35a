"""A call simulator: SIPREC recording sessions with real-time RTP, the way an SBC sends them.

`Simulator.run(plans)` places one recording session per `CallPlan` on a recording server
(SIP over UDP) and streams both legs of each call in real time:

* signalling: an INVITE with a multipart/mixed body, the SDP offer (two `sendonly` audio
  m-lines, the agent's labelled `1` first, the customer's labelled `2`) and RFC 7865
  metadata (the agent participant first, the customer marked as the calling party of an
  inbound call), `Require: siprec` and `+sip.src` in Contact. The INVITE is re-sent on
  timer A (T1, doubling) until a response comes and given up after 64·T1 (timer B); a final
  response of 300 or more is acknowledged and ends the attempt (`rejected`, with its status
  and Retry-After). After the 200 comes the ACK (re-sent for each re-sent 200), the RTP,
  then a BYE (timers E and F) whose 200 ends the call. The recorder's RTP address of each
  stream is read from the SDP answer, matched by label (else by m-line order).
* media: ONE thread sends every call's packets: 20 ms of G.711 (160 samples) per packet, a
  random SSRC, sequence number and timestamp base per stream, the marker bit on the first
  packet. Packet k of a call is due at `first_packet_monotonic + k * 0.02` on the monotonic
  clock (absolute deadlines, so there is no drift); due packets leave in one pass, and a
  packet may leave at most `early_s` before its deadline so that calls whose deadlines are
  close share one wake-up. Each stream sends from its own UDP socket with `socket.sendto`.
  The sender's own CPU time (`time.thread_time()` in that thread) is reported in
  `SenderStats`, apart from the rest of the process.

`first_packet_wall` of a `CallOutcome` is the `time.time()` at which the first RTP packet of
the call left: audio second t of the call was sent at `first_packet_wall + t` (to within the
sender's lateness, see `SenderStats.max_late_s`).

The simulator is asyncio code (`await Simulator(...).run(plans)`); `simulate(...)` runs it
to completion from synchronous code. Sockets: one for SIP, two per call while it lasts (the
soft limit on open files is raised towards what the plans need).

The sender thread shares the GIL with the event loop and with whatever else runs in the
process; a thread holding the GIL delays packets by up to the interpreter's switch interval
(5 ms by default). A process that only simulates may lower it, as `callqa simulate` does
(`sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)`); a recorder in the same process adds its
own packet handling to the sender's waits.

The package's modules: `constants` (framing, codecs, roles, defaults), `plans` (`CallPlan`,
WAV loading, AoR helpers), `sender` (the RTP sender thread, `SenderStats`), `signalling`
(the SIP UAC side: INVITE bodies, transactions, BYE), `results` (`CallOutcome`,
`SimulationResult`) and `run` (`Simulator`, `simulate`); the public names are re-exported
here.
"""

from __future__ import annotations

from telephony.simulator.constants import (
    AGENT,
    AGENT_DOMAIN,
    CODECS,
    CUSTOMER,
    DEFAULT_AGENT_AOR,
    DEFAULT_CUSTOMER_AOR,
    DIRECTIONS,
    EARLY_S,
    EXTENSION_NAMESPACE,
    FAILED,
    FRAME_SAMPLES,
    GIL_SWITCH_INTERVAL_S,
    HANGUP_DELAY_S,
    LATE_THRESHOLD_S,
    MAX_FORWARDS,
    MULTIPART_BOUNDARY,
    OK,
    PACKET_S,
    REJECTED,
    ROLES,
    SAMPLE_RATE_HZ,
    SEND_BUFFER_BYTES,
    STREAM_LABELS,
    USER_AGENT,
)
from telephony.simulator.plans import (
    WAVE_ALAW,
    WAVE_EXTENSIBLE,
    WAVE_MULAW,
    WAVE_PCM,
    CallPlan,
    agent_aor_for,
    load_plan_from_wav,
    read_wav_legs,
)
from telephony.simulator.results import (
    CallOutcome,
    SimulationResult,
)
from telephony.simulator.run import (
    Simulator,
    simulate,
)
from telephony.simulator.sender import (
    MediaSender,
    SenderStats,
)
from telephony.simulator.signalling import (
    answer_of,
    multipart_body,
    offer_sdp,
    recording_metadata,
    remote_streams,
)

__all__ = [
    "AGENT",
    "AGENT_DOMAIN",
    "CODECS",
    "CUSTOMER",
    "DEFAULT_AGENT_AOR",
    "DEFAULT_CUSTOMER_AOR",
    "DIRECTIONS",
    "EARLY_S",
    "EXTENSION_NAMESPACE",
    "FAILED",
    "FRAME_SAMPLES",
    "GIL_SWITCH_INTERVAL_S",
    "HANGUP_DELAY_S",
    "LATE_THRESHOLD_S",
    "MAX_FORWARDS",
    "MULTIPART_BOUNDARY",
    "OK",
    "PACKET_S",
    "REJECTED",
    "ROLES",
    "SAMPLE_RATE_HZ",
    "SEND_BUFFER_BYTES",
    "STREAM_LABELS",
    "USER_AGENT",
    "WAVE_ALAW",
    "WAVE_EXTENSIBLE",
    "WAVE_MULAW",
    "WAVE_PCM",
    "CallOutcome",
    "CallPlan",
    "MediaSender",
    "SenderStats",
    "SimulationResult",
    "Simulator",
    "agent_aor_for",
    "answer_of",
    "load_plan_from_wav",
    "multipart_body",
    "offer_sdp",
    "read_wav_legs",
    "recording_metadata",
    "remote_streams",
    "simulate",
]
