"""Both engines on the suite's real single-node Slurm cluster (tests/runtimes/slurm_cluster.py): cwltool
submits each step as a Slurm job that runs the same sandbox on the node, Toil runs with --batchSystem
slurm; a CUDARequirement step goes to the GPU partition with --gres; a cancel scancels the run's jobs; a
controller that cannot be reached is an infrastructure failure, not a hang."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from datalabs.clusters.settings import ClusterSettings
from datalabs.pipelines import documents
from datalabs.pipelines.engines.base import FAILED, INFRA, SUCCEEDED, RunSpec
from datalabs.pipelines.engines.cwltool import CwltoolEngine
from datalabs.pipelines.engines.toil import ToilEngine
from datalabs.sandbox.identity import of as identity_of
from datalabs.sandbox.policy import Policy

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("slurm"),
    pytest.mark.skipif(
        os.geteuid() != 0, reason="the test cluster and sandboxes with their own uid need root"
    ),
]

# echo -> wc: two steps, the second reads the first's output.
ECHO_WC = """cwlVersion: v1.2
class: Workflow
inputs: {text: string}
outputs:
  count: {type: File, outputSource: wc/out}
steps:
  echo:
    in: {text: text}
    out: [out]
    run:
      class: CommandLineTool
      baseCommand: [sh, -c, 'echo "$0"; echo "$0"; echo "host $(hostname) uid $(id -u)" >&2']
      arguments: [$(inputs.text)]
      stdout: echoed.txt
      inputs: {text: string}
      outputs: {out: {type: stdout}}
  wc:
    in: {f: echo/out}
    out: [out]
    run:
      class: CommandLineTool
      baseCommand: [wc, -l]
      stdin: $(inputs.f.path)
      stdout: count.txt
      inputs: {f: File}
      outputs: {out: {type: stdout}}
"""
GPU_STEP = """cwlVersion: v1.2
class: CommandLineTool
$namespaces: {cwltool: "http://commonwl.org/cwltool#"}
hints:
  cwltool:CUDARequirement:
    cudaVersionMin: "11.0"
    cudaComputeCapability: "7.0"
    cudaDeviceCountMin: 1
baseCommand: [sh, -c, 'echo "gpus=$CUDA_VISIBLE_DEVICES" > gpu.txt']
inputs: []
outputs:
  report: {type: File, outputBinding: {glob: gpu.txt}}
"""
SLEEP = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sleep, '300']
inputs: []
outputs: []
"""


def cluster_of(slurm_cluster, shared: Path, **options) -> ClusterSettings:
    return ClusterSettings(
        name="hpc",
        backend="slurm",
        options={"slurm_conf": str(slurm_cluster.conf), "shared_dirs": [str(shared)], **options},
    )


def spec_of(tmp_path: Path, cwl: str, job: dict, cluster, run_id: str) -> RunSpec:
    doc = documents.load_text("pipeline.cwl", cwl)
    path = documents.materialise(tmp_path / "docs", 1, doc.packed)
    ada = identity_of(1_000_000_000, 1_500_000_000, 7, "ada", [])
    attempt = tmp_path / "runs" / run_id / "attempt-1"
    return RunSpec(
        run_id,
        1,
        path,
        job,
        attempt / "work",
        attempt / "out",
        tmp_path / "runs" / run_id / "run.log",
        sandbox=True,
        parallel=documents.main_process(doc.packed).get("class") == "Workflow",
        policy=Policy(identity=ada, pids_max=256),
        cluster=cluster,
    )


def run_to_end(engine, spec: RunSpec, timeout: float = 240):
    spec.log.parent.mkdir(parents=True, exist_ok=True)
    try:
        result = engine.wait(engine.submit(spec), timeout)
    finally:
        engine.close()
    assert result is not None, spec.log.read_text()
    return result


def jobs_of(slurm_cluster, run_id: str) -> list[dict[str, str]]:
    """The run's finished jobs from the jobcomp log (sacct's stand-in); cwltool names them by the run."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [j for j in slurm_cluster.completed_jobs() if j.get("Name") == f"datalabs-run-{run_id}"]
        if found:
            return found
        time.sleep(0.2)
    return []


def test_cwltool_runs_each_step_as_a_slurm_job_in_the_node_sandbox(slurm_cluster, tmp_path):
    spec = spec_of(tmp_path, ECHO_WC, {"text": "hello"}, cluster_of(slurm_cluster, tmp_path), "cw1")
    result = run_to_end(CwltoolEngine(), spec)
    log = spec.log.read_text()
    assert result.state == SUCCEEDED, log
    assert Path(result.outputs["count"]["location"][7:]).read_text().strip() == "2"
    assert "host cwl-tool uid 1000000007" in log  # as the run's owner, in its sandbox, on the node
    jobs = jobs_of(slurm_cluster, "cw1")
    assert len(jobs) == 2 and {j["JobState"] for j in jobs} == {"COMPLETED"}, jobs
    assert {j["Partition"] for j in jobs} == {"debug"}


@pytest.mark.parametrize("engine", [CwltoolEngine, ToilEngine])
def test_a_cuda_step_goes_to_the_gpu_partition_with_gres(slurm_cluster, tmp_path, engine):
    cluster = cluster_of(slurm_cluster, tmp_path, partition="debug", gpu_partition="gpu")
    run_id = f"gpu-{engine.name}"
    before = {j["JobId"] for j in slurm_cluster.completed_jobs()}
    spec = spec_of(tmp_path, GPU_STEP, {}, cluster, run_id)
    result = run_to_end(engine(), spec, timeout=300)
    assert result.state == SUCCEEDED, spec.log.read_text()
    # Slurm gave the step one of the node's (fake) GPUs: their index is set for the tool.
    assert Path(result.outputs["report"]["location"][7:]).read_text().strip() in ("gpus=0", "gpus=1")
    deadline = time.monotonic() + 30
    while not (ran := [j for j in slurm_cluster.completed_jobs() if j["JobId"] not in before]):
        assert time.monotonic() < deadline, "no Slurm job of the run finished"
        time.sleep(0.2)
    for job in ran:
        info = slurm_cluster.job_info(job["JobId"])  # scontrol: the jobcomp line has no GRES
        assert job["Partition"] == "gpu" and info["TresPerNode"].startswith("gres:gpu:1"), info
        assert info["Comment"] == f"datalabs-run-{run_id}"


@pytest.mark.parametrize("engine_class", [CwltoolEngine, ToilEngine])
def test_cancel_scancels_the_runs_jobs(slurm_cluster, tmp_path, engine_class):
    spec = spec_of(tmp_path, SLEEP, {}, cluster_of(slurm_cluster, tmp_path), f"cancel-{engine_class.name}")
    spec.log.parent.mkdir(parents=True, exist_ok=True)
    engine = engine_class()
    try:
        handle = engine.submit(spec)
        deadline = time.monotonic() + 120
        while not slurm_cluster.queued() and time.monotonic() < deadline:
            time.sleep(0.1)
        (job,) = slurm_cluster.queued()
        slurm_cluster.wait_job(job, {"RUNNING"})
        engine.cancel(handle)
        result = engine.wait(handle, 60)
    finally:
        engine.close()
    assert result is not None and result.state == FAILED and result.reason == "cancelled"
    assert slurm_cluster.wait_job(job, {"CANCELLED", "FAILED", "COMPLETED"})["JobState"] == "CANCELLED"
    assert slurm_cluster.queued() == []


@pytest.mark.parametrize("engine", [CwltoolEngine, ToilEngine])
def test_an_unreachable_controller_is_an_infrastructure_failure_not_a_hang(slurm_cluster, tmp_path, engine):
    # A cluster whose configuration names no running controller: srun cannot submit the step. Each Slurm
    # command retries the connection for MessageTimeout - 1 seconds (9 s by default) before it fails; 2 s
    # here: nothing answers anyway, and Toil's retries then fit its own limit with fewer rounds.
    conf = tmp_path / "elsewhere.conf"
    text = slurm_cluster.conf.read_text()
    conf.write_text(
        text.replace(f"SlurmctldPort={slurm_cluster.ctld_port}", "SlurmctldPort=9") + "MessageTimeout=2\n"
    )
    cluster = ClusterSettings(
        name="hpc", backend="slurm", options={"slurm_conf": str(conf), "shared_dirs": [str(tmp_path)]}
    )
    spec = spec_of(tmp_path, ECHO_WC, {"text": "x"}, cluster, "down1")
    result = run_to_end(engine(), spec, timeout=300)
    assert result.state == INFRA, spec.log.read_text()
    assert "hpc" in result.reason and "Slurm" in result.reason, result.reason


def test_toil_runs_the_workflow_with_its_slurm_batch_system(slurm_cluster, tmp_path):
    spec = spec_of(tmp_path, ECHO_WC, {"text": "hello"}, cluster_of(slurm_cluster, tmp_path), "toil1")
    before = {j["JobId"] for j in slurm_cluster.completed_jobs()}
    result = run_to_end(ToilEngine(), spec, timeout=400)
    log = spec.log.read_text()
    assert result.state == SUCCEEDED, log
    assert Path(result.outputs["count"]["location"][7:]).read_text().strip() == "2"
    assert "host cwl-tool uid 1000000007" in log  # Toil's worker ran the tool in the run owner's sandbox
    deadline = time.monotonic() + 30
    while not (ran := [j for j in slurm_cluster.completed_jobs() if j["JobId"] not in before]):
        assert time.monotonic() < deadline, "no Slurm job of the run finished"
        time.sleep(0.2)
    # Toil's workers were Slurm jobs (Toil chains the two steps into one job when it can), each carrying
    # the run's comment, by which a cancel finds them.
    assert all(j["Name"].startswith("toil_job_") for j in ran), ran
    assert {slurm_cluster.job_info(j["JobId"])["Comment"] for j in ran} == {"datalabs-run-toil1"}
