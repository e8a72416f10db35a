"""What a run reports: `CallOutcome` for each call and `SimulationResult` for the run."""

from __future__ import annotations

from dataclasses import dataclass, field

from telephony.simulator.constants import AGENT, CUSTOMER, FAILED, OK
from telephony.simulator.plans import _user_of
from telephony.simulator.sender import SenderStats


@dataclass
class CallOutcome:
    """What happened to one planned call.

    `status`: `ok` (answered, streamed, BYE answered with 200), `rejected` (the INVITE got a
    final response of 300 or more: `sip_status`, `reason`, `retry_after_s`) or `failed`
    (no answer, an unusable answer, a transport error, the recorder hung up, the BYE failed;
    `reason` says which). Times: `first_packet_wall` (`time.time()`) and
    `first_packet_monotonic` (`time.monotonic()`) of the first RTP packet of the call.
    """

    index: int
    call_id: str
    agent_aor: str
    customer_aor: str
    codec: str
    status: str = FAILED
    sip_status: int | None = None
    reason: str = ""
    retry_after_s: int | None = None
    provisional: list[int] = field(default_factory=list)
    invite_retransmissions: int = 0
    setup_s: float | None = None
    first_packet_wall: float | None = None
    first_packet_monotonic: float | None = None
    last_packet_monotonic: float | None = None
    packets_sent: dict[str, int] = field(default_factory=lambda: {AGENT: 0, CUSTOMER: 0})
    send_errors: int = 0
    remote_rtp: dict[str, tuple[str, int]] = field(default_factory=dict)
    duration_s: float = 0.0
    bye_status: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def agent_id(self) -> str:
        return _user_of(self.agent_aor)

    def summary(self) -> str:
        """One line for a person: the call, its status and what was sent."""
        status = self.status if self.sip_status is None else f"{self.status} {self.sip_status}"
        text = f"{self.call_id} agent {self.agent_id}: {status}"
        if self.reason and self.status != OK:
            text += f" ({self.reason})"
        if self.retry_after_s is not None:
            text += f", retry after {self.retry_after_s} s"
        if self.first_packet_wall is not None:
            text += (
                f"; {self.duration_s:.1f} s sent, packets agent {self.packets_sent[AGENT]}"
                f" customer {self.packets_sent[CUSTOMER]}"
            )
        return text


@dataclass
class SimulationResult:
    calls: list[CallOutcome]
    sender: SenderStats

    @property
    def ok(self) -> int:
        return sum(1 for call in self.calls if call.ok)
