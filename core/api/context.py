"""What the gRPC service needs from the process that serves it.

The daemon (`core.daemon.serve.Daemon`) provides these; the API depends only on this
description, so that it sits below the daemon and never imports it.
"""

from __future__ import annotations

from typing import Any, Protocol

from core.config import Settings
from core.live.engine import LiveEngine


class ApiContext(Protocol):
    settings: Settings
    """The settings the daemon runs with (token, TLS, workers, data folder, rubric...)."""
    engine: LiveEngine | None
    """The live engine (None before it starts)."""
    sip_bridge: Any
    """The SIP recording server's bridge into the engine, when SIP is on."""
