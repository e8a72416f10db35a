"""Named points in the daemon's work where a crash test can freeze it, to kill it there.

A crash during one exact step (between filing a recording and writing its row, inside the
transaction that stores a call) cannot be hit reliably by a kill on a timer. When the
environment variable ``CALLQA_STOP_AT`` names a point, the first thread to reach it sends the
whole process SIGSTOP: every thread halts there, and the test sees the process stopped
(state ``T``) and kills it with SIGKILL exactly there. Unset (always, outside such tests),
:func:`stop_point` does nothing. The variable is not a setting: nothing else reads it.

Points:

* ``call-ended``: a call has just ended (its BYE, or the end of its stream), its recording
  closed, before the rest of its utterances are transcribed and it is scored;
* ``filed``: a call's recording has been moved under ``recordings/``, its row not written yet;
* ``in-transaction``: a scored call's rows are written, their transaction not committed.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

ENV_NAME = "CALLQA_STOP_AT"
POINTS = ("call-ended", "filed", "in-transaction")

logger = logging.getLogger(__name__)
_armed = os.environ.get(ENV_NAME, "")
_lock = threading.Lock()


def stop_point(name: str) -> None:
    """Freeze the process here when ``CALLQA_STOP_AT`` names this point (first time only)."""
    global _armed
    if _armed != name:
        return
    with _lock:
        if _armed != name:
            return
        _armed = ""
    logger.warning("stopping the process at %r (%s)", name, ENV_NAME)
    for handler in logging.getLogger().handlers:
        handler.flush()
    # To this thread: it takes the signal as its system call returns and stops the process
    # then, before it runs another line (sent to the process, another thread might take it
    # only once it is scheduled, while this one goes on).
    signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)


if _armed and _armed not in POINTS:
    raise ValueError(f"{ENV_NAME}={_armed!r}: not a stop point; known: {', '.join(POINTS)}")
