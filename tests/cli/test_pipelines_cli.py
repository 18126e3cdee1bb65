"""`datalabs cwl-runner`, `datalabs pipelines|runs ...` and the Python client against a live platform."""

from __future__ import annotations

import json

import pytest

from tests.cli.test_cli import run
from tests.live import live_server

pytestmark = pytest.mark.slow

TOOL = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [wc, -l]
stdout: lines.txt
inputs:
  data: {type: File, inputBinding: {position: 1}}
outputs:
  lines: {type: stdout}
"""
BROKEN = TOOL.replace("baseCommand: [wc, -l]", "baseCommand: [sh, -c, 'echo no such station >&2; exit 2']")
DOCKER = TOOL.replace(
    "baseCommand:", "requirements:\n  DockerRequirement: {dockerPull: alpine}\nbaseCommand:"
)


def test_cwl_runner_pipelines_and_client(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    run(home, "admin", "create-user", "ada", "--password", "long-enough-pw")
    token = run(home, "admin", "create-token", "ada").stdout.strip()
    local = tmp_path / "local"
    local.mkdir()
    (local / "tool.cwl").write_text(TOOL)
    (local / "broken.cwl").write_text(BROKEN)
    (local / "docker.cwl").write_text(DOCKER)
    (local / "obs.txt").write_text("1\n2\n3\n4\n")
    (local / "job.yml").write_text("data: {class: File, location: obs.txt}\n")
    out = tmp_path / "out"
    with live_server(home) as url:
        env = {"DATALABS_API_URL": url, "DATALABS_TOKEN": token, "DATALABS_CREDENTIALS": str(tmp_path / "c")}
        done = run(
            home, "cwl-runner", "--outdir", str(out), str(local / "tool.cwl"), str(local / "job.yml"), env=env
        )
        result = json.loads(done.stdout)
        assert result["lines"]["path"] == str(out / "lines.txt")
        assert (out / "lines.txt").read_text().startswith("4 ")
        failed = run(
            home, "cwl-runner", str(local / "broken.cwl"), str(local / "job.yml"), env=env, check=False
        )
        assert failed.returncode == 1 and "no such station" in failed.stderr
        unsupported = run(
            home, "cwl-runner", str(local / "docker.cwl"), str(local / "job.yml"), env=env, check=False
        )
        assert unsupported.returncode == 33 and "DockerRequirement" in unsupported.stderr

        listed = run(home, "pipelines", "ls", "--kind", "system", env=env).stdout
        assert "hello-world" in listed and "rinex-summary" in listed
        hello = run(home, "pipelines", "run", "hello-world", "text=From the CLI", env=env).stdout
        assert "me/pipelines/hello-world/" in hello
        runs = json.loads(run(home, "runs", "ls", "--json", env=env).stdout)
        latest = next(r for r in runs if r["pipeline"] == "hello-world")
        follow = run(home, "runs", "logs", "--follow", latest["id"], env=env)
        assert "From the CLI" in follow.stdout and "succeeded" in follow.stderr
        placed = run(home, "pipelines", "run", "hello-world", "--cluster", "local", "--no-wait", env=env)
        run_id = placed.stdout.split()[1]
        assert json.loads(run(home, "runs", "show", run_id, env=env).stdout)["cluster"] == "local"
        refused = run(home, "pipelines", "run", "hello-world", "--cluster", "mars", env=env, check=False)
        assert refused.returncode != 0 and "no cluster named 'mars' (yours: local)" in refused.stderr

        from datalabs.client import Client

        with Client(url, token) as client:
            names = [p.name for p in client.pipelines.get_system_pipelines()]
            assert "fits-thumbnail" in names
            pipeline = client.pipelines.load_system_pipeline("hello-world")
            outputs = pipeline.run({"text": "notebook"}, wait=True)
            assert client.download(outputs["banner"]["location"]).decode().count("notebook") == 1
            queued = pipeline.run({"text": "later"}, wait=False)
            assert "later" in queued.wait().logs()
