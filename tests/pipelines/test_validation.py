"""Bad input never queues anything: malformed CWL, unknown or mistyped inputs, missing or forbidden files."""

from __future__ import annotations

import pytest

from tests.pipelines.conftest import COUNT, HELLO, register


def _runs(client) -> list:
    return client.get("/api/v1/runs").json()


@pytest.mark.parametrize(
    ("cwl", "code", "fragment"),
    [
        (
            "cwlVersion: v1.2\nclass: CommandLineTool\n  inputs: [\n",
            "invalid_cwl",
            "bad.cwl:3:9: not valid YAML",
        ),
        ("class: CommandLineTool\ninputs: []\noutputs: []\n", "invalid_cwl", "missing 'cwlVersion'"),
        (
            "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: echo\n"
            "inputs:\n  a: {type: strin}\noutputs: []\n",
            "invalid_cwl",
            "bad.cwl:5:7",
        ),
        (
            "cwlVersion: v1.2\nclass: CommandLineTool\n"
            "requirements:\n  DockerRequirement: {dockerPull: alpine}\n"
            "baseCommand: echo\ninputs: []\noutputs: []\n",
            "unsupported_requirement",
            "requires DockerRequirement",
        ),
        (
            "cwlVersion: v1.2\nclass: Workflow\ninputs: []\noutputs: []\nsteps:\n"
            "  s: {run: /etc/hostname, in: {}, out: []}\n",
            "invalid_cwl",
            "bad.cwl:6:",
        ),
    ],
)
def test_malformed_cwl_is_refused_with_file_and_line(people, cwl, code, fragment):
    people.user("ada")
    ada = people.login("ada")
    r = ada.post("/api/v1/pipelines", json={"name": "bad", "cwl": cwl, "filename": "bad.cwl"})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == code and fragment in err["message"], err
    assert "/tmp/" not in err["message"]  # no host paths
    assert ada.get("/api/v1/pipelines/bad").status_code == 404
    v = ada.post("/api/v1/pipelines/validate", json={"cwl": cwl, "filename": "bad.cwl"})
    assert v.status_code == 422 and v.json()["error"]["code"] == code


@pytest.mark.parametrize(
    ("inputs", "code", "fragment"),
    [
        ({"txt": "x"}, "unknown_input", "unknown input 'txt'; this pipeline takes: text"),
        ({"text": 5}, "bad_input", "input 'text': expected string, got 5"),
        ({"text": ["a"]}, "bad_input", "input 'text': expected string"),
    ],
)
def test_unknown_or_mistyped_inputs_queue_nothing(people, inputs, code, fragment):
    people.user("ada")
    ada = people.login("ada")
    register(ada, "hello", HELLO)
    r = ada.post("/api/v1/pipelines/hello/runs", json={"inputs": inputs})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == code and fragment in r.json()["error"]["message"]
    assert _runs(ada) == []


def test_missing_required_input_and_files(people, settings):
    people.user("ada")
    people.user("bob")
    ada = people.login("ada")
    register(ada, "count", COUNT)
    r = ada.post("/api/v1/pipelines/count/runs", json={"inputs": {}})
    assert r.status_code == 422 and "input 'data' (File) is required" in r.json()["error"]["message"]
    r = ada.post("/api/v1/pipelines/count/runs", json={"inputs": {"data": "me/nope.txt"}})
    assert r.status_code == 404 and "input 'data': 'nope.txt' does not exist" in r.json()["error"]["message"]
    r = ada.post("/api/v1/pipelines/count/runs", json={"inputs": {"data": "/etc/passwd"}})
    assert r.status_code == 422 and r.json()["error"]["code"] in ("bad_file_reference", "bad_path")
    r = ada.post("/api/v1/pipelines/count/runs", json={"inputs": {"data": "me/../../bob/secret.txt"}})
    assert r.status_code == 422
    # Another user's workspace, a team she is not in, a volume she may not read: all invisible.
    for ref in ("team:astro/x.txt", "volume:Secret/x.txt"):
        r = ada.post("/api/v1/pipelines/count/runs", json={"inputs": {"data": ref}})
        assert r.status_code == 404, r.text
        assert r.json()["error"]["message"].startswith("input 'data':")
    # A symbolic link planted in the workspace is never followed.
    ws = settings.home / "workspaces/users/ada"
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "link.txt").symlink_to("/etc/hostname")
    r = ada.post("/api/v1/pipelines/count/runs", json={"inputs": {"data": "me/link.txt"}})
    assert r.status_code == 403 and r.json()["error"]["code"] == "symlink"
    bad_out = ada.post(
        "/api/v1/pipelines/count/runs", json={"inputs": {"data": "me/link.txt"}, "output_dir": "x"}
    )
    assert bad_out.status_code in (403, 404, 422)
    assert _runs(ada) == []


def test_bad_notify_timeout_and_schedule_are_refused(people):
    people.user("ada")
    ada = people.login("ada")
    register(ada, "hello", HELLO)
    for body, code in (
        ({"notify": {"on": ["sometimes"]}}, "bad_notify"),
        ({"notify": {"email": ["not-an-address"]}}, "bad_notify"),
        ({"notify": {"webhooks": ["ftp://x"]}}, "bad_notify"),
        ({"notify": {"webhooks": ["http://169.254.169.254/latest/meta-data"]}}, "bad_notify"),  # SSRF
        ({"notify": {"webhooks": ["http://[::1]:8000/admin"]}}, "bad_notify"),
        ({"timeout": 0}, "bad_timeout"),
        ({"engine": "spark"}, "unknown_engine"),
        ({"version": "9.9"}, "version_not_found"),
    ):
        r = ada.post("/api/v1/pipelines/hello/runs", json=body)
        assert r.json()["error"]["code"] == code, (body, r.text)
    r = ada.post("/api/v1/pipelines/hello/schedules", json={"cron": "every day", "inputs": {}})
    assert r.status_code == 422 and r.json()["error"]["code"] == "bad_cron"
    internal = {"cron": "0 3 * * *", "inputs": {}, "notify": {"webhooks": ["http://10.0.0.5/hook"]}}
    r = ada.post("/api/v1/pipelines/hello/schedules", json=internal)
    assert r.status_code == 422 and "internal address 10.0.0.5" in r.json()["error"]["message"]
    assert ada.get("/api/v1/pipelines/hello/schedules").json() == []
    assert _runs(ada) == []


def test_versions_are_immutable_and_only_owners_push(people):
    people.user("ada")
    people.user("bob")
    ada, bob = people.login("ada"), people.login("bob")
    register(ada, "hello", HELLO, allowed_users=["bob"])
    body = {"version": "1.0", "cwl": HELLO}
    assert ada.post("/api/v1/pipelines/hello/versions", json=body).json()["error"]["code"] == "version_exists"
    assert bob.post("/api/v1/pipelines/hello/versions", json={**body, "version": "2.0"}).status_code == 403
    r = ada.post("/api/v1/pipelines/hello/versions", json={**body, "version": "2.0", "notes": "louder"})
    assert r.status_code == 201 and r.json()["versions"] == ["1.0", "2.0"]
    assert [v["version"] for v in bob.get("/api/v1/pipelines/hello/versions").json()] == ["1.0", "2.0"]
    assert ada.post("/api/v1/pipelines", json={"name": "hello", "cwl": HELLO}).status_code == 409
    assert ada.post("/api/v1/pipelines", json={"name": "x", "cwl": HELLO, "system": True}).status_code == 403


@pytest.mark.parametrize(
    "reference",
    ["run: ../../secret.cwl", "run: /etc/x.cwl", "$include: ../notes.txt", "$import: file:///etc/passwd"],
)
def test_a_workspace_folder_cannot_reach_outside_itself(people, reference):
    """The folder is copied aside and validated there: its documents may name each other, nothing else
    of the workspace or the host."""
    people.user("ada")
    ada = people.login("ada")
    key, value = reference.split(": ")
    step = f"steps:\n  s:\n    run: {value}\n    in: []\n    out: []\n"
    flow = "cwlVersion: v1.2\nclass: Workflow\ninputs: []\noutputs: []\n"
    text = (
        flow + step
        if key == "run"
        else HELLO.replace("inputs:", f"hints:\n  x:\n    {key}: {value}\ninputs:")
    )
    assert ada.put("/api/v1/workspaces/me/files/notes.txt", content=b"PRIVATE NOTES").status_code in (
        200,
        201,
    )
    assert ada.put("/api/v1/workspaces/me/files/cwl/sub/main.cwl", content=text).status_code in (200, 201)
    r = ada.post("/api/v1/pipelines", json={"name": "escape", "workspace_path": "me/cwl/sub"})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_cwl" and err["message"].startswith("main.cwl:"), err
    assert f"{key} '{value}' is outside the pipeline's folder" in err["message"]
    assert "PRIVATE NOTES" not in r.text and "/tmp" not in err["message"]


def test_register_from_a_workspace_folder(people, settings):
    people.user("ada")
    ada = people.login("ada")
    tool = HELLO
    flow = (
        "cwlVersion: v1.2\nclass: Workflow\ninputs: {text: string}\n"
        "outputs: {out: {type: File, outputSource: say/banner}}\n"
        "steps:\n  say: {run: tools/hello.cwl, in: {text: text}, out: [banner]}\n"
    )
    assert ada.put("/api/v1/workspaces/me/files/cwl/tools/hello.cwl", content=tool).status_code in (200, 201)
    assert ada.put("/api/v1/workspaces/me/files/cwl/main.cwl", content=flow).status_code in (200, 201)
    r = ada.post("/api/v1/pipelines", json={"name": "flow", "workspace_path": "me/cwl"})
    assert r.status_code == 201, r.text
    assert r.json()["cwl_class"] == "Workflow"
    g = ada.get("/api/v1/pipelines/flow/graph").json()
    assert {"from": "in:text", "to": "say", "port": "text"} in g["edges"]
    svg = ada.get("/api/v1/pipelines/flow/graph", params={"format": "svg"})
    assert svg.headers["content-type"].startswith("image/svg+xml") and "<svg" in svg.text
    assert "tools/hello.cwl" in ada.get("/api/v1/pipelines/flow/code").text
