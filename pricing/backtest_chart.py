"""The backtest's chart: Buy Box share and profit per hour, live rules against the candidate, as a standalone SVG.

Dagster 1.13 has no plot metadata type, so the asset stores this file beside the channel's feed documents and links
it from its metadata; hand-written SVG (no plotting dependency), viewable in any browser. Dagster-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from html import escape

__all__ = ["share_profit_svg"]

_WIDTH, _PANEL, _LEFT, _RIGHT, _TOP, _GAP = 760, 200, 70, 20, 40, 60
_COLORS = {"live": "#6b7280", "candidate": "#2563eb"}


def _polyline(points: Sequence[tuple[float, float]], color: str) -> str:
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"/>' for x, y in points)
    return f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>{dots}'


def _panel(
    top: float,
    title: str,
    hours: Sequence[datetime],
    series: dict[str, Sequence[float]],
    low: float,
    high: float,
    label: str,
) -> list[str]:
    inner = _WIDTH - _LEFT - _RIGHT
    span = (high - low) or 1.0
    step = inner / max(len(hours) - 1, 1)

    def xy(i: int, value: float) -> tuple[float, float]:
        return _LEFT + i * step, top + _PANEL - (value - low) / span * _PANEL

    parts = [
        f'<text x="{_LEFT}" y="{top - 10}" font-size="14" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{_LEFT}" y="{top}" width="{inner}" height="{_PANEL}" fill="none" stroke="#d1d5db"/>',
    ]
    for tick in range(5):
        value = low + span * tick / 4
        y = top + _PANEL - _PANEL * tick / 4
        parts.append(f'<line x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#f3f4f6"/>')
        text = label.format(value)
        parts.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{text}</text>')
    for i, hour in enumerate(hours):
        if len(hours) <= 12 or i % 3 == 0:
            x = _LEFT + i * step
            parts.append(
                f'<text x="{x:.1f}" y="{top + _PANEL + 14}" font-size="10" text-anchor="middle">{hour:%H:%M}</text>'
            )
    for name, values in series.items():
        parts.append(_polyline([xy(i, v) for i, v in enumerate(values)], _COLORS[name]))
    return parts


def share_profit_svg(
    title: str,
    hours: Sequence[datetime],
    share: dict[str, Sequence[float]],
    profit: dict[str, Sequence[Decimal]],
    currency: str,
) -> str:
    """Two panels over the hours: Buy Box share (0-100 %) and profit (in `currency`), one line per rule set
    (`live`, `candidate`)."""
    height = _TOP + 2 * _PANEL + _GAP + 50
    profits = [float(v) for values in profit.values() for v in values] or [0.0]
    low, high = min(0.0, *profits), max(0.0, *profits)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" '
        f'viewBox="0 0 {_WIDTH} {height}" font-family="sans-serif">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{_LEFT}" y="18" font-size="15">{escape(title)}</text>',
    ]
    legend_x = _WIDTH - _RIGHT - 220
    for i, (name, color) in enumerate(_COLORS.items()):
        x = legend_x + i * 110
        parts.append(f'<rect x="{x}" y="8" width="14" height="4" fill="{color}"/>')
        parts.append(f'<text x="{x + 18}" y="14" font-size="12">{name} rules</text>')
    parts += _panel(
        _TOP + 20,
        "Buy Box share per hour",
        hours,
        {k: [100 * v for v in s] for k, s in share.items()},
        0,
        100,
        "{:.0f} %",
    )
    parts += _panel(
        _TOP + 20 + _PANEL + _GAP,
        f"Projected profit per hour ({currency})",
        hours,
        {k: [float(v) for v in s] for k, s in profit.items()},
        low,
        high,
        "{:,.2f}",
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
