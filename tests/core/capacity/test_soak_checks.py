"""The soak's verdicts on what it saw: memory, the disk backlog, late alerts, the limit.

(The stored calls and recordings are judged by the same module on a real soak run:
``python benchmarks/soak.py --minutes 1 --lines 2``.)
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from core.capacity.load import SimulatorRun
from core.capacity.observe import Sample
from core.capacity.soak import SoakPlan, SoakRun
from core.capacity.soak_checks import Check, check_soak

MB = 2**20


def soak(tmp_path: Path, rss_mb: list[float], on_disk: list[int], **over: object) -> SoakRun:
    run = SoakRun(SoakPlan(lines=4, minutes=1), tmp_path, [], tmp_path / "probe.wav")
    run.samples = [Sample(float(i), 3, 9.0, 4, int(mb * MB), d)
                   for i, (mb, d) in enumerate(zip(rss_mb, on_disk, strict=True))]  # fmt: skip
    run.load_s = float(len(rss_mb))
    run.exit_code, run.drained, run.on_disk_at_end = 0, True, 0
    for name, value in over.items():
        setattr(run, name, value)
    return run


def verdict(run: SoakRun, name: str) -> Check:
    return next(c for c in check_soak(run) if c.name.startswith(name))


def test_memory_that_levels_off_is_bounded_and_memory_that_climbs_is_not(tmp_path: Path) -> None:
    flat = soak(tmp_path, [400, 600, 700, 710, 705, 712, 708, 715, 711], [0] * 9)
    assert verdict(flat, "peak RSS").held
    climbing = soak(tmp_path, [400, 500, 600, 700, 800, 900, 1000, 1100, 1200], [0] * 9)
    check = verdict(climbing, "peak RSS")
    assert not check.held and "1,200 MB" in check.figures


def test_the_backlog_must_reach_the_disk_and_leave_it(tmp_path: Path) -> None:
    assert verdict(soak(tmp_path, [500] * 6, [0, 2, 5, 3, 0, 0]), "backlog").held
    assert not verdict(soak(tmp_path, [500] * 6, [0] * 6), "backlog").held  # never on disk
    left = soak(tmp_path, [500] * 6, [0, 2, 5, 3, 0, 0], on_disk_at_end=3)
    assert not verdict(left, "backlog").held
    assert not verdict(soak(tmp_path, [500] * 6, [0, 2, 5, 3, 0, 0], drained=False),
                       "backlog").held  # fmt: skip


def test_an_alert_past_the_deadline_must_be_marked_late(tmp_path: Path) -> None:
    def alert(ms: float, late: bool, live: bool = True) -> SimpleNamespace:
        return SimpleNamespace(latency_ms=ms, late=late, live=live)

    right = [alert(800, False), alert(2600, True), alert(9000, False, live=False)]
    check = verdict(soak(tmp_path, [500] * 3, [0] * 3, alerts=right), "alerts")
    assert check.held and "2 alerts, 1 past the 2000 ms deadline" in check.figures
    wrong = [alert(2600, False), alert(900, True)]
    check = verdict(soak(tmp_path, [500] * 3, [0] * 3, alerts=wrong), "alerts")
    assert not check.held and "2 marked wrong" in check.figures


def test_calls_beyond_the_limit_must_get_503_with_retry_after(tmp_path: Path) -> None:
    def probes(*calls: dict[str, object]) -> list[SimulatorRun]:
        return [SimulatorRun(calls=[{**c, "call_id": f"p{i}@h"} for i, c in enumerate(calls)])]

    refused = {"status": "rejected", "sip_status": 503, "retry_after_s": 5}
    taken = {"status": "ok", "sip_status": 200, "retry_after_s": None}
    no_retry = {"status": "rejected", "sip_status": 503, "retry_after_s": None}
    run = soak(tmp_path, [500] * 3, [0] * 3, probe_runs=probes(refused, refused, taken))
    check = verdict(run, "INVITEs")
    assert check.held and "3 offered at the limit of 4: 2 got 503" in check.figures
    assert not verdict(soak(tmp_path, [500] * 3, [0] * 3, probe_runs=probes(refused, no_retry)),
                       "INVITEs").held  # fmt: skip
    assert not verdict(soak(tmp_path, [500] * 3, [0] * 3, probe_runs=probes(taken)),
                       "INVITEs").held  # fmt: skip


def test_nothing_stored_is_a_loss(tmp_path: Path) -> None:
    run = soak(tmp_path, [500] * 3, [0] * 3)
    run.load = SimulatorRun(calls=[{"call_id": "a@h", "index": 0, "status": "ok"}])
    run.files = [tmp_path / "call.wav"]
    assert not verdict(run, "every call").held
    assert not verdict(run, "database").held
    assert not verdict(run, "recordings").held


def test_a_load_call_refused_at_the_limit_is_not_lost_and_a_failed_one_is(tmp_path: Path) -> None:
    run = soak(tmp_path, [500] * 3, [0] * 3)
    run.files = [tmp_path / "call.wav"]
    refused = {"call_id": "a@h", "index": 0, "status": "rejected", "sip_status": 503,
               "retry_after_s": 5}  # fmt: skip
    run.load = SimulatorRun(calls=[refused])
    check = verdict(run, "every call")
    assert check.held and "1 of them refused at the limit, 0 failed" in check.figures
    timed_out = {"call_id": "b@h", "index": 0, "status": "failed", "sip_status": None}
    run.load = SimulatorRun(calls=[refused, timed_out])
    assert not verdict(run, "every call").held
