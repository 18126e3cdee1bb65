"""The redaction helper: server paths out of reasons, the user's own names in."""

from datalabs.config import Settings
from datalabs.redaction import Redactor, error_message, for_run

ROOTS = [
    ("/srv/dl", ""),
    ("/srv/dl/pipelines/runs/r1", "<run>"),
    ("/srv/dl/pipelines/documents/v5.cwl", "calibrate.cwl"),
    ("/srv/dl/workspaces/users/ada", "my_workspace"),
    ("/srv/dl/workspaces/teams/astro", "team_workspaces/astro"),
]


def test_known_roots_become_the_names_the_user_knows():
    r = Redactor(ROOTS, cwd="/home/op/run")
    assert r("../../../srv/dl/pipelines/documents/v5.cwl:1:141: bad") == "calibrate.cwl:1:141: bad"
    assert (
        r('"tmpdir": "/srv/dl/pipelines/runs/r1/attempt-1/work/tmp/x"')
        == '"tmpdir": "<run>/attempt-1/work/tmp/x"'
    )
    assert r("--out=/srv/dl/workspaces/users/ada/res, ok") == "--out=my_workspace/res, ok"
    assert r("in /srv/dl/workspaces/teams/astro/t.fits") == "in team_workspaces/astro/t.fits"


def test_other_server_paths_keep_only_their_last_name():
    r = Redactor(ROOTS, cwd="/home/op/run")
    assert r("/srv/dl/secret_key (/etc/shadow)") == "…/secret_key (…/shadow)"
    assert r("bob's /srv/dl/workspaces/users/bob/notes.txt") == "bob's …/notes.txt"
    assert r("../../../srv/dl/labs/l1/lab.log") == "…/lab.log"


def test_what_is_not_a_server_path_stays():
    r = Redactor(ROOTS, cwd="/home/op/run")
    for text in (
        "see https://example.org/a/b?x=/y",
        "/media/home/my_workspace/x.txt and /media/data/Planck/map.fits",
        "me/tables/kour.txt",
        "ratio 1/2, and/or",
        "no slash at all",
    ):
        assert r(text) == text


def test_relative_names_inside_the_servers_own_folder_are_left_alone():
    r = Redactor([("/srv/dl", "")], cwd="/srv/dl")
    assert r("me/tables/kour.txt") == "me/tables/kour.txt"


def test_for_run_and_error_messages(tmp_path):
    settings = Settings(home=tmp_path / "home")
    home = str(settings.home.resolve())
    run = for_run(
        settings, settings.home / "pipelines/runs/r9", settings.home / "x.cwl", "p", "ada", ["astro"]
    )
    assert run(f"{home}/pipelines/runs/r9/a") == "<run>/a"
    assert run(f"{home}/workspaces/teams/astro/f") == "team_workspaces/astro/f"
    # API errors: the home goes, a path the caller gave (an admin's volume directory) stays.
    assert (
        error_message(settings, f"no directory /srv/archive nor {home}/x")
        == "no directory /srv/archive nor …/x"
    )
