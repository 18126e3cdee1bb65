"""The usage page's bar chart as geometry for an inline SVG rendered by the server (no script)."""

from __future__ import annotations

import math
from dataclasses import dataclass

WIDTH, HEIGHT = 640, 180  # the SVG's viewBox; bars fill it below TOP, above the day labels
TOP, BOTTOM = 16, 22


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # under the bar (every few bars only: "" for the others)
    title: str  # the bar's tooltip and accessible text


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    top_value: str  # the value the chart's top stands for
    width: int = WIDTH
    height: int = HEIGHT
    baseline: float = HEIGHT - BOTTOM


def bars(values: list[tuple[str, float]], unit: str, label_every: int = 5) -> Chart:
    """One bar per (day, value): heights relative to a round maximum, labels on every `label_every`th day
    (the day of the month: `values`' keys are ISO dates)."""
    most = max((value for _, value in values), default=0.0)
    scale = _round_up(most) if most > 0 else 1.0
    slot = WIDTH / max(len(values), 1)
    room = HEIGHT - TOP - BOTTOM
    drawn = []
    for index, (key, value) in enumerate(values):
        height = room * value / scale
        day = key[-2:].lstrip("0")
        drawn.append(
            Bar(
                x=round(index * slot + slot * 0.15, 2),
                y=round(TOP + room - height, 2),
                width=round(slot * 0.7, 2),
                height=round(height, 2),
                label=day if index % label_every == 0 else "",
                title=f"{key}: {value:.2f} {unit}",
            )
        )
    return Chart(drawn, f"{scale:g} {unit}")


def _round_up(value: float) -> float:
    """1, 2 or 5 times a power of ten, at least `value`: a readable top for the axis."""
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power
