"""One fuzz target under atheris (libFuzzer), in a process of its own.

`python -m tests.fuzz.worker TARGET CORPUS_DIR [libFuzzer flags]`: the target's parsers are
imported with coverage instrumentation, its seeds are written into CORPUS_DIR (which then
also collects the inputs that reach new coverage), and libFuzzer runs until its flags say
stop or an input crashes. `scripts/fuzz` starts this and reads what libFuzzer prints.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import atheris

from tests.fuzz.targets import TARGETS

INSTRUMENTED_PACKAGES = ["telephony", "core"]  # not kernels: Numba compiles those from bytecode


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] not in TARGETS:
        sys.exit(
            f"usage: {argv[0]} TARGET CORPUS_DIR [libFuzzer flags]; targets: {', '.join(TARGETS)}"
        )
    target, corpus = TARGETS[argv[1]], Path(argv[2])
    with atheris.instrument_imports(include=INSTRUMENTED_PACKAGES):
        run = target.load()
    corpus.mkdir(parents=True, exist_ok=True)
    for seed in target.seeds():
        (corpus / f"seed-{hashlib.sha1(seed).hexdigest()}").write_bytes(seed)
    atheris.Setup([argv[0], *argv[3:], str(corpus)], run)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
