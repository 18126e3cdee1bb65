"""GET /api/v1/clusters: each caller sees the clusters they may use; administrators see all."""

import pytest

from datalabs.config import Settings

HPC = {
    "name": "hpc",
    "title": "HPC cluster",
    "backend": "slurm",
    "options": {"partition": "debug", "time_limit": "8:00:00"},
    "resources": {"default": {"cpu": 2, "memory": "4G"}, "maximum": {"cpu": 16, "memory": "64G", "gpu": 2}},
}
TEAM_ONLY = {
    "name": "astro-gpu",
    "backend": "slurm",
    "options": {"gpu_type": "a100"},
    "allowed_groups": ["astro"],
}


@pytest.fixture
def settings(tmp_path, db_url):
    return Settings(
        home=tmp_path / "home",
        db={"url": db_url},
        auth={"secret_key": "k"},
        clusters=[{"name": "local"}, HPC, TEAM_ONLY],
    )


def names(client, **kw):
    r = client.get("/api/v1/clusters", **kw)
    assert r.status_code == 200, r.text
    return [c["name"] for c in r.json()]


def test_each_caller_sees_the_clusters_open_to_them(people):
    people.user("ada")
    people.user("mia", groups=("astro",))
    people.user("root", role="admin")

    assert names(people.login("ada")) == ["local", "hpc"]
    assert names(people.login("mia")) == ["local", "hpc", "astro-gpu"]
    assert names(people.login("root")) == ["local", "hpc", "astro-gpu"]


def test_a_cluster_says_what_it_offers(people):
    people.user("ada")
    hpc = people.login("ada").get("/api/v1/clusters").json()[1]

    assert hpc["title"] == "HPC cluster" and hpc["backend"] == "slurm"
    assert hpc["options"]["partition"] == "debug" and hpc["options"]["time_limit"] == "8:00:00"
    assert hpc["resources"]["maximum"] == {"cpu": 16, "memory": "64G", "gpu": 2}
    # No controller answers for this one (no slurm.conf here): it says so, without Slurm's words.
    assert hpc["capacity"]["summary"] == "the cluster did not say what is free right now"
    assert hpc["capacity"]["cpus_total"] is None


def test_the_local_cluster_starts_labs_right_away(people):
    people.user("ada")
    local = people.login("ada").get("/api/v1/clusters").json()[0]
    assert local["capacity"] == {
        "cpus_idle": None, "cpus_total": None, "memory_free": None, "memory_total": None, "gpus_total": 0,
        "queued": 0, "summary": "starts right away",
    }  # fmt: skip


def test_anonymous_callers_and_tokens_without_the_labs_scope_are_refused(people, client):
    people.user("ada")
    assert client.get("/api/v1/clusters").status_code == 401
    r = client.get("/api/v1/clusters", headers=people.token("ada", ["files:read"]))
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    assert names(client, headers=people.token("ada", ["labs:read"])) == ["local", "hpc"]
