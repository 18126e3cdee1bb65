"""Finding 1 of issue 13, and what stood behind it: a run's code must never make the platform (root) read
what the run's user may not.

- Outputs that are symbolic links to the platform's secret key, /etc/shadow or another user's file,
  and hard links: the attack as reported, through the real API, worker, cwltool and sandbox.
- JavaScript expressions escaping Node's `vm` context (`globalThis.constructor.constructor('return
  process')()`), which cwltool evaluated as root.
- Inputs a lab swaps for a link after the run was checked: the run reads a private snapshot.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from datalabs.config import Settings
from datalabs.errors import Forbidden
from datalabs.pipelines import inputs as run_inputs
from datalabs.workspaces import service as workspaces
from tests.pipelines.conftest import register, wait_run

LINKS = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c]
arguments:
  - |
    ln -s "$0" key.txt; ln -s /etc/shadow shadow.txt; ln -s "$1" bob.txt
    echo real > real.txt
    id -u > uid.txt
  - $(inputs.key)
  - $(inputs.bob)
inputs:
  key: string
  bob: string
outputs:
  key_out:
    type: ["null", File]
    outputBinding: {glob: key.txt, loadContents: true}
  shadow_out:
    type: ["null", File]
    outputBinding: {glob: shadow.txt, loadContents: true}
  bob_out:
    type: ["null", File]
    outputBinding: {glob: bob.txt, loadContents: true}
  real: {type: File, outputBinding: {glob: real.txt}}
  uid: {type: File, outputBinding: {glob: uid.txt, loadContents: true}}
"""

LOOPS = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c]
arguments:
  - |
    ln /etc/passwd hard-host.txt 2>/dev/null || echo "no hard link across mounts" > hard-host.err
    echo real > real.txt; ln real.txt hard.txt
    mkdir sub; ln -s .. sub/up; ln -s sub/up/.. escape; mkfifo pipe
inputs: []
outputs:
  escape:
    type: ["null", Directory]
    outputBinding: {glob: escape}
  real: {type: File, outputBinding: {glob: real.txt}}
  hard: {type: File, outputBinding: {glob: hard.txt}}
  sub: {type: Directory, outputBinding: {glob: sub}}
  hard_host:
    type: ["null", File]
    outputBinding: {glob: hard-host.txt}
  hard_host_err:
    type: ["null", File]
    outputBinding: {glob: hard-host.err}
  pipe:
    type: ["null", File]
    outputBinding: {glob: pipe}
"""

ESCAPE = """cwlVersion: v1.2
class: ExpressionTool
requirements:
  InlineJavascriptRequirement: {}
inputs: []
outputs:
  out: string
expression: |
  ${ var r = [];
     try {
       var p = globalThis.constructor.constructor('return process')();
       var cp = p.mainModule ? p.mainModule.require('child_process') : p.getBuiltinModule('child_process');
       r.push('uid=' + cp.execSync('id -u').toString().trim());
       try { r.push(cp.execSync('cat /etc/shadow 2>&1; cat ' + inputs_key() + ' 2>&1').toString()); }
       catch (e) { r.push('read failed: ' + e); }
     } catch (e) { r.push('escape failed: ' + e); }
     return {"out": r.join(" | ")}; }
"""


@pytest.fixture
def settings(tmp_path, db_url):
    return Settings(
        home=tmp_path / "home",
        db={"url": db_url},
        auth={"secret_key": ""},  # generated into $DATALABS_HOME/secret_key, the file the attack targets
        pipelines={"poll_interval": 0.2, "lease": 6, "scheduler_interval": 3600},
    )


def secrets_of(settings, bob_file: Path) -> dict[str, str]:
    shadow = Path("/etc/shadow").read_text().splitlines()[0]
    return {"secret key": settings.secret_key, "shadow": shadow, "bob's file": bob_file.read_text()}


def all_text(folder: Path) -> str:
    """Everything readable below `folder` (not following links), as the user would see it."""
    found = []
    for root, _, files in os.walk(folder):
        for name in files:
            path = Path(root, name)
            if not path.is_symlink() and path.is_file():
                found.append(path.read_text(errors="replace"))
    return "\n".join(found)


def test_output_links_to_host_files_deliver_nothing_of_them(people, settings):
    people.user("ada")
    people.user("bob")
    bob = people.login("bob")
    assert bob.put("/api/v1/workspaces/me/files/secret.txt", content=b"bob-private-notes").status_code == 201
    bob_file = settings.home / "workspaces/users/bob/secret.txt"
    hidden = secrets_of(settings, bob_file)
    ada = people.login("ada")
    register(ada, "links", LINKS)
    inputs = {"key": str(settings.home.resolve() / "secret_key"), "bob": str(bob_file.resolve())}
    r = ada.post("/api/v1/pipelines/links/runs", json={"inputs": inputs})
    assert r.status_code == 202, r.text
    run = wait_run(ada, r.json()["id"], timeout=120)
    assert run["state"] == "succeeded", run

    delivered = settings.home / "workspaces/users/ada/pipelines/links" / run["id"]
    visible = all_text(delivered) + json.dumps(run) + ada.get(f"/api/v1/runs/{run['id']}/logs").text
    for what, secret in hidden.items():
        assert secret not in visible, f"{what} leaked"
    outputs = run["outputs"]
    assert outputs["key_out"] is None and outputs["shadow_out"] is None and outputs["bob_out"] is None
    # the real outputs arrive, made by the run's owner's own uid (not root, not one shared uid)
    assert (delivered / "real.txt").read_text() == "real\n"
    uid = int((delivered / "uid.txt").read_text())
    assert uid != 0 and uid == os.stat(delivered / "real.txt").st_uid
    assert not any(p.is_symlink() and not p.resolve().is_relative_to(delivered) for p in delivered.rglob("*"))
    log = ada.get(f"/api/v1/runs/{run['id']}/logs").text
    for name in ("key.txt", "shadow.txt", "bob.txt"):
        assert f"output '{name}' removed" in log, log


def test_hard_links_loops_and_special_files_in_outputs(people, settings):
    people.user("ada")
    ada = people.login("ada")
    register(ada, "loops", LOOPS)
    run = wait_run(ada, ada.post("/api/v1/pipelines/loops/runs", json={}).json()["id"], timeout=120)
    assert run["state"] == "succeeded", run
    delivered = settings.home / "workspaces/users/ada/pipelines/loops" / run["id"]
    # a hard link to a host file cannot even be made in the sandbox; two names of the run's own file are fine
    outputs = run["outputs"]
    assert outputs["hard_host_err"] is not None and outputs["hard_host"] is None, outputs
    assert (delivered / "real.txt").read_text() == (delivered / "hard.txt").read_text() == "real\n"
    # links that climb out, links to folders (loops for any walker) and FIFOs are not delivered
    assert outputs["escape"] is None
    assert not (delivered / "escape").is_symlink() and not (delivered / "sub" / "up").is_symlink()
    assert outputs["pipe"] is None and not (delivered / "pipe").exists()
    log = ada.get(f"/api/v1/runs/{run['id']}/logs").text
    for name in ("escape", "sub/up", "pipe"):
        assert f"output '{name}' removed" in log, log


def test_javascript_expressions_run_sandboxed_as_the_runs_owner(people, settings):
    people.user("ada")
    ada = people.login("ada")
    key = str(settings.home.resolve() / "secret_key")
    register(ada, "escape", ESCAPE.replace("inputs_key()", json.dumps(key)))
    run = wait_run(ada, ada.post("/api/v1/pipelines/escape/runs", json={}).json()["id"], timeout=120)
    assert run["state"] == "succeeded", run
    out = run["outputs"]["out"]
    # The vm escape itself still works inside Node (it is no sandbox); what it reaches is the sandbox.
    assert "uid=" in out, out
    assert "uid=0 " not in out + " " and "uid=0|" not in out.replace(" ", ""), out
    assert Path("/etc/shadow").read_text().splitlines()[0] not in out
    assert settings.secret_key not in out


def test_a_lab_swapping_an_input_for_a_link_changes_nothing_the_run_reads(app, people, settings, tmp_path):
    people.user("ada")
    ada = people.login("ada")
    assert ada.put("/api/v1/workspaces/me/files/data/obs.txt", content=b"my observations").status_code == 201
    ada.put("/api/v1/workspaces/me/files/data/obs.txt.idx", content=b"index")
    workspace = settings.home / "workspaces/users/ada"
    with app.state.sessions() as db:
        from datalabs.accounts.principal import Principal
        from datalabs.accounts.service import get_user

        principal = Principal(user=get_user(db, "ada"), groups=frozenset())
        job = run_inputs.to_host(
            db,
            settings,
            principal,
            {"data": {"class": "File", "location": "me/data/obs.txt"}},
            tmp_path / "st",
        )
        staged = Path(job["data"]["location"].removeprefix("file://"))
        assert staged.is_relative_to(tmp_path / "st") and (staged.parent / "obs.txt.idx").exists()
        # the lab now swaps the file for a link to a host file: the run's snapshot still holds the data
        (workspace / "data/obs.txt").unlink()
        (workspace / "data/obs.txt").symlink_to("/etc/shadow")
        assert staged.read_text() == "my observations"
        # and a reference that is a link now is refused, never followed
        with pytest.raises(Forbidden):
            run_inputs.to_host(
                db, settings, principal, {"d": {"class": "File", "location": "me/data/obs.txt"}}
            )
    space = workspaces.personal(settings, principal.user)
    assert space.tree.root == workspace
