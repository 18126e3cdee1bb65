"""`[[clusters]]` settings: read from datalabs.toml, a default `local` cluster, and backend options held
to forms that are safe to write into Slurm job scripts (hostile values refused, naming the field)."""

import pytest
from pydantic import ValidationError

from datalabs.clusters.settings import ClusterOptions, ClusterSettings, time_limit_seconds
from datalabs.config import Settings

TOML = """
[[clusters]]
name = "local"

[[clusters]]
name = "hpc"
title = "HPC cluster"
backend = "slurm"
allowed_groups = ["astro", "optics"]
[clusters.options]
partition = "debug,long"
account = "esa-sci"
qos = "normal"
time_limit = "1-00:00:00"
gpu_type = "a100"
gpu_partition = "gpu"
slurm_conf = "/etc/slurm/hpc.conf"
shared_dirs = ["/shared"]
[clusters.resources.default]
cpu = 2
memory = "4G"
[clusters.resources.maximum]
cpu = 32
memory = "128G"
gpu = 4
"""


def slurm(**options) -> ClusterSettings:
    return ClusterSettings(name="hpc", backend="slurm", options=options)


def test_clusters_are_read_from_datalabs_toml(tmp_path, monkeypatch):
    (tmp_path / "datalabs.toml").write_text(TOML)
    monkeypatch.setenv("DATALABS_CONFIG", str(tmp_path / "datalabs.toml"))

    local, hpc = Settings(home=tmp_path).clusters

    assert (local.name, local.title, local.backend) == ("local", "local", "local")
    assert (hpc.title, hpc.backend, hpc.allowed_groups) == ("HPC cluster", "slurm", ["astro", "optics"])
    assert hpc.options.model_dump() == {
        "partition": "debug,long",
        "account": "esa-sci",
        "qos": "normal",
        "time_limit": "1-00:00:00",
        "gpu_type": "a100",
        "gpu_partition": "gpu",
    }
    assert hpc.options.slurm_conf == "/etc/slurm/hpc.conf"  # kept, but never dumped (a server path)
    assert hpc.options.shared_dirs == ["/shared"]  # likewise
    assert hpc.resources.default.cpu == 2
    assert (hpc.resources.maximum.memory, hpc.resources.maximum.gpu) == ("128G", 4)


@pytest.mark.parametrize("configured", [None, []])
def test_without_clusters_there_is_one_local_cluster(tmp_path, configured):
    extra = {} if configured is None else {"clusters": configured}
    (cluster,) = Settings(home=tmp_path, **extra).clusters
    assert (cluster.name, cluster.backend, cluster.allowed_groups) == ("local", "local", [])


@pytest.mark.parametrize(
    "time_limit", ["30", "30:00", "8:00:00", "2-12", "2-12:30", "1-00:00:00", "UNLIMITED", "INFINITE"]
)
def test_sbatch_time_forms_are_accepted(time_limit):
    assert slurm(time_limit=time_limit).options.time_limit == time_limit


HOSTILE = [
    "gpu\n#SBATCH --uid=0",
    "--wrap=id",
    "-pdebug",
    "$(reboot)",
    "`id`",
    "debug; rm -rf /",
    "debug long",
    "debug\tlong",
    "a" * 65,
    "gpu|sh",
    "../etc",
]


@pytest.mark.parametrize("field", ["partition", "account", "qos", "gpu_type", "time_limit"])
@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_backend_options_are_refused_naming_the_field(field, value):
    with pytest.raises(ValidationError) as refused:
        slurm(**{field: value})
    message = str(refused.value)
    assert f"{field} " in message and "refused" in message
    assert "\n#SBATCH" not in message  # the value is shown escaped, never as a line of its own


@pytest.mark.parametrize("partition", ["debug,", ",debug", "debug,,long", "debug,--wrap=id"])
def test_a_partition_list_of_anything_but_names_is_refused(partition):
    with pytest.raises(ValidationError, match="partition .* refused: a comma-separated list of names"):
        slurm(partition=partition)


@pytest.mark.parametrize("name", ["HPC", "hpc cluster", "-hpc", "hpc\n", "$(id)", "h" * 65, ""])
def test_cluster_names_follow_the_datalab_name_pattern(name):
    with pytest.raises(ValidationError, match="name .* refused"):
        ClusterSettings(name=name)


def test_allowed_groups_must_be_group_names():
    with pytest.raises(ValidationError, match="allowed_groups 'astro team' refused"):
        ClusterSettings(name="hpc", allowed_groups=["astro team"])


def test_slurm_options_on_a_local_cluster_are_refused():
    with pytest.raises(ValidationError, match="options partition apply to Slurm clusters"):
        ClusterSettings(name="here", options={"partition": "debug"})


def test_unknown_keys_are_refused_not_ignored():
    with pytest.raises(ValidationError, match="sbatch_args"):
        ClusterSettings(name="hpc", backend="slurm", options={"sbatch_args": "--uid=0"})
    with pytest.raises(ValidationError, match="backend"):
        ClusterSettings(name="k8s", backend="kubernetes")


def test_a_name_configured_twice_is_refused(tmp_path):
    with pytest.raises(ValidationError, match="name hpc is configured more than once"):
        Settings(home=tmp_path, clusters=[{"name": "hpc"}, {"name": "hpc", "backend": "slurm"}])


def test_default_resources_above_the_maximum_are_refused():
    resources = {"default": {"cpu": 8}, "maximum": {"cpu": 4}}
    with pytest.raises(ValidationError, match="default resources exceed the maximum"):
        ClusterSettings(name="hpc", resources=resources)


def test_the_slurm_config_file_is_an_absolute_path_kept_out_of_dumps():
    options = slurm(slurm_conf="/etc/slurm/hpc.conf").options
    assert options.slurm_conf == "/etc/slurm/hpc.conf" and "slurm_conf" not in options.model_dump()


def test_a_slurm_config_on_a_local_cluster_is_refused():
    with pytest.raises(ValidationError, match="options slurm_conf apply to Slurm clusters"):
        ClusterSettings(name="here", options={"slurm_conf": "/etc/slurm/slurm.conf"})


@pytest.mark.parametrize("path", ["slurm.conf", "/etc/slurm/../x", "/etc/slurm.conf\n#SBATCH", "/a\x00b"])
def test_a_slurm_config_that_is_not_a_plain_absolute_path_is_refused(path):
    with pytest.raises(ValidationError, match="slurm_conf .* refused: an absolute path"):
        slurm(slurm_conf=path)


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_gpu_partition_is_refused(value):
    with pytest.raises(ValidationError, match="gpu_partition .* refused"):
        slurm(gpu_partition=value)


def test_shared_dirs_are_absolute_plain_paths_kept_out_of_dumps():
    options = slurm(shared_dirs=["/shared/home/", "/scratch"], gpu_partition="gpu,gpu2").options
    assert options.shared_dirs == ["/shared/home", "/scratch"]  # compared as prefixes: no trailing '/'
    assert "shared_dirs" not in options.model_dump() and options.model_dump()["gpu_partition"] == "gpu,gpu2"


@pytest.mark.parametrize("path", ["shared", "/", "//", "/a/../etc", "/job%j", "/a\nb", "/a\x00b"])
def test_a_shared_dir_that_is_not_a_plain_absolute_path_is_refused(path):
    with pytest.raises(ValidationError, match="shared_dirs .* refused: an absolute path"):
        slurm(shared_dirs=[path])


def test_shared_dirs_on_a_local_cluster_are_refused():
    with pytest.raises(ValidationError, match="options shared_dirs apply to Slurm clusters"):
        ClusterSettings(name="here", options={"shared_dirs": ["/shared"]})


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("", None),
        ("UNLIMITED", None),
        ("90", 90 * 60),
        ("90:30", 90 * 60 + 30),
        ("8:00:00", 8 * 3600),
        ("1-00", 24 * 3600),
        ("1-2:30", 26 * 3600 + 30 * 60),
        ("2-01:02:03", 2 * 86400 + 3600 + 2 * 60 + 3),
    ],
)
def test_time_limits_in_sbatch_forms_become_seconds(text, seconds):
    assert ClusterOptions(time_limit=text).time_limit == text  # every form here is one sbatch takes
    assert time_limit_seconds(text) == seconds


# ---- endpoint "port" (runtimes/slurm_port.py): how jobs reach the platform, and on which ports ------------


def test_a_port_endpoint_keeps_its_address_and_ports_out_of_dumps():
    options = slurm(endpoint="port", callback_url="http://10.0.0.1:8000/", port_range="40000-40999").options
    assert (options.endpoint, options.callback_url, options.port_range) == (
        "port",
        "http://10.0.0.1:8000",  # a base URL: the job adds /api/v1/labs/<id>/callback
        "40000-40999",
    )
    assert not {"endpoint", "callback_url", "port_range"} & options.model_dump().keys()
    assert slurm().options.endpoint == "socket"  # the default: as before


@pytest.mark.parametrize(
    "url",
    [
        "ftp://platform",
        "http://user:pw@platform",  # credentials
        "http://platform/?next=evil",  # a query
        "http://platform/#x",
        "http://platform\n",
        "javascript:alert(1)",
        "platform:8000",
        "http://plat form",
        "http://" + "a" * 300,
    ],
)
def test_a_callback_url_that_is_not_a_plain_http_address_is_refused(url):
    with pytest.raises(ValidationError, match="callback_url .* refused"):
        slurm(callback_url=url)


@pytest.mark.parametrize("ports", ["80-90", "1023-2000", "5000-4000", "40000-70000", "40000", "4e4-5e4"])
def test_a_port_range_of_anything_but_unprivileged_ports_low_to_high_is_refused(ports):
    with pytest.raises(ValidationError, match="port_range .* refused"):
        slurm(port_range=ports)


@pytest.mark.parametrize("option", [{"endpoint": "port"}, {"port_range": "40000-40999"}])
def test_port_options_on_a_local_cluster_are_refused(option):
    with pytest.raises(ValidationError, match=f"options {next(iter(option))} apply to Slurm clusters"):
        ClusterSettings(name="here", options=option)
