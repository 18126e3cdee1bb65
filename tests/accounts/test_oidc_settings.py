"""[[oidc.providers]] settings: several providers, validated with errors naming the provider and key."""

import pytest
from pydantic import ValidationError

from datalabs.accounts.oidc_settings import OidcSettings

BASE = {"name": "esa", "issuer": "https://sso.esa.int/realms/x", "client_id": "datalabs"}


def test_two_providers_side_by_side(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    settings = OidcSettings.model_validate(
        {
            "local_login": False,
            "providers": [
                {**BASE, "groups_claim": "groups", "group_prefix": "dl-", "mapping": {"astro": "astronomy"}},
                {**BASE, "name": "uni", "title": "University", "client_secret_file": str(secret)},
            ],
        }
    )
    esa, uni = settings.providers
    assert esa.title == "esa" and uni.title == "University"
    assert uni.secret() == "s3cret"
    assert esa.team_for("dl-optics") == "optics"
    assert esa.team_for("astro") == "astronomy"
    assert esa.team_for("dl-") is None and esa.team_for("other") is None


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"name": "../esa"}, "provider name"),
        ({"issuer": "ftp://x"}, "'esa': issuer"),
        ({"issuer": "https://x/?a=1"}, "'esa': issuer"),
        ({"client_id": ""}, "'esa': client_id"),
        ({"client_secret": "a", "client_secret_file": "/tmp/x"}, "'esa': give client_secret"),
        ({"scopes": ["profile"]}, "'esa': scopes"),
        ({"admin_values": ["admins"]}, "'esa': group_prefix, mapping and admin_values need groups_claim"),
    ],
)
def test_bad_provider_is_named(change, words):
    with pytest.raises(ValidationError, match=words):
        OidcSettings.model_validate({"providers": [{**BASE, **change}]})


def test_duplicate_and_no_provider_refused():
    with pytest.raises(ValidationError, match="'esa' is configured twice"):
        OidcSettings.model_validate({"providers": [BASE, BASE]})
    with pytest.raises(ValidationError, match="local_login = false needs"):
        OidcSettings.model_validate({"local_login": False})
