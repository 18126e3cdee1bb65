"""Usage reports' pure parts: months, periods, the chart's geometry, CSV cells a spreadsheet could run."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest

from datalabs.errors import Invalid
from datalabs.usage import chart, report
from datalabs.usage.records import Span

NOW = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)


def test_months_and_periods():
    assert report.month_period(None, NOW).label == "December 2026"
    december = report.month_period("2026-12", NOW)
    assert (december.start, december.end) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert len(december.days) == 31 and report.month_period("2024-02").days[-1] == date(2024, 2, 29)
    week = report.date_period(date(2026, 12, 1), date(2026, 12, 7), NOW)
    assert week.label == "2026-12-01 to 2026-12-07" and len(week.days) == 7
    assert report.nearby_months(report.month_period("2025-03"))["previous"] == "2025-02"


@pytest.mark.parametrize("bad", ["2026-13", "2026-00", "26-12", "2026-1", "1999-12", "2026-12-01", "x" * 20])
def test_bad_months_are_refused_saying_the_form(bad):
    with pytest.raises(Invalid) as refused:
        report.month_period(bad, NOW)
    assert refused.value.code == "bad_month" and "is not a month such as 2026-12" in refused.value.message


def test_csv_cells_that_would_be_formulas_are_defused():
    span = Span(
        kind="lab", ref="l1", name="=HYPERLINK(\"http://x\")", owner_id=1, owner="@ada", cluster="-hpc",
        cpu=1, memory=0, gpu=0, start=NOW, end=NOW, state="stopped", source="platform",
    )  # fmt: skip
    found = report.Report(report.month_period("2026-12", NOW), [(span, 1.0)], groups_of={1: ["+team"]})
    [row] = list(csv.DictReader(io.StringIO(report.csv_text(found))))
    assert (row["name"], row["user"], row["cluster"], row["groups"]) == (
        "'=HYPERLINK(\"http://x\")", "'@ada", "'-hpc", "'+team",
    )  # fmt: skip
    assert (row["hours"], row["cpu_hours"]) == ("1.0000", "1.0000")


def test_the_chart_scales_to_a_round_top_and_labels_some_days():
    drawn = chart.bars([("2026-12-01", 0.0), ("2026-12-02", 3.2), ("2026-12-03", 1.6)], "CPU-hours", 2)
    assert drawn.top_value == "5 CPU-hours"
    assert [bar.label for bar in drawn.bars] == ["1", "", "3"]
    tallest = drawn.bars[1]
    assert tallest.height == pytest.approx((chart.HEIGHT - chart.TOP - chart.BOTTOM) * 3.2 / 5, abs=0.01)
    assert tallest.y + tallest.height == pytest.approx(drawn.baseline) and drawn.bars[0].height == 0
    assert chart.bars([], "CPU-hours").bars == [] and chart.bars([("2026-12-01", 0)], "h").top_value == "1 h"
