"""Slurm's own record of jobs: `sacct -X -P -n -o JobID,Start,End,Elapsed,State,AllocTRES`, one query for
many jobs, parsed by small pure functions (bad lines are skipped, never guessed at)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

FIELDS = ("JobID", "Start", "End", "Elapsed", "State", "AllocTRES")
# Job states after which Slurm writes nothing more about a job (TIMEOUT: killed at its walltime).
FINAL = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)
JOB_ID = re.compile(r"[0-9]{1,20}")
_ELAPSED = re.compile(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)")
_MEMORY_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40, "P": 2**50}  # Slurm's are binary


@dataclass(frozen=True)
class Accounted:
    """One job as Slurm accounted it; `final` once it ended (a job cancelled while queued has no start)."""

    job_id: str
    state: str
    start: datetime | None
    end: datetime | None
    elapsed: timedelta
    cpu: float
    memory: int
    gpu: int

    @property
    def final(self) -> bool:
        return self.state in FINAL and self.end is not None


def command(job_ids: list[str]) -> list[str]:
    """The one sacct call for all of `job_ids` (numeric ids only: nothing else reaches the command line)."""
    ids = [job for job in job_ids if JOB_ID.fullmatch(job)]
    if not ids:
        raise ValueError("no valid Slurm job id to ask sacct about")
    return ["sacct", "-X", "-P", "-n", "-j", ",".join(ids), "-o", ",".join(FIELDS)]


def parse(text: str) -> dict[str, Accounted]:
    """sacct's parsable lines, by job id; lines that do not parse are left out."""
    found = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) != len(FIELDS) or not JOB_ID.fullmatch(parts[0]):
            continue
        job_id, start, end, elapsed, state, tres = parts
        spent = parse_elapsed(elapsed)
        if spent is None:
            continue
        alloc = parse_tres(tres)
        found[job_id] = Accounted(
            job_id=job_id,
            state=state.split(" ")[0],  # "CANCELLED by 0"
            start=parse_time(start),
            end=parse_time(end),
            elapsed=spent,
            cpu=float(alloc.get("cpu", 0)),
            memory=int(alloc.get("mem", 0)),
            gpu=int(alloc.get("gres/gpu", 0)),
        )
    return found


def parse_time(text: str) -> datetime | None:
    """sacct prints the local time of the process that ran it (this one's), without a zone."""
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return None  # "Unknown", "None": not started or not ended


def parse_elapsed(text: str) -> timedelta | None:
    """`[D-][HH:]MM:SS`."""
    match = _ELAPSED.fullmatch(text.strip())
    if not match:
        return None
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def parse_tres(text: str) -> dict[str, float]:
    """`billing=2,cpu=2,gres/gpu=1,mem=512M,node=1` -> {cpu: 2, gres/gpu: 1, mem: 536870912, ...}."""
    values: dict[str, float] = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGTP]?)", value.strip())
        if name and match:
            values[name.strip()] = float(match[1]) * _MEMORY_UNITS[match[2]]
    return values
