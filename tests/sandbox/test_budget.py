"""Running parsing within a budget (sandbox/budget.py): a task that needs too much memory, CPU or time
is stopped and reported as `OverBudget`, a crash as `ParserCrashed`, the caller's own memory does not
move, a task's exceptions come back as they were raised, and one bad item never costs the others.
Then the harvesters, fed random and mangled files through the budget, as `datalabs assets harvest`
runs them."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datalabs.assets.base import AssetRecord
from datalabs.assets.harvest import harvest_file
from datalabs.catalogue.loader import LoadError, Problem
from datalabs.errors import Invalid, TooManyRequests
from datalabs.sandbox import budget
from datalabs.sandbox.budget import Budget, OverBudget, ParserCrashed
from tests.assets import samples

MiB = 2**20


# Tasks run in the worker: module-level, so they are pickled by name.
def echo(value):
    return value


def pids() -> tuple[int, int]:
    return os.getpid(), os.getppid()


def hog(size: int) -> int:
    return len(bytearray(size))


def spin() -> None:
    while True:
        pass


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def refuse() -> None:
    raise Invalid("the thing is wrong", code="thing_wrong")


def refuse_meta() -> None:
    raise LoadError([Problem("datalab-meta.yml", "title", "required key is missing (line 2)")])


def crash() -> None:
    os.abort()


def blob(size: int) -> bytes:
    return b"x" * size


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_result_comes_back_from_another_process():
    budget.warm()  # idempotent: the forkserver runs once per process
    assert budget.run(echo, {"a": [1, 2]}) == {"a": [1, 2]}
    pid, parent = budget.run(pids)
    assert os.getpid() not in (pid, parent)  # never a fork of this (multi-threaded) process


def test_exceptions_come_back_as_raised():
    with pytest.raises(Invalid) as err:
        budget.run(refuse)
    assert (err.value.message, err.value.code, err.value.status) == ("the thing is wrong", "thing_wrong", 422)
    with pytest.raises(LoadError) as err:
        budget.run(refuse_meta)
    assert err.value.problems == [Problem("datalab-meta.yml", "title", "required key is missing (line 2)")]


def test_memory_over_budget():
    before = _rss()
    with pytest.raises(OverBudget) as err:
        budget.run(hog, 2048 * MiB, budget=Budget(memory=128 * MiB), what="reading hog.fits")
    e = err.value
    assert (e.status, e.code) == (413, "parse_budget")
    assert e.message == "reading hog.fits needed more than 128 MiB of memory"
    assert _rss() - before < 50 * MiB  # the caller never held it
    assert budget.run(hog, 16 * MiB, budget=Budget(memory=128 * MiB)) == 16 * MiB


def test_cpu_over_budget():
    started = time.monotonic()
    with pytest.raises(OverBudget, match=r"validating x\.cwl used more than 1 s of CPU time"):
        budget.run(spin, budget=Budget(cpu=1, wall=30), what="validating x.cwl")
    assert time.monotonic() - started < 15


def test_wall_time_over_budget():
    started = time.monotonic()
    with pytest.raises(OverBudget, match="took longer than 0.5 s"):
        budget.run(nap, 30, budget=Budget(wall=0.5))
    assert time.monotonic() - started < 5


def test_crash_is_reported():
    with pytest.raises(ParserCrashed, match="crashed") as err:
        budget.run(crash)
    assert err.value.code == "parse_failed"


def test_result_too_large():
    with pytest.raises(OverBudget, match="result is larger than 1 MiB"):
        budget.run(blob, 2 * MiB, budget=Budget(max_result=MiB))


def test_one_bad_item_costs_the_others_nothing():
    items = [(echo, 1), (hog, 4096 * MiB), (echo, 3), (crash,), (echo, 5)]
    outcomes = list(
        budget.map_items(_call, items, budget=Budget(memory=128 * MiB), what=lambda args: args[0].__name__)
    )
    assert [o.value for o in outcomes] == [1, None, 3, None, 5]
    assert isinstance(outcomes[1].error, OverBudget) and "hog" in outcomes[1].error.message
    assert isinstance(outcomes[3].error, ParserCrashed)


def _call(fn, *args):
    return fn(*args)


def test_callers_wait_for_a_slot_then_give_up():
    old = budget.slots()
    budget.set_slots(1)
    try:
        busy = threading.Thread(target=budget.run, args=(nap, 3), kwargs={"budget": Budget(wall=10)})
        busy.start()
        time.sleep(0.5)
        with pytest.raises(TooManyRequests) as err:
            budget.run(echo, 1, budget=Budget(wall=0.5))
        assert err.value.code == "parse_busy" and err.value.status == 429
        busy.join()
        assert budget.run(echo, 2) == 2  # the slot came back
    finally:
        budget.set_slots(old)


# ---- harvesters fed random files through the budget ---------------------------------------------

SUFFIXES = [
    ".fits",
    ".fits.gz",
    ".fz",
    ".nc",
    ".nc4",
    ".rnx",
    ".crx",
    ".24o",
    ".24d.Z",
    ".rnx.gz",
    ".bsp",
    ".txt",
]
HARVEST = Budget(memory=512 * MiB, cpu=10, wall=30)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> list[bytes]:
    """Real files of every format, to be mangled: random bytes alone rarely get past a format's magic."""
    root = tmp_path_factory.mktemp("seeds")
    files = [samples.write_fits(root / "a.fits"), samples.write_netcdf(root / "a.nc")]
    files += list(samples.write_rinex(root / "rinex").values())
    return [p.read_bytes() for p in files if p.is_file()]


def _harvest_all(root: Path, names: list[str]) -> list[budget.Outcome]:
    items = [(str(root), "fuzz", name) for name in names]
    return list(budget.map_items(harvest_file, items, budget=HARVEST, what=lambda args: args[2]))


def _assert_harvested(outcomes: list[budget.Outcome]) -> None:
    for o in outcomes:
        if o.error is not None:  # the only failures a harvest may meet: its budget
            assert isinstance(o.error, OverBudget | ParserCrashed), repr(o.error)
            continue
        assert o.value is not None, "a file that exists is always recorded"
        record, reason = o.value
        assert isinstance(record, AssetRecord) and record.path == o.args[2]
        assert reason == record.properties.get("harvest_error", "")


FUZZ = settings(
    max_examples=25,
    deadline=None,  # each file's time is the budget's to bound (HARVEST.wall)
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(data=st.lists(st.tuples(st.binary(max_size=4096), st.sampled_from(SUFFIXES)), min_size=1, max_size=6))
def test_fuzz_harvesters_on_random_bytes(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("random")
    names = []
    for i, (content, suffix) in enumerate(data):
        (root / f"f{i}{suffix}").write_bytes(content)
        names.append(f"f{i}{suffix}")
    started = time.monotonic()
    _assert_harvested(_harvest_all(root, names))
    assert time.monotonic() - started < len(names) * (HARVEST.wall + 5)


@FUZZ
@given(
    seed=st.integers(0, 100),
    cuts=st.lists(st.tuples(st.integers(0, 10**6), st.binary(min_size=1, max_size=8)), max_size=8),
    keep=st.floats(0.05, 1.0),
    suffix=st.sampled_from(SUFFIXES),
)
def test_fuzz_harvesters_on_mangled_files(tmp_path_factory, seeds, seed, cuts, keep, suffix):
    original = bytearray(seeds[seed % len(seeds)])
    for at, patch in cuts:  # overwrite bytes here and there (headers, lengths, counts)
        at %= len(original)
        original[at : at + len(patch)] = patch
    root = tmp_path_factory.mktemp("mangled")
    (root / f"m{suffix}").write_bytes(bytes(original[: max(1, int(len(original) * keep))]))
    _assert_harvested(_harvest_all(root, [f"m{suffix}"]))
    shutil.rmtree(root)
