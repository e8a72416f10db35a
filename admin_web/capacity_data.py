"""What the capacity page shows: the box's facts, its load now, past benchmark runs and
their curves (inline SVG drawn here, so that the page needs no chart library)."""

from __future__ import annotations

import functools
import html
import json
import math
import os
import platform
import shutil
import sqlite3
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.capacity.results import early_share
from proto import callqa_pb2 as pb

STAGES = ("receive", "dsp", "asr", "rules", "storage", "grpc", "other")
NVIDIA_SMI_TIMEOUT_S = 3.0


# ------------------------------------------------------------------ the box


@functools.lru_cache(maxsize=1)
def box_facts() -> dict[str, Any]:
    """CPU model and cores, memory, GPU (nvidia-smi), OS: read once per site process."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except (OSError, ValueError):
        pass
    return {"cpu_model": model or platform.processor() or platform.machine(),
            "cores": os.cpu_count() or 0, "memory_gb": memory_gb, "gpus": gpus(),
            "system": f"{platform.system()} {platform.release()}"}


def gpus() -> list[str]:
    """NVIDIA GPUs as nvidia-smi names them; empty without a driver or GPU."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "--query-gpu=name,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S,
                             check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def capacity_json(cap: pb.Capacity) -> dict[str, Any]:
    """GetCapacity's answer for the page (CPU per stage in seconds since the start)."""
    return {
        "live_lines": cap.live_lines, "max_sessions": cap.max_sessions,
        "asr_backlog_utterances": cap.asr_backlog_utterances,
        "asr_backlog_audio_s": round(cap.asr_backlog_audio_s, 1),
        "queued_on_disk": cap.queued_on_disk_utterances,
        "asr_device": cap.asr_device, "compute_type": cap.asr_compute_type,
        "model_name": cap.model_name,
        "rtf": (round(cap.asr_real_time_factor, 3)
                if cap.HasField("asr_real_time_factor") else None),
        "stage_cpu_s": {s.stage: round(s.cpu_s, 2) for s in cap.stage_cpu},
        "rss_mb": round(cap.memory_rss_bytes / 2**20, 1),
        "peak_rss_mb": round(cap.memory_peak_rss_bytes / 2**20, 1),
        "transcripts": cap.transcripts,
        "latency_p50_ms": round(cap.transcript_latency_p50_ms),
        "latency_p95_ms": round(cap.transcript_latency_p95_ms),
        "asr_utterances": cap.asr_utterances, "asr_busy_s": round(cap.asr_busy_s, 1),
        "asr_audio_s": round(cap.asr_audio_s, 1),
        "early_decodes": cap.asr_early_decodes, "early_used": cap.asr_early_decodes_used,
    }  # fmt: skip


# ------------------------------------------------------------------ past runs


@dataclass
class StepRow:
    """One step of a stored run as its page shows it (None: not measured, or meaningless)."""

    lines: int
    p50_ms: float | None
    p95_ms: float | None
    cpu_percent: float | None
    stages: list[tuple[str, float]]  # (stage, % of one core), the busiest first
    rss_mb: float | None
    early: float | None  # share of finished transcripts taken from early decodes
    unread_kb: float | None
    lost: int | None
    kept_up: bool | None
    held: bool
    note: str


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


@dataclass
class Run:
    id: int
    kind: str
    config: str
    started_at: str
    finished_at: str
    max_lines_held: int
    asr_device: str
    compute_type: str
    model_name: str
    summary: str
    steps: list[dict[str, Any]]

    def points(self, cores: int) -> list[tuple[int, float | None, float | None]]:
        """(lines, p95 latency in ms, CPU in % of the box) of each step."""
        out = []
        for s in self.steps:
            p95 = s.get("latency_p95_ms")
            if s.get("daemon_cores") is not None and cores:
                cpu = 100.0 * float(s["daemon_cores"]) / cores
            elif s.get("cpu_percent") is not None:
                cpu = float(s["cpu_percent"])
            else:
                cpu = None
            out.append((int(s.get("lines", 0)), None if p95 is None else float(p95), cpu))
        return out

    def step_rows(self, cores: int) -> list[StepRow]:
        """Every step with what a person compares between steps and runs."""
        rows = []
        for (lines, p95, cpu), s in zip(self.points(cores), self.steps, strict=True):
            stage_cores = s.get("stage_cores") or {}
            stages = sorted(((name, 100.0 * float(v)) for name, v in stage_cores.items()
                             if name in STAGES and isinstance(v, int | float)),
                            key=lambda item: -item[1])  # fmt: skip
            transcripts = int(s.get("transcripts_answered") or 0)
            used = s.get("early_used")  # runs stored before early decodes have none
            lost = s.get("packets_lost")
            rows.append(StepRow(
                lines=lines, p50_ms=_number(s.get("latency_p50_ms")), p95_ms=p95,
                cpu_percent=cpu, stages=stages, rss_mb=_number(s.get("rss_peak_mb")),
                early=None if used is None else early_share(self.config, int(used), transcripts),
                unread_kb=_number(s.get("receive_queue_kb")),
                lost=None if lost is None else int(lost) + int(s.get("kernel_drops") or 0),
                kept_up=s.get("sustained"), held=bool(s.get("held")), note=s.get("note") or "",
            ))  # fmt: skip
        return rows


def _run(row: dict[str, Any]) -> Run:
    kind = row["kind"] or ""
    try:
        steps = json.loads(row["steps_json"] or "[]")
    except ValueError:
        steps = []
    return Run(id=row["id"], kind=kind, config=kind.removeprefix("capacity-"),
               started_at=row["started_at"], finished_at=row["finished_at"],
               max_lines_held=row["max_lines_held"], asr_device=row["asr_device"] or "",
               compute_type=row["compute_type"] or "", model_name=row["model_name"] or "",
               summary=row["summary"] or "", steps=steps if isinstance(steps, list) else [])


@dataclass
class RunGroup:
    """One benchmark: callqa's ramp and, beside it, the baseline's of the same `callqa bench`."""

    main: Run
    baseline: Run | None

    @property
    def id(self) -> int:
        return self.main.id

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.baseline.max_lines_held:
            return None
        return self.main.max_lines_held / self.baseline.max_lines_held


def runs(conn: sqlite3.Connection, limit: int = 50) -> list[RunGroup]:
    """Stored benchmark runs, newest first; a bench's baseline row is paired with the row
    stored just before it by the same command (consecutive ids)."""
    found = [_run(dict(r)) for r in conn.execute(
        "SELECT * FROM cq.benchmark_runs ORDER BY id DESC LIMIT ?", [limit * 2])]
    by_id = {r.id: r for r in found}
    groups: list[RunGroup] = []
    paired: set[int] = set()
    for r in found:
        if r.id in paired:
            continue
        if r.config == "baseline":
            main = by_id.get(r.id - 1)
            if main is not None and main.config == "callqa" and main.id not in paired:
                paired |= {main.id, r.id}
                groups.append(RunGroup(main, r))
                continue
        paired.add(r.id)
        groups.append(RunGroup(r, None))
    return groups[:limit]


def run_group(conn: sqlite3.Connection, run_id: int) -> RunGroup | None:
    for group in runs(conn, limit=500):
        if group.main.id == run_id or (group.baseline and group.baseline.id == run_id):
            return group
    return None


# ------------------------------------------------------------------ the curve (SVG)


COLORS = {"callqa": "#1d5fbf", "baseline": "#c62828", "daemon": "#1d5fbf",
          "front-end": "#2f855a"}


def _nice_ticks(top: float, count: int = 5, whole: bool = False) -> list[float]:
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    if whole:
        step = max(1.0, math.ceil(step))
    ticks = [0.0]
    while ticks[-1] < top:
        ticks.append(round(ticks[-1] + step, 6))
    return ticks


def _log_ticks(low: float, high: float) -> list[float]:
    ticks = []
    decade = 10 ** math.floor(math.log10(max(low, 1e-3)))
    while decade <= high * 10:
        for m in (1, 2, 5):
            v = m * decade
            if low <= v <= high:
                ticks.append(v)
        decade *= 10
    return ticks or [low, high]


def _fmt(value: float) -> str:
    if value >= 1000 and value % 1000 == 0:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def curve_svg(series: Sequence[tuple[str, list[tuple[int, float | None]]]], *, title: str,
              y_label: str, x_label: str, deadline: float | None = None,
              deadline_label: str = "", log_y: bool = False, width: int = 380,
              height: int = 240, empty_note: str = "") -> str:
    """A line chart: y against lines, one polyline per (name, points) series; the x axis
    spans every step, and ``empty_note`` is written across it when no step has a y."""
    left, right, top, bottom = 54, 12, 26, 40
    pw, ph = width - left - right, height - top - bottom
    xs = [x for _, pts in series for x, _ in pts]
    ys = [y for _, pts in series for _, y in pts if y is not None]
    empty = not ys
    if deadline is not None:
        ys.append(deadline)
    x_max = max(xs, default=1)
    x_ticks = _nice_ticks(max(x_max, 1), 6, whole=True)
    x_top = x_ticks[-1]
    if log_y:
        low = max(min((y for y in ys if y > 0), default=10.0) / 1.5, 1.0)
        high = max(ys, default=100.0) * 1.3
        y_ticks = _log_ticks(low, high)

        def ypos(v: float) -> float:
            v = max(v, low)
            return top + ph - ph * (math.log10(v) - math.log10(low)) / (
                math.log10(high) - math.log10(low))
    else:
        y_ticks = _nice_ticks(max(ys, default=1.0) * 1.05 or 1.0)
        high = y_ticks[-1]

        def ypos(v: float) -> float:
            return top + ph - ph * v / high if high else top + ph

    def xpos(v: float) -> float:
        return left + pw * v / x_top if x_top else left

    esc = html.escape
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="{esc(title)}">',
             f'<text x="{left}" y="15" font-size="12" font-weight="600" fill="#1f2933">'
             f'{esc(title)}</text>']
    for t in y_ticks:
        y = ypos(t)
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" '
                     'stroke="#edf0f3"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end" '
                     f'fill="#616e7c">{_fmt(t)}</text>')
    for t in x_ticks:
        x = xpos(t)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + ph}" y2="{top + ph + 4}" '
                     'stroke="#b8c2cc"/>')
        parts.append(f'<text x="{x:.1f}" y="{top + ph + 14}" font-size="10" '
                     f'text-anchor="middle" fill="#616e7c">{_fmt(t)}</text>')
    parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" '
                 'stroke="#b8c2cc"/>')
    parts.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + ph}" stroke="#b8c2cc"/>')
    parts.append(f'<text x="{left + pw / 2:.1f}" y="{height - 6}" font-size="11" '
                 f'text-anchor="middle" fill="#616e7c">{esc(x_label)}</text>')
    parts.append(f'<text transform="translate(12 {top + ph / 2:.1f}) rotate(-90)" '
                 f'font-size="11" text-anchor="middle" fill="#616e7c">{esc(y_label)}</text>')
    if deadline is not None:
        y = ypos(deadline)
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" '
                     'stroke="#b35c00" stroke-dasharray="5 4"/>')
        parts.append(f'<text x="{left + pw - 2}" y="{y - 4:.1f}" font-size="10" '
                     f'text-anchor="end" fill="#b35c00">{esc(deadline_label)}</text>')
    if empty and empty_note:
        parts.append(f'<text x="{left + pw / 2:.1f}" y="{top + ph / 2:.1f}" font-size="12" '
                     f'text-anchor="middle" fill="#616e7c">{esc(empty_note)}</text>')
    for name, pts in series:
        color = COLORS.get(name, "#616e7c")
        coords = [(xpos(x), ypos(y)) for x, y in pts if y is not None]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" '
                         f'stroke-width="2" data-series="{esc(name)}"/>')
        for x, y in coords:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>')
    parts.append("</svg>")
    return "".join(parts)


def group_charts(group: RunGroup, cores: int, texts: dict[str, str],
                 deadline_ms: float | None) -> tuple[str, str]:
    """The latency chart and the CPU chart of one benchmark, callqa beside its baseline.

    Latency is drawn on a log scale when it spans more than a factor of 8 (a baseline far
    past the deadline would flatten callqa's curve otherwise)."""
    members = [group.main] + ([group.baseline] if group.baseline else [])
    latency = [(r.config, [(x, p95) for x, p95, _ in r.points(cores)]) for r in members]
    cpu = [(r.config, [(x, c) for x, _, c in r.points(cores)]) for r in members]
    values = [y for _, pts in latency for _, y in pts if y] + ([deadline_ms] if deadline_ms
                                                               else [])
    log_y = bool(values) and max(values) / max(min(values), 1.0) > 8
    return (
        curve_svg(latency, title=texts["latency_title"],
                  y_label=texts["latency_axis_log"] if log_y else texts["latency_axis"],
                  x_label=texts["lines_axis"], deadline=deadline_ms,
                  deadline_label=texts["deadline"], log_y=log_y,
                  empty_note=texts["no_latency_front_end" if group.main.config == "front-end"
                                   else "no_latency"]),
        curve_svg(cpu, title=texts["cpu_title"], y_label=texts["cpu_axis"],
                  x_label=texts["lines_axis"]),
    )
