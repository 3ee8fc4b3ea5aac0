"""The Metrics tab: session totals, a per-run table and a small chart of tokens and latency per run.

Runs are the top-level runs of the History page: a team run's numbers already include its members', a workflow
run's those of its agent and team steps, so nested runs are never counted twice.

The chart is an inline SVG built from numbers only: no plotting dependency, nothing to sanitise, and it renders
in any front end that shows an HTML widget.
"""

from __future__ import annotations

import html

from ipywidgets import HTML, VBox

from nbsessions.panel import formatting as fmt
from nbsessions.presentation.render import format_cost
from nbsessions.records import theme
from nbsessions.records.schema import Metrics, RunOutput, RunStatus

CHART_WIDTH, CHART_HEIGHT, PAD = 640, 150, 28
_CELL = "padding:1px 8px;text-align:right"
_TOKEN_COLOUR, _LATENCY_COLOUR = "#64b5f6", "#e65100"


def render_totals(runs: int, totals: Metrics) -> str:
    approx = totals.tokens_estimated
    items = [("input tokens", fmt.tokens(totals.input_tokens, approx)),
             ("output tokens", fmt.tokens(totals.output_tokens, approx)),
             ("total tokens", fmt.tokens(totals.total_tokens, approx)),
             ("avg TTFT", fmt.seconds(totals.time_to_first_token)), ("total time", fmt.seconds(totals.duration)),
             ("cost", format_cost(totals.cost))]
    cells = "".join(f'<span style="margin-right:18px;white-space:nowrap"><b>{value}</b> {name}</span>'
                    for name, value in items)
    noun = "run" if runs == 1 else "runs"
    return (f'<div class="nbsessions-totals"><b>{runs}</b> {noun} in this session; totals over its completed '
            f'runs only: {cells}</div>')


def render_table(runs: list[RunOutput], first_number: int) -> str:
    head = "".join(f'<th style="{_CELL}">{name}</th>' for name in
                   ("#", "time", "kind", "status", "in", "out", "total", "TTFT", "duration", "cost"))
    rows = []
    for i, run in enumerate(runs):
        m = run.metrics
        status = run.status.value + (" (superseded)" if run.superseded_by else "")
        values = (str(first_number + i), fmt.when_precise(run.created_at), html.escape(str(run.kind)), status,
                  fmt.tokens(m.input_tokens, m.tokens_estimated), fmt.tokens(m.output_tokens, m.tokens_estimated),
                  fmt.tokens(m.total_tokens, m.tokens_estimated),
                  fmt.seconds(m.time_to_first_token), fmt.seconds(m.duration),
                  format_cost(m.cost))
        rows.append("<tr>" + "".join(f'<td style="{_CELL}">{v}</td>' for v in values) + "</tr>")
    return (f'<table class="nbsessions-metrics" style="border-collapse:collapse;font-size:90%">'
            f'<thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')


def render_chart(runs: list[RunOutput], first_number: int) -> str:
    """Bars: total tokens per run (left scale); line: duration per completed run (right scale)."""
    if not runs:
        return ""
    inner_w, inner_h = CHART_WIDTH - 2 * PAD, CHART_HEIGHT - 2 * PAD
    biggest = max(runs, key=lambda r: r.metrics.total_tokens).metrics  # its count heads the scale, `~` if guessed
    max_tokens = max(biggest.total_tokens, 1)
    timed = [r for r in runs if r.status == RunStatus.completed]  # an error's time says nothing of latency
    max_seconds = max(max((r.metrics.duration or 0.0 for r in timed), default=0.0), 1e-9)
    step = inner_w / len(runs)
    bar_w = max(step * 0.7, 1.0)
    parts, points = [], []
    for i, run in enumerate(runs):
        m = run.metrics
        x = PAD + i * step
        h = inner_h * m.total_tokens / max_tokens
        tip = f"#{first_number + i}: {fmt.tokens(m.total_tokens, m.tokens_estimated)} tokens, {fmt.seconds(m.duration)}"
        parts.append(f'<rect x="{x:.1f}" y="{PAD + inner_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                     f'fill="{_TOKEN_COLOUR}"><title>{tip}</title></rect>')
        if m.duration is not None and run.status == RunStatus.completed:
            y = PAD + inner_h - inner_h * m.duration / max_seconds
            points.append(f"{x + bar_w / 2:.1f},{y:.1f}")
    if points:
        parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{_LATENCY_COLOUR}" '
                     'stroke-width="1.5"/>')
    last, scale = first_number + len(runs) - 1, fmt.tokens(max_tokens, biggest.tokens_estimated)
    # Labels take the theme's text colour (contrast in light and dark themes); swatches say which series is which.
    labels = (f'<rect x="{PAD}" y="{PAD - 17}" width="10" height="10" fill="{_TOKEN_COLOUR}"/>'
              f'<text x="{PAD + 14}" y="{PAD - 8}">tokens (max {scale})</text>'
              f'<rect x="{CHART_WIDTH - PAD - 10}" y="{PAD - 17}" width="10" height="10" fill="{_LATENCY_COLOUR}"/>'
              f'<text x="{CHART_WIDTH - PAD - 14}" y="{PAD - 8}" text-anchor="end">'
              f'latency (max {fmt.seconds(max_seconds)})</text>'
              f'<text x="{PAD}" y="{CHART_HEIGHT - 8}">run #{first_number}</text>'
              f'<text x="{CHART_WIDTH - PAD}" y="{CHART_HEIGHT - 8}" text-anchor="end">run #{last}</text>')
    axis = (f'<line x1="{PAD}" y1="{PAD + inner_h}" x2="{CHART_WIDTH - PAD}" y2="{PAD + inner_h}" '
            'stroke="currentColor" stroke-opacity=".4"/>')
    return (f'<svg class="nbsessions-chart" xmlns="http://www.w3.org/2000/svg" width="{CHART_WIDTH}" '
            f'height="{CHART_HEIGHT}" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" font-size="11" '
            f'font-family="sans-serif" fill="currentColor" style="color:{theme.TEXT}">'
            f'{axis}{"".join(parts)}{labels}</svg>')


class MetricsView(VBox):
    """Totals cover the whole session; the table and chart cover the runs on the History page shown.

    The table and chart grow with the page (up to 50 runs) and were redrawn after every run even while another tab
    was shown: the browser rebuilt them per run for nothing, the cost of a run growing with the runs on the page.
    They are drawn only while the tab is ``shown`` (the panel says when), and once more when it is shown again."""

    def __init__(self) -> None:
        self.totals = HTML()
        self.chart = HTML()
        self.table = HTML()
        self._shown = False
        self._page: tuple[list[RunOutput], int] | None = None  # the page to draw once the tab is shown
        super().__init__([self.totals, self.chart, self.table])
        self.clear()

    @property
    def shown(self) -> bool:
        return self._shown

    @shown.setter
    def shown(self, shown: bool) -> None:
        self._shown = shown
        if shown and self._page is not None:
            self._draw_page(*self._page)

    def show(self, run_count: int, totals: Metrics, runs: list[RunOutput], first_number: int) -> None:
        self.totals.value = render_totals(run_count, totals)
        if self._shown:
            self._draw_page(runs, first_number)
        else:
            self._page = (runs, first_number)

    def _draw_page(self, runs: list[RunOutput], first_number: int) -> None:
        self._page = None
        self.chart.value = render_chart(runs, first_number)
        self.table.value = render_table(runs, first_number) if runs else ""

    def clear(self) -> None:
        self._page = None
        self.totals.value = self.chart.value = self.table.value = ""
