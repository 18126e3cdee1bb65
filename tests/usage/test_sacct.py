"""sacct's parsable output read by small pure functions: what Slurm prints, and what it must not be
mistaken for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from datalabs.usage import sacct

REAL = """\
12|2026-12-03T15:21:28|2026-12-03T15:21:30|00:00:02|COMPLETED|billing=2,cpu=2,mem=512M,node=1
13|2026-12-03T15:21:30|2026-12-03T15:23:01|00:01:31|TIMEOUT|billing=2,cpu=2,gres/gpu=1,mem=1G,node=1
14|Unknown|2026-12-03T15:24:00|00:00:00|CANCELLED by 0|
15|2026-12-03T15:24:00|Unknown|1-02:03:04|RUNNING|cpu=4,mem=2G,node=1
"""


def test_a_real_answer_is_read_job_by_job():
    found = sacct.parse(REAL)

    done, killed, never, running = found["12"], found["13"], found["14"], found["15"]
    assert (done.state, done.cpu, done.gpu, done.memory) == ("COMPLETED", 2.0, 0, 512 * 2**20)
    assert done.elapsed == timedelta(seconds=2) and done.final
    assert done.start == datetime(2026, 12, 3, 15, 21, 28).astimezone(UTC)
    assert (killed.state, killed.gpu, killed.elapsed, killed.final) == (
        "TIMEOUT",
        1,
        timedelta(seconds=91),
        True,
    )
    assert (never.state, never.start, never.final, never.cpu) == ("CANCELLED", None, True, 0.0)
    assert running.elapsed == timedelta(days=1, hours=2, minutes=3, seconds=4) and not running.final


@pytest.mark.parametrize(
    "line",
    [
        "",
        "garbage",
        "12|a|b|c|COMPLETED",  # too few fields
        "12|x|y|00:00:02|COMPLETED|cpu=1|extra",  # too many
        "12.batch|2026-12-03T15:21:28|2026-12-03T15:21:30|00:00:02|COMPLETED|cpu=1",  # a step, not the job
        "-1|2026-12-03T15:21:28|2026-12-03T15:21:30|00:00:02|COMPLETED|cpu=1",
        "12|2026-12-03T15:21:28|2026-12-03T15:21:30|two seconds|COMPLETED|cpu=1",
    ],
)
def test_lines_that_are_not_a_jobs_record_are_left_out(line):
    assert sacct.parse(line) == {}


def test_odd_tres_values_are_skipped_not_guessed():
    assert sacct.parse_tres("cpu=abc,mem=1Q,gres/gpu=2,=3,node") == {"gres/gpu": 2.0}


def test_only_numeric_job_ids_reach_the_command_line():
    assert sacct.command(["7", "8; rm -rf /", "-j", "9"]) == [
        "sacct", "-X", "-P", "-n", "-j", "7,9", "-o", "JobID,Start,End,Elapsed,State,AllocTRES",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="no valid Slurm job id"):
        sacct.command(["--help", ""])
