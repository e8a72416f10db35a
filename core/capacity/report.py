"""What a capacity run leaves: a printed table, a chart (SVG) and rows for the admin page."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from pathlib import Path

from core.capacity.ramp import RampOutcome
from core.capacity.results import early_share
from core.stage_cpu import STAGES

COLUMNS = (
    ("config", 9), ("lines", 5), ("ok", 4), ("utts", 5), ("p50 ms", 7), ("p95 ms", 7),
    ("p99 ms", 7), ("max ms", 7), ("backlog 1st/2nd", 15), ("daemon", 7), ("ms/line-s", 9),
    ("sim", 6), ("RSS MB", 7), ("lost+drop", 9), ("ASR busy", 8), ("ASR audio", 9),
    ("batch", 5), ("early", 5), ("kept up", 7), ("held", 4),
)  # fmt: skip


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _share(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.0f}%"


def table(outcomes: Sequence[RampOutcome]) -> str:
    """Every step of every configuration, one line each, then CPU per stage."""
    head = " ".join(f"{name:>{width}}" for name, width in COLUMNS)
    lines = [head]
    for outcome in outcomes:
        for s in outcome.steps:
            cells = [
                s.config, str(s.lines), str(s.calls_ok), str(s.utterances),
                _ms(s.latency_p50_ms), _ms(s.latency_p95_ms), _ms(s.latency_p99_ms),
                _ms(s.latency_max_ms),
                f"{s.backlog_first_half:.1f}/{s.backlog_second_half:.1f}"
                + ("+" if s.backlog_growing else ""),
                f"{100 * s.daemon_cores:.0f}%", f"{s.cpu_ms_per_line_s:.1f}",
                f"{100 * s.simulator_cores:.0f}%", f"{s.rss_peak_mb:.0f}",
                f"{s.packets_lost + s.kernel_drops}", f"{100 * s.asr_busy_fraction:.0f}%",
                f"{100 * s.asr_audio_fraction:.0f}%",
                f"{s.asr_mean_batch:.1f}",
                _share(early_share(s.config, s.early_used, s.transcripts_answered)),
                "yes" if s.sustained else "NO",
                "yes" if s.held else "NO",
            ]  # fmt: skip
            lines.append(" ".join(f"{c:>{w}}" for c, (_, w) in zip(cells, COLUMNS, strict=True)))
            if s.note:
                lines.append(f"{'':>9}   {s.note}")
    lines.append("early: finished transcripts taken from an early decode (live_early_decode_s)")
    lines.append("")
    lines.append("CPU per stage, % of one core: " + ", ".join(STAGES)
                 + "; then KiB waiting unread in the sockets (90th percentile, most seen)")
    for outcome in outcomes:
        for s in outcome.steps:
            parts = " ".join(f"{100 * s.stage_cores.get(k, 0.0):6.1f}" for k in STAGES)
            lines.append(f"{s.config:>9} {s.lines:>5} {parts} {s.receive_queue_kb:9.1f}")
    return "\n".join(lines)


def verdict(ours: RampOutcome, baseline: RampOutcome | None) -> str:
    lines = [ours.summary]
    if baseline is not None:
        lines.append(baseline.summary)
        for what, a, b in (
            ("held in real time (p95 within the deadline)", ours.max_lines_held,
             baseline.max_lines_held),
            ("kept up with (backlog not growing, any latency)", ours.max_lines_sustained,
             baseline.max_lines_sustained),
        ):  # fmt: skip
            ratio = f"ratio {a / b:.1f}x" if b else "the baseline none"
            lines.append(f"lines {what}: {a} vs {b} for the baseline, {ratio} (goal 6x)")
    return "\n".join(lines)


def ratio_text(ours: RampOutcome, baseline: RampOutcome) -> str:
    """Lines held and kept up against the baseline of the same run, as one sentence."""

    def ratio(a: int, b: int) -> str:
        return f"{a / b:.1f}x" if b else "the baseline none"

    held, base_held = ours.max_lines_held, baseline.max_lines_held
    kept, base_kept = ours.max_lines_sustained, baseline.max_lines_sustained
    return (f"ratio to the baseline: {held} vs {base_held} lines held ({ratio(held, base_held)}), "
            f"{kept} vs {base_kept} kept up ({ratio(kept, base_kept)})")  # fmt: skip


# ---------------------------------------------------------------- chart

WIDTH, HEIGHT = 760, 420
"""The chart's size before the legend, which adds a row per configuration below it."""
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 40, 60
LEGEND_ROW = 16
COLOURS = {"callqa": "#1f6fb2", "baseline": "#c0392b", "front-end": "#27ae60"}


def chart_svg(outcomes: Sequence[RampOutcome], title: str) -> str:
    """p95 latency against lines for each configuration, the deadline as a dashed line."""
    steps = [s for o in outcomes for s in o.steps if s.latency_p95_ms is not None]
    deadline = max((o.deadline_ms for o in outcomes), default=2000.0)
    max_lines = max((s.lines for o in outcomes for s in o.steps), default=1)
    max_ms = max([deadline * 1.5, *(min(s.latency_p95_ms or 0.0, deadline * 4) for s in steps)])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    height = HEIGHT + LEGEND_ROW * len(outcomes)  # the legend below the axis, off the data

    def x(lines: float) -> float:
        return LEFT + plot_w * lines / max_lines

    def y(ms: float) -> float:
        return TOP + plot_h * (1 - min(ms, max_ms) / max_ms)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="15">'
        f"{html.escape(title)}</text>",
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" '
        'stroke="black"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="black"/>',
    ]
    for tick in _ticks(max_lines):
        out.append(f'<text x="{x(tick):.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">'
                   f"{tick}</text>")  # fmt: skip
    for tick in _ticks(max_ms / 1000.0, integer=False):
        ms = tick * 1000
        out.append(f'<text x="{LEFT - 8}" y="{y(ms) + 4:.1f}" text-anchor="end">{tick:g} s</text>')
        out.append(f'<line x1="{LEFT}" y1="{y(ms):.1f}" x2="{LEFT + plot_w}" y2="{y(ms):.1f}" '
                   'stroke="#eee"/>')  # fmt: skip
    out.append(f'<line x1="{LEFT}" y1="{y(deadline):.1f}" x2="{LEFT + plot_w}" '
               f'y2="{y(deadline):.1f}" stroke="#888" stroke-dasharray="6,4"/>')  # fmt: skip
    out.append(f'<text x="{LEFT + plot_w - 4}" y="{y(deadline) - 6:.1f}" text-anchor="end" '
               f'fill="#555">deadline {deadline / 1000:g} s</text>')  # fmt: skip
    out.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 18}" text-anchor="middle">'
               "concurrent lines</text>")  # fmt: skip
    out.append(f'<text x="16" y="{TOP + plot_h / 2}" text-anchor="middle" '
               f'transform="rotate(-90 16 {TOP + plot_h / 2})">p95 latency, end of speech to '
               "transcript</text>")  # fmt: skip
    for n, outcome in enumerate(outcomes):
        colour = COLOURS.get(outcome.config, "#555")
        points = [(s.lines, s.latency_p95_ms) for s in outcome.steps
                  if s.latency_p95_ms is not None]  # fmt: skip
        if points:
            path = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in points)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                       'stroke-width="2"/>')  # fmt: skip
        for s in outcome.steps:
            if s.latency_p95_ms is None:
                continue
            fill = colour if s.held else "white"
            out.append(f'<circle cx="{x(s.lines):.1f}" cy="{y(s.latency_p95_ms):.1f}" r="4" '
                       f'fill="{fill}" stroke="{colour}" stroke-width="2"/>')  # fmt: skip
            if s.latency_p95_ms > max_ms:  # drawn at the top edge: say how far above it is
                above = f"\u2191 {s.latency_p95_ms / 1000:.1f} s"
                out.append(f'<text x="{x(s.lines) - 8:.1f}" y="{TOP + 4}" text-anchor="end" '
                           f'fill="{colour}">{above}</text>')  # fmt: skip
        label = (f"{outcome.config}: {outcome.max_lines_held} lines held, "
                 f"{outcome.max_lines_sustained} kept up")  # fmt: skip
        out.append(f'<text x="{LEFT}" y="{HEIGHT - 4 + LEGEND_ROW * n}" fill="{colour}">'
                   f"{html.escape(label)}</text>")  # fmt: skip
    out.append(f'<text x="{LEFT + plot_w}" y="{HEIGHT - 4}" text-anchor="end" fill="#777" '
               'font-size="10">filled: step held; open: did not hold</text>')  # fmt: skip
    out.append("</svg>")
    return "\n".join(out)


def _ticks(top: float, integer: bool = True) -> list[float]:
    if top <= 0:
        return [0]
    raw = top / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    if integer:
        step = max(1, round(step))
    ticks, value = [], 0.0
    while value <= top + 1e-9:
        ticks.append(int(value) if integer else round(value, 6))
        value += step
    return ticks


def write_outputs(outcomes: Sequence[RampOutcome], out_dir: Path, title: str) -> list[Path]:
    """The chart (capacity.svg) and every figure (capacity.json) in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    svg = out_dir / "capacity.svg"
    svg.write_text(chart_svg(outcomes, title), encoding="utf-8")
    data = out_dir / "capacity.json"
    data.write_text(json.dumps([o.to_json() for o in outcomes], indent=1, allow_nan=False,
                               default=str), encoding="utf-8")  # fmt: skip
    return [svg, data]


