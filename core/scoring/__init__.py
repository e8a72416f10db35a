"""Scoring a recorded call: from its legs' audio to findings and a score, and storing it.

* `core.scoring.pipeline`: audio -> utterances -> text -> findings -> score (no storage).
* `core.scoring.recording`: score a recording file and store the call with its recording.
* `core.scoring.report`: the readable report `callqa score` prints.
* `core.scoring.rescore`: re-scoring a stored call from its stored evidence (dry runs).
"""

__all__ = ["pipeline", "recording", "report", "rescore"]
