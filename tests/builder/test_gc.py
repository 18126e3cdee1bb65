"""Garbage collection of built environments: only those no version uses, past the grace period, not
being built and not mounted by a running process (a lab of a deleted app) are removed."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from datalabs.builder import gc
from datalabs.builder.service import envs_dir
from datalabs.db.models import App, AppVersion, User

OLD = time.time() - 2 * gc.GRACE_SECONDS


def make_env(settings, key: str, *, old: bool = True) -> Path:
    env = envs_dir(settings) / key
    (env / "lib").mkdir(parents=True)
    (env / "lib" / "module.py").write_bytes(b"x" * 1000)
    (env / ".complete").write_text("{}")
    if old:
        os.utime(env, (OLD, OLD))
    return env


@pytest.fixture
def used_key(db) -> str:
    user = User(name="ada", password_hash="x")
    db.add(user)
    db.flush()
    app = App(name="tiny", owner_id=user.id)
    app.versions.append(AppVersion(version="0.1.0-0", env_key="k-used", state="built"))
    db.add(app)
    db.flush()
    return "k-used"


def test_only_unused_old_unlocked_environments_go(db, settings, used_key):
    used = make_env(settings, used_key)
    gone = make_env(settings, "k-orphan")
    young = make_env(settings, "k-young", old=False)
    building = make_env(settings, "k-building")
    with open(envs_dir(settings) / ".k-building.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a build of that key is running
        dry = gc.collect(db, settings, dry_run=True)
        assert [(c.key, c.size) for c in dry] == [("k-orphan", 1002)] and gone.exists()
        collected = gc.collect(db, settings)
    assert [c.key for c in collected] == ["k-orphan"]
    assert not gone.exists() and used.exists() and young.exists() and building.exists()
    assert not list(envs_dir(settings).glob(".gc-*"))


def test_an_environment_a_running_lab_has_mounted_is_kept(db, settings, used_key):
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare to make a mount namespace like a lab's")
    env = make_env(settings, "k-deleted-app")
    ready = settings.home / "mounted"
    # A process in its own mount namespace with the environment bound at its own path, as a lab has it.
    holder = subprocess.Popen(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            f"mount --bind {env} {env} && touch {ready} && exec sleep 60",
        ]
    )
    try:
        deadline = time.monotonic() + 10
        while not ready.exists():
            assert holder.poll() is None and time.monotonic() < deadline, "could not set up the mount"
            time.sleep(0.05)
        assert gc.collect(db, settings) == [] and env.exists()
    finally:
        holder.kill()
        holder.wait()
    assert [c.key for c in gc.collect(db, settings)] == ["k-deleted-app"] and not env.exists()


def test_the_admin_command_lists_then_removes(tmp_path):
    from tests.cli.test_cli import run

    home = tmp_path / "home"
    run(home, "admin", "create-user", "root", "--password", "long-enough-pw", "--admin")
    env = home / "envs" / "k-orphan"
    (env / "lib").mkdir(parents=True)
    (env / "lib" / "big.so").write_bytes(b"x" * 3 * 2**20)
    os.utime(env, (OLD, OLD))
    dry = run(home, "admin", "gc-environments", "--dry-run").stdout
    assert "would remove k-orphan (3.0 MiB)" in dry and env.exists()
    done = run(home, "admin", "gc-environments").stdout
    assert "removed k-orphan (3.0 MiB)" in done and "1 environment(s), 3.0 MiB freed" in done
    assert not env.exists()


def test_start_up_removes_what_dead_builds_left_and_nothing_a_live_build_uses(tmp_path):
    """gc.remove_leftovers (issue 13, finding 8): half-built environments and step folders of builds that
    died; an environment being built (its lock held) and its step folder are left alone."""
    from datalabs.config import Settings

    settings = Settings(home=tmp_path / "home")
    root = envs_dir(settings)
    complete = make_env(settings, "k-complete", old=False)
    (root / "k-half").mkdir(parents=True)  # killed before .complete was written
    (root / "k-half" / "lib").mkdir()
    (root / ".gc-k-old-1234").mkdir()  # a removal interrupted by a crash
    (root / ".run-dead").mkdir()
    (root / ".uv-cache").mkdir()
    assert sorted(gc.remove_leftovers(settings)) == [".gc-k-old-1234", ".run-dead", "k-half"]
    assert sorted(p.name for p in root.iterdir()) == [".uv-cache", "k-complete"]
    assert (complete / ".complete").exists()

    (root / "k-building").mkdir()  # another process is building it right now
    (root / ".run-live").mkdir()
    with open(root / ".k-building.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert gc.remove_leftovers(settings) == []
    assert (root / "k-building").is_dir() and (root / ".run-live").is_dir()
    assert sorted(gc.remove_leftovers(settings)) == [".run-live", "k-building"]  # its builder died
