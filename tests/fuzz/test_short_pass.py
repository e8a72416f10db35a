"""The short fuzzing pass CI runs: every target, a few hundred inputs each, no crash or hang.

The same runs as `scripts/fuzz --inputs 300 --jobs 2`, each target in its own atheris
process; a crashing input is kept under the test's temporary folder and named in the failure
(copy it to tests/fuzz/crashers/TARGET/ once the parser is fixed).
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.fuzz.cli import Outcome, _excerpt, run_target
from tests.fuzz.targets import TARGETS

INPUTS = 300


def test_every_target_survives_a_short_pass(tmp_path: Path) -> None:
    def one(name: str) -> Outcome:
        return run_target(
            name, inputs=INPUTS, seconds=None, crash_dir=tmp_path, python=sys.executable
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(one, TARGETS))
    problems = [
        f"{o.target}: {[str(a) for a in o.artifacts]}\n{_excerpt(o.log)}"
        for o in outcomes
        if o.failed
    ]
    assert not problems, "\n\n".join(problems)
    for o in outcomes:
        assert o.inputs >= INPUTS, f"{o.target} ran {o.inputs} inputs"
        assert o.cov > 0, f"{o.target} reports no coverage: is it instrumented?"
