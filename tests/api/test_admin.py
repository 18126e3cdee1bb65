"""Users and groups administration through the API."""


def test_admin_manages_users(people):
    people.user("root", role="admin")
    c = people.login("root")
    r = c.post(
        "/api/v1/users", json={"name": "ada", "password": "long-enough-pw", "email": "ada@example.org"}
    )
    assert r.status_code == 201 and r.json()["role"] == "user"
    assert c.post("/api/v1/users", json={"name": "ada", "password": "long-enough-pw"}).status_code == 409
    assert c.patch("/api/v1/users/ada", json={"role": "moderator"}).json()["role"] == "moderator"
    listed = c.get("/api/v1/users").json()
    assert listed["total"] == 2 and {u["name"] for u in listed["items"]} == {"root", "ada"}
    assert c.patch("/api/v1/users/ada", json={"active": False}).status_code == 200
    assert (
        people.client.post(
            "/api/v1/login", json={"username": "ada", "password": "long-enough-pw"}
        ).status_code
        == 401
    )
    assert c.delete("/api/v1/users/root").status_code == 409  # not yourself
    assert c.delete("/api/v1/users/ada").status_code == 204
    assert c.get("/api/v1/users/ada").status_code == 404


def test_bad_user_input(people):
    people.user("root", role="admin")
    c = people.login("root")
    for body in (
        {"name": "Bad Name", "password": "long-enough-pw"},
        {"name": "ok", "password": "short"},
        {"name": "ok", "password": "long-enough-pw", "role": "god"},
        {"name": "ok", "password": "long-enough-pw", "email": "nope"},
    ):
        r = c.post("/api/v1/users", json=body)
        assert r.status_code == 422, body
        assert r.json()["error"]["message"]


def test_admin_manages_groups_and_members(people):
    people.user("root", role="admin")
    people.user("ada")
    c = people.login("root")
    assert c.post("/api/v1/groups", json={"name": "astro", "description": "FITS"}).status_code == 201
    assert c.post("/api/v1/groups", json={"name": "astro"}).status_code == 409
    assert c.put("/api/v1/groups/astro/members/ada", json={"role": "owner"}).json() == {
        "user": "ada",
        "role": "owner",
    }
    assert c.put("/api/v1/groups/astro/members/ada").json()["role"] == "member"
    assert c.get("/api/v1/groups").json() == [
        {"name": "astro", "description": "FITS", "members": [{"user": "ada", "role": "member"}]}
    ]
    assert c.put("/api/v1/groups/astro/members/ghost").status_code == 404
    assert c.put("/api/v1/groups/nope/members/ada").status_code == 404
    assert c.delete("/api/v1/groups/astro/members/ada").status_code == 204
    assert c.delete("/api/v1/groups/astro/members/ada").status_code == 404
    assert c.delete("/api/v1/groups/astro").status_code == 204
    assert c.get("/api/v1/groups/astro").status_code == 404
