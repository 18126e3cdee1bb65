"""/admin/audit: administrators only; filters, a clear error for a bad date, records shown escaped."""

from __future__ import annotations

from datalabs.audit import chain


def test_audit_page(people):
    app = people.app
    people.user("ann")
    people.user("root", role="admin")
    with app.state.sessions() as db:
        chain.append(
            db, who="<script>alert(1)</script>", what="POST /login", outcome="401", client="10.0.0.9"
        )
        for i in range(60):
            chain.append(db, who="bob", what="POST /x", outcome="200", target=str(i))
        db.commit()
    anonymous = people.client.get("/admin/audit", cookies={}, follow_redirects=False)
    assert anonymous.status_code in (303, 401) and "audit-table" not in anonymous.text
    assert people.login("ann").get("/admin/audit").status_code == 403
    root = people.login("root")
    r = root.get("/admin/audit", params={"what": "POST /login", "outcome": "401"})
    assert r.status_code == 200 and 'id="audit-table"' in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text and "<script>alert(1)" not in r.text
    assert "10.0.0.9" in r.text and 'href="/api/v1/audit.csv?what=POST+%2Flogin&amp;outcome=401"' in r.text
    first = root.get("/admin/audit", params={"who": "bob"})
    assert first.text.count("<tr>") == 50 + 1 and 'id="audit-older"' in first.text  # header row + 50
    older = first.text.split('id="audit-older" href="')[1].split('"')[0].replace("&amp;", "&")
    second = root.get(older)
    assert second.text.count("<tr>") == 10 + 1 and 'id="audit-older"' not in second.text
    bad = root.get("/admin/audit", params={"from": "last tuesday"})
    assert bad.status_code == 422 and 'id="audit-error"' in bad.text and "audit-table" not in bad.text
