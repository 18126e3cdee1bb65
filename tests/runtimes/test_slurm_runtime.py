"""SlurmRuntime on the suite's real single-node Slurm cluster (tests/runtimes/slurm_cluster.py): the queue
reason while a lab waits, cancelling it then, a controller outage that must not end a running lab,
re-attaching from saved state, one squeue for many labs, GPUs through --gres, and job scripts that no
hostile value can reach unescaped."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from pathlib import Path

import pytest

from datalabs.clusters.settings import ClusterOptions, ClusterSettings
from datalabs.runtimes.base import StartError
from datalabs.runtimes.slurm import SCRIPT_FILE, SlurmRuntime
from datalabs.runtimes.slurm_queue import JobQueue
from datalabs.runtimes.slurm_script import render_script
from tests.contracts.runtime_support import web_spec
from tests.contracts.test_runtime_contract import get
from tests.desktop_support import screenshot, x_windows


@pytest.fixture
def hpc(slurm_cluster):
    yield ClusterSettings(name="hpc", backend="slurm", options={"slurm_conf": str(slurm_cluster.conf)})
    slurm_cluster.cancel_all()  # the next test gets an empty queue


def occupy_node(cluster) -> str:
    """A job holding every CPU of the node, so the next job waits with reason Resources."""
    job = cluster.sbatch(
        "#!/bin/sh\nsleep 300\n", f"--cpus-per-task={cluster.cpus}", "--mem=64M", "--output=/dev/null"
    )
    cluster.wait_job(job, {"RUNNING"})
    return job


async def until_message(backend, prefix: str, timeout: float = 30) -> str:
    async def find():
        async for event in backend.progress():
            if event.message.startswith(prefix):
                return event.message
            assert not event.failed, event.message
        raise AssertionError(f"progress ended without {prefix!r}")

    return await asyncio.wait_for(find(), timeout)


@pytest.mark.slow
@pytest.mark.xdist_group("slurm")
def test_a_waiting_lab_shows_its_queue_reason_and_starts_when_the_node_is_free(
    hpc, slurm_cluster, tmp_path, monkeypatch
):
    async def scenario():
        blocker = occupy_node(slurm_cluster)
        backend = SlurmRuntime(hpc)
        starting = asyncio.create_task(backend.start(web_spec(tmp_path)))
        assert await until_message(backend, "waiting for resources: Resources")
        assert await backend.poll() is None and not starting.done()
        assert slurm_cluster.job_info(backend.job_id)["JobState"] == "PENDING"
        # No squeue from here until the lab answers on its socket (the usual order on a fast node): the
        # start must still say which node it runs on, from Slurm.
        monkeypatch.setattr(JobQueue, "base_interval", 120.0)
        monkeypatch.setattr(JobQueue, "stale", 120.0)
        slurm_cluster.run("scancel", blocker)
        endpoint = await asyncio.wait_for(starting, 60)
        assert (await get(endpoint, endpoint.headers)).status_code == 200
        messages = [event.message async for event in backend.progress()]
        assert messages[-2:] == [f"Running on localhost (Slurm job {backend.job_id})", "Ready"]
        await backend.stop()
        assert await backend.poll() is not None

    asyncio.run(scenario())


@pytest.mark.slow
@pytest.mark.xdist_group("slurm")
def test_a_desktop_lab_runs_as_a_job_and_its_screen_is_served_over_vnc(hpc, slurm_cluster, tmp_path):
    async def scenario():
        backend = SlurmRuntime(hpc)
        spec = dataclasses.replace(
            web_spec(tmp_path), kind="desktop", command=["xmessage", "from a Slurm node"], start_timeout=90
        )
        endpoint = await asyncio.wait_for(backend.start(spec), 120)
        try:
            assert endpoint.protocol == "vnc" and endpoint.socket == str(spec.runtime_dir / "vnc.sock")
            assert endpoint.secret and endpoint.secret in spec.secret
            assert slurm_cluster.job_info(backend.job_id)["JobState"] == "RUNNING"
            assert await asyncio.to_thread(x_windows, spec.runtime_dir, "xmessage")
            frame = await asyncio.to_thread(screenshot, endpoint.socket, endpoint.secret)
            assert frame.colours() > 2, "the screen is blank"
            again = SlurmRuntime(hpc)  # a restarted platform knows it as a desktop
            again.load_state(backend.get_state())
            assert again.endpoint() == endpoint
        finally:
            await backend.stop()
        assert await backend.poll() is not None

    asyncio.run(scenario())


@pytest.mark.slow
@pytest.mark.xdist_group("slurm")
def test_a_lab_cancelled_while_pending_fails_its_start_and_leaves_no_job(hpc, slurm_cluster, tmp_path):
    async def scenario():
        occupy_node(slurm_cluster)
        backend = SlurmRuntime(hpc)
        starting = asyncio.create_task(backend.start(web_spec(tmp_path)))
        await until_message(backend, "waiting for resources:")
        await backend.stop()
        with pytest.raises(StartError, match="cancelled before the lab was ready .*CANCELLED"):
            await asyncio.wait_for(starting, 30)
        assert await backend.poll() is not None
        assert slurm_cluster.job_info(backend.job_id)["JobState"] == "CANCELLED"
        await backend.stop()  # idempotent

    asyncio.run(scenario())


@pytest.mark.slow
@pytest.mark.xdist_group("slurm")
def test_a_controller_outage_never_ends_a_running_lab(hpc, slurm_cluster, tmp_path, monkeypatch):
    monkeypatch.setattr(JobQueue, "timeout", 2.0)  # squeue retries a down controller for ~18 s

    async def scenario():
        backend = SlurmRuntime(hpc)
        endpoint = await backend.start(web_spec(tmp_path))
        queue = JobQueue.of(str(slurm_cluster.conf))
        slurm_cluster.stop_controller()
        try:
            await queue.refresh()  # a real squeue against the stopped controller
            assert queue.last_error  # it failed...
            assert await backend.poll() is None  # ...and the lab still runs, as far as we know and in fact
            assert (await get(endpoint, endpoint.headers)).status_code == 200
        finally:
            slurm_cluster.start_controller()
        await queue.refresh()
        assert queue.last_error == "" and await backend.poll() is None
        await backend.stop()
        assert await backend.poll() is not None

    asyncio.run(scenario())


@pytest.mark.slow
@pytest.mark.xdist_group("slurm")
def test_a_restarted_platform_reattaches_to_a_pending_job_that_then_starts(hpc, slurm_cluster, tmp_path):
    async def scenario():
        blocker = occupy_node(slurm_cluster)
        first = SlurmRuntime(hpc)
        starting = asyncio.create_task(first.start(web_spec(tmp_path)))
        await until_message(first, "waiting for resources:")
        state = first.get_state()
        starting.cancel()  # the platform dies: nothing is cleaned up
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        second = SlurmRuntime()  # a restarted platform's default: the job's cluster comes from its state
        second.load_state(state)
        assert second.job_id == first.job_id and await second.poll() is None
        slurm_cluster.run("scancel", blocker)
        endpoint = await asyncio.wait_for(second.wait_started(), 60)
        assert endpoint == first.endpoint()
        assert (await get(endpoint, endpoint.headers)).status_code == 200
        assert [e async for e in second.progress()][-1].ready
        await second.stop()
        assert await second.poll() is not None

    asyncio.run(scenario())


@pytest.mark.slow
@pytest.mark.xdist_group("slurm")
def test_many_labs_are_polled_with_one_squeue(hpc, slurm_cluster, tmp_path):
    async def scenario():
        occupy_node(slurm_cluster)
        first = [SlurmRuntime(hpc) for _ in range(3)]
        starts = [asyncio.create_task(b.start(web_spec(tmp_path))) for b in first]
        for backend in first:
            await until_message(backend, "waiting for resources:")
        states = [b.get_state() for b in first]
        for start in starts:  # the platform restarts: its new backends only poll
            start.cancel()
        await asyncio.gather(*starts, return_exceptions=True)
        backends = [SlurmRuntime(hpc) for _ in states]
        for backend, state in zip(backends, states, strict=True):
            backend.load_state(state)
        queue = JobQueue.of(str(slurm_cluster.conf))
        await queue.settled()
        before = queue.queries
        await asyncio.sleep(queue.interval)  # the statuses are stale now
        assert await asyncio.gather(*(b.poll() for b in backends)) == [None, None, None]
        await queue.settled()
        assert queue.queries == before + 1  # one squeue for the three
        assert {queue.known[s["job_id"]].state for s in states} == {"PENDING"}
        await asyncio.gather(*(b.stop() for b in backends))
        assert {slurm_cluster.job_info(s["job_id"])["JobState"] for s in states} == {"CANCELLED"}

    asyncio.run(scenario())


def job_process_environ(spec_file: Path) -> dict[str, str]:
    """The environment of the job's `python -m datalabs.runtimes.slurm_job SPEC` process on the node."""
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if b"datalabs.runtimes.slurm_job" in argv and str(spec_file).encode() in argv:
                pairs = (item.split(b"=", 1) for item in (proc / "environ").read_bytes().split(b"\0") if item)
                return {k.decode(): v.decode(errors="replace") for k, v in pairs}
    raise AssertionError(f"no job process runs {spec_file}")


@pytest.mark.slow
@pytest.mark.xdist_group("slurm")
def test_the_platforms_environment_never_reaches_the_job_nor_a_login_environment(
    hpc, slurm_cluster, tmp_path, monkeypatch
):
    """The job's environment is what sbatch got (PATH, LANG) and Slurm's own variables: not the
    platform's (a secret in it stays there), and not root's login environment, which slurmd would load
    for --export=NIL (SLURM_GET_USER_ENV) at 0.5-2 s of every start."""
    monkeypatch.setenv("DATALABS_TEST_PLATFORM_SECRET", "never-in-a-job")

    async def scenario():
        backend = SlurmRuntime(hpc)
        spec = web_spec(tmp_path)
        await asyncio.wait_for(backend.start(spec), 60)
        env = job_process_environ(spec.log_path.parent / "slurm-spec.json")
        await backend.stop()
        return env

    env = asyncio.run(scenario())
    assert "DATALABS_TEST_PLATFORM_SECRET" not in env and "SLURM_GET_USER_ENV" not in env
    assert {k for k in env if not k.startswith(("SLURM_", "SLURMD_"))} <= {
        "PATH", "LANG", "ENVIRONMENT", "HOSTNAME", "TMPDIR", "CUDA_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL",
        "ROCR_VISIBLE_DEVICES", "ZES_AFFINITY_MASK", "OMPI_MCA_plm_slurm_args", "PWD",
    }, sorted(env)  # fmt: skip
    assert env["LANG"] == "C.UTF-8"


@pytest.mark.slow
@pytest.mark.xdist_group("slurm")
def test_gpus_are_asked_for_with_the_clusters_gres_type(slurm_cluster, tmp_path):
    async def scenario():
        options = {"slurm_conf": str(slurm_cluster.conf), "partition": "gpu", "gpu_type": "fake"}
        backend = SlurmRuntime(ClusterSettings(name="gpu", backend="slurm", options=options))
        await backend.start(web_spec(tmp_path, gpu=1))
        info = slurm_cluster.job_info(backend.job_id)
        assert (info["Partition"], info["TresPerNode"]) == ("gpu", "gres:gpu:fake:1")
        await backend.stop(now=True)

    try:
        asyncio.run(scenario())
    finally:
        slurm_cluster.cancel_all()


# ---- job scripts: no hostile value reaches them (no cluster needed) ---------------------------------

HOSTILE = ["debug\n#SBATCH --wrap=id", "--wrap=reboot", "$(touch /tmp/pwned)", "a b", "x;id", "`id`", "'q'"]


@pytest.mark.parametrize("field", ["partition", "account", "qos", "time_limit", "gpu_type"])
@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_cluster_option_that_bypassed_validation_is_refused(field, value, tmp_path):
    options = ClusterOptions.model_construct(**{field: value})  # as if the settings' checks were skipped
    cluster = ClusterSettings.model_construct(name="hpc", backend="slurm", options=options)
    with pytest.raises(StartError, match="refused to submit the job"):
        render_script(web_spec(tmp_path, gpu=1), cluster)


def test_the_labs_command_env_and_secret_never_reach_the_job_script(tmp_path):
    hostile = "$(touch /tmp/pwned)\n#SBATCH --wrap=id"
    spec = web_spec(tmp_path, command=["/bin/sh", "-c", hostile], gpu=2)
    spec = dataclasses.replace(spec, owner=hostile, env={"X": hostile})
    options = {
        "partition": "gpu",
        "account": "esa-sci",
        "qos": "normal",
        "time_limit": "1:00:00",
        "gpu_type": "a100",
    }
    script = render_script(spec, ClusterSettings(name="hpc", backend="slurm", options=options))
    assert "pwned" not in script and "wrap" not in script and spec.secret not in script
    directives = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert directives == [
        f"#SBATCH --job-name=datalabs-{spec.lab_id}",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --mem=1908M",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=esa-sci",
        "#SBATCH --qos=normal",
        "#SBATCH --time=1:00:00",
        "#SBATCH --gres=gpu:a100:2",
    ]
    assert script.splitlines()[-1] == 'exec "$1" -m datalabs.runtimes.slurm_job "$2"'  # paths as arguments


@pytest.mark.parametrize("lab_id", ["lab\n#SBATCH --wrap=id", "-lab", "$(id)", ""])
def test_a_lab_id_that_is_not_a_plain_name_is_refused(lab_id, tmp_path):
    spec = dataclasses.replace(web_spec(tmp_path), lab_id=lab_id)
    with pytest.raises(StartError, match="lab id .* is not a plain name"):
        render_script(spec, ClusterSettings(name="hpc", backend="slurm"))


@pytest.mark.parametrize(
    "resources", [{"cpu": float("nan")}, {"cpu": float("inf")}, {"cpu": 0}, {"memory_bytes": -1}, {"gpu": -1}]
)
def test_resources_out_of_range_are_refused(resources, tmp_path):
    spec = dataclasses.replace(web_spec(tmp_path), **resources)
    with pytest.raises(StartError, match="resources out of range"):
        render_script(spec, ClusterSettings(name="hpc", backend="slurm"))


@pytest.mark.parametrize("log", ["labs/x/lab.log", "/srv/labs/%j/lab.log", "/srv/labs/x\n/lab.log"])
def test_a_log_path_slurm_would_rewrite_is_refused_before_submitting(log, tmp_path):
    spec = dataclasses.replace(web_spec(tmp_path), log_path=Path(log))
    backend = SlurmRuntime(
        ClusterSettings(name="hpc", backend="slurm", options={"slurm_conf": "/nonexistent"})
    )
    with pytest.raises(StartError, match="is not a plain absolute path"):
        asyncio.run(backend.start(spec))
    assert backend.job_id is None and not (spec.log_path.parent / SCRIPT_FILE).exists()


def test_for_cluster_binds_the_cluster_for_argumentless_construction():
    cluster = ClusterSettings(name="hpc", backend="slurm", options={"partition": "debug"})
    assert SlurmRuntime.for_cluster(cluster)().cluster == cluster
    with pytest.raises(ValueError, match="not 'slurm'"):
        SlurmRuntime.for_cluster(ClusterSettings(name="here"))
