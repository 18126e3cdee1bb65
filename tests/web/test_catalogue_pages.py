"""Layout, placeholders and the catalogue pages, in process against the real app and real definitions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from datalabs.catalogue import service as catalogue_service
from datalabs.catalogue.entries import availability
from datalabs.db.engine import transaction
from datalabs.runtimes import gpus
from datalabs.web.render import prose
from tests.web.conftest import GOOD_META, card_kinds

# ---- layout -------------------------------------------------------------------------------------


def test_layout_is_accessible_and_self_contained(user):
    r = user.get("/catalogue")
    page = r.text
    assert '<a class="skip-link" href="#main">' in page
    assert (
        '<main id="main"' in page and "<header" in page and '<nav class="main-nav" aria-label="Main">' in page
    )
    assert '<a href="/catalogue" aria-current="page">Catalogue</a>' in page
    for label in ("My datalabs", "Explorer", "Pipelines", "Workspace", "App store"):
        assert f">{label}</a>" in page
    assert ">Admin</a>" not in page  # admins only
    assert '<form method="post" action="/logout"' in page
    assert "<title>Catalogue · Datalabs</title>" in page
    # Nothing is loaded from elsewhere, and the CSRF token is there for htmx.
    for url in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert not url.startswith(("http:", "https:", "//")), url
    assert 'hx-headers=\'{"X-CSRF-Token": "' in page
    assert "script-src 'self'" in r.headers["content-security-policy"]


def test_admin_sees_admin_in_nav(admin):
    assert '<a href="/admin/users">Admin</a>' in admin.get("/catalogue").text


def test_unknown_page_is_a_friendly_404(user):
    r = user.get("/no/such/page")
    assert r.status_code == 404
    assert "Not found" in r.text and "<header" in r.text and "Go to the catalogue" in r.text


# ---- catalogue ----------------------------------------------------------------------------------


def test_catalogue_shows_cards_facets_and_counts(user):
    page = user.get("/catalogue").text
    kinds = card_kinds(page)
    assert {"jupyterlab", "topcat", "oddlab"} <= set(kinds)
    assert "broken" not in kinds
    assert f"{len(kinds)} datalabs" in page
    assert 'src="/api/v1/datalabs/jupyterlab/thumbnail"' in page
    assert '<span class="badge badge-desktop"' in page and '<span class="badge badge-web"' in page
    for legend in ("Type", "Mission", "Instrument", "Keyword", "Domain"):
        assert f"<legend>{legend}</legend>" in page
    assert '<a href="/catalogue?keyword=jupyter"' in page
    # The thumbnail link works with the browser's session cookie.
    assert user.get("/api/v1/datalabs/jupyterlab/thumbnail").status_code == 200


def test_catalogue_filters_by_kind_and_text(user):
    desktop = card_kinds(user.get("/catalogue", params={"kind": "desktop"}).text)
    assert desktop and set(desktop.values()) == {"desktop"}
    assert "topcat" in desktop and "jupyterlab" not in desktop
    web = card_kinds(user.get("/catalogue", params={"kind": "web", "q": "jupyter"}).text)
    assert set(web.values()) == {"web"} and "jupyterlab" in web and "topcat" not in web
    both = card_kinds(user.get("/catalogue", params=[("kind", "web"), ("kind", "desktop")]).text)
    assert set(both.values()) == {"web", "desktop"}
    page = user.get("/catalogue", params={"mission": "Gaia"}).text
    assert list(card_kinds(page)) == ["oddlab"]
    assert re.search(r'name="mission" value="Gaia" checked', page)
    none = user.get("/catalogue", params={"q": "zzzz-nothing"}).text
    assert "No datalab matches." in none and "0 datalabs" in none


def test_catalogue_htmx_request_gets_only_the_results(user):
    r = user.get("/catalogue", params={"kind": "desktop"}, headers={"HX-Request": "true"})
    assert "<html" not in r.text and 'class="cards"' in r.text and 'class="facets"' in r.text
    assert set(card_kinds(r.text).values()) == {"desktop"}
    full = user.get("/catalogue", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in full.text


def test_unavailable_datalab_shows_reason_and_no_launch_button(user):
    page = user.get("/catalogue", params={"q": "odd"}).text
    assert list(card_kinds(page)) == ["oddlab"]
    with user.app.state.sessions() as db:
        odd = next(e for e in user.app.state.catalogue.entries(db) if e.name == "oddlab")
    available, reason = availability(odd.meta)
    assert not available and reason  # no runtime for it, or its tool is missing: either way a reason
    assert "Not available yet" in page
    shown = reason.replace("'", "&#39;").lower()
    assert shown in page.lower()
    assert "Launch" not in page
    detail = user.get("/catalogue/oddlab").text
    assert "Not available yet." in detail and shown in detail.lower()
    assert "Launch" not in detail


def test_detail_page_shows_all_metadata_and_escapes_html(user):
    r = user.get("/catalogue/oddlab")
    assert r.status_code == 200
    page = r.text
    assert "<title>Odd Lab · Datalabs</title>" in page
    for text in (
        "The odd one",
        "A lab whose tool is not installed anywhere.",
        "Test Creator",
        'href="mailto:odd@example.org"',
        "Odd Org",
        "Gaia",
        "Astrometric",
        "MIT",
        "Odd et al. 2026",
        "GaiaDR3",
        "Astronomy",
        "2026-01-02",
        "no-such-tool-xyz --socket",
        "Everyone",
        '<a href="/catalogue?keyword=testing">testing</a>',
    ):
        assert text in page, text
    # Description: paragraphs, inline code, but never raw HTML from a definition.
    assert "<script>alert" not in page and "<b>bold</b>" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page or "&lt;script&gt;" in page
    assert "<p>Second paragraph with <code>code</code>.</p>" in page
    # Unknown keys land in the generic table.
    other = page[page.index('id="h-other"') :]
    assert (
        "releaseNotes" in other and "nothing yet" in other and "funding" in other and "agency: ESA" in other
    )


def test_detail_page_lists_versions_and_shows_the_chosen_one(user):
    latest = user.get("/catalogue/jupyterlab").text
    assert "JupyterLab (Python 3)" in latest and "BSD-3-Clause" in latest and "requirements.txt" in latest
    assert "jupyterlab&gt;=4.3,&lt;4.4" in latest and "Project Jupyter contributors" in latest
    assert 'href="/catalogue/jupyterlab?version=4.3.0" aria-current="page">4.3.0</a>' in latest
    assert 'href="/catalogue/jupyterlab?version=4.2.0">4.2.0</a>' in latest
    older = user.get("/catalogue/jupyterlab", params={"version": "4.2.0"}).text
    assert 'href="/catalogue/jupyterlab?version=4.2.0" aria-current="page">4.2.0</a>' in older
    assert "You are looking at version 4.2.0" in older and "previous release" in older


def test_detail_page_404s(user):
    for path, params in (("/catalogue/nope", {}), ("/catalogue/jupyterlab", {"version": "0.0.1"})):
        r = user.get(path, params=params)
        assert r.status_code == 404
        assert "<html" in r.text and "Not found" in r.text


def test_restricted_datalab_is_hidden_from_outsiders(tmp_path, make_user, login, user):
    # `oddlab` is visible to everyone; a group-restricted one is a 404 for non-members.
    with transaction(user.app.state.sessions) as db:
        settings = user.app.state.settings
        root = Path(settings.catalogue.dirs[0])
        (root / "secret").mkdir()
        (root / "secret" / "datalab-meta.yml").write_text(
            GOOD_META.replace("oddlab", "secret").replace("Odd Lab", "Secret Lab")
            + "  allowed_groups: [team]\n"
        )
        catalogue_service.reload(db, settings)
    assert user.get("/catalogue/secret").status_code == 404
    assert "secret" not in card_kinds(user.get("/catalogue").text)


def test_prose_escapes_and_keeps_wrapped_list_items():
    text = "Intro <i>x</i> with `a<b`.\n\n**What**\n\n- one wrapped\n  over two lines\n- *two*\nText\n- three"
    html = str(prose(text))
    assert "<i>" not in html and "&lt;i&gt;x&lt;/i&gt;" in html and "<code>a&lt;b</code>" in html
    assert "<p><strong>What</strong></p>" in html
    assert "<li>one wrapped over two lines</li><li><em>two</em> Text</li><li>three</li>" in html


def test_bad_query_parameters_get_an_html_422(user):
    r = user.get("/catalogue", params={"page": "abc"})
    assert r.status_code == 422 and "<html" in r.text and "valid integer" in r.text


@pytest.mark.skipif(bool(gpus.discover()), reason="this host has GPUs: jupyterlab-gpu is not refused here")
def test_the_gpu_datalab_says_it_needs_a_gpu(user):
    card = user.get("/catalogue", params={"q": "gpu"}).text
    assert "jupyterlab-gpu" in card_kinds(card) and "Needs a GPU; this server has none." in card
    detail = user.get("/catalogue/jupyterlab-gpu").text
    assert "Not available yet." in detail and "Needs a GPU; this server has none." in detail
    assert "Launch JupyterLab GPU" not in detail and "/launch" not in detail  # no launch button
