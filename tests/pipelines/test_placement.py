"""pipelines/placement.py and the Slurm argv both engines build from it: shared storage checked by real
paths (no prefix or link tricks), and no value - even one that bypassed the settings' validation - that
could add an option or a shell word to srun's or Toil's Slurm arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from datalabs.clusters.settings import ClusterOptions, ClusterSettings
from datalabs.pipelines import placement
from datalabs.pipelines.engines import slurm_step, toil_slurm
from datalabs.pipelines.engines.base import RunSpec
from datalabs.runtimes.base import StartError

HOSTILE = ["debug --uid=0", "debug\n#SBATCH --uid=0", "-p gpu", "$(id)", "debug;id", "a b", ""]


def hpc(**options) -> ClusterSettings:
    return ClusterSettings(name="hpc", backend="slurm", options=options)


def bypassed(**options) -> ClusterSettings:
    """Options as a future field or a careless caller could make them: never validated."""
    return hpc().model_copy(update={"options": ClusterOptions.model_construct(**options)})


def test_run_folders_must_lie_below_a_shared_dir_by_their_real_path(tmp_path):
    shared, elsewhere = tmp_path / "shared", tmp_path / "shared-not"
    (shared / "runs").mkdir(parents=True)
    elsewhere.mkdir()
    (shared / "runs" / "escape").symlink_to(elsewhere)
    cluster = hpc(shared_dirs=[str(shared)])
    placement.check_shared(cluster, {"work folder": shared / "runs" / "r1", "output folder": shared})
    # A sibling whose name starts like the shared folder, and a link out of it: both refused.
    for folder in (elsewhere / "r1", shared / "runs" / "escape" / "r1"):
        with pytest.raises(placement.NotShared) as refused:
            placement.check_shared(cluster, {"work folder": folder})
        message = str(refused.value)
        assert f"work folder {elsewhere / 'r1'}" in message and f"shared_dirs: {shared}" in message
    with pytest.raises(placement.NotShared, match=r"options.shared_dirs: none configured\); nothing"):
        placement.check_shared(hpc(), {"work folder": shared})


@pytest.mark.parametrize("run_id", ["r1 --uid=0", "-r1", "r1\n", "r/1", "", "r" * 65])
def test_a_run_id_that_is_not_a_plain_name_never_becomes_a_job_comment(run_id):
    with pytest.raises(ValueError, match="not a plain name"):
        placement.job_comment(run_id)


def test_the_clusters_options_become_checked_arguments_gpus_on_the_gpu_partition():
    cluster = hpc(partition="debug", gpu_partition="gpu", account="esa", qos="normal", time_limit="1:00:00")
    plain = ["--partition=debug", "--account=esa", "--qos=normal", "--time=1:00:00"]
    assert placement.slurm_options(cluster) == plain
    assert placement.slurm_options(cluster, gpus=2) == ["--partition=gpu", *plain[1:], "--gres=gpu:2"]
    typed = hpc(partition="debug", gpu_type="a100")  # no GPU partition: the partition, with the type
    assert placement.slurm_options(typed, gpus=1) == ["--partition=debug", "--gres=gpu:a100:1"]


@pytest.mark.parametrize("field", ["partition", "gpu_partition", "account", "qos", "time_limit", "gpu_type"])
@pytest.mark.parametrize("value", [v for v in HOSTILE if v])
def test_a_hostile_option_that_bypassed_validation_is_refused_by_both_engines(field, value, tmp_path):
    cluster = bypassed(**{field: value, "shared_dirs": [str(tmp_path)]})
    with pytest.raises(StartError, match="is not a plain Slurm value"):
        slurm_step.srun_argv(cluster, "r1", tmp_path / "step.json", cores=1, ram_mib=100, gpus=1)
    spec = RunSpec("r1", 1, tmp_path / "doc.cwl", {}, tmp_path / "work", tmp_path / "out", tmp_path / "log")
    if field in ("partition", "gpu_partition", "account", "qos", "time_limit"):
        with pytest.raises(StartError, match="is not a plain Slurm value"):
            toil_slurm.batch_options(spec, cluster)


def test_srun_runs_the_node_step_with_the_resources_and_nothing_of_the_command(tmp_path):
    argv = slurm_step.srun_argv(
        hpc(partition="debug"), "r1", Path("/s/step.json"), cores=1.5, ram_mib=300.2, gpus=0
    )
    assert argv[:7] == [
        "srun",
        "--quiet",
        "--ntasks=1",
        "--job-name=datalabs-run-r1",
        "--comment=datalabs-run-r1",
        "--cpus-per-task=2",
        "--mem=301M",
    ]
    assert argv[7:] == [
        "--partition=debug",
        argv[8],
        "-m",
        "datalabs.pipelines.engines.slurm_step",
        "/s/step.json",
        "--",
    ]  # cwltool appends the tool's command after '--': srun never reads it as its own options
