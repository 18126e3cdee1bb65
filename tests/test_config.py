from pathlib import Path

import pytest

from datalabs.config import Settings


def test_env_overrides_toml_overrides_defaults(tmp_path, monkeypatch):
    (tmp_path / "datalabs.toml").write_text(
        'site_name = "TOML Labs"\n[auth]\nsession_ttl = 60\n[server]\nport = 9000\n'
    )
    monkeypatch.setenv("DATALABS_HOME", str(tmp_path))
    monkeypatch.setenv("DATALABS_SERVER__PORT", "9100")
    monkeypatch.setenv("DATALABS_CATALOGUE__DIRS", '["/srv/defs"]')
    settings = Settings()
    assert settings.site_name == "TOML Labs" and settings.auth.session_ttl == 60
    assert settings.server.port == 9100
    assert settings.catalogue.dirs == [Path("/srv/defs")]
    assert settings.database_url == f"sqlite:///{tmp_path / 'datalabs.db'}"


def test_secret_key_is_generated_once_and_private(tmp_path):
    settings = Settings(home=tmp_path)
    key = settings.secret_key
    assert len(key) > 40 and Settings(home=tmp_path).secret_key == key
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"


def test_home_layout(tmp_path):
    Settings(home=tmp_path).ensure_home()
    for sub in ("workspaces/users", "workspaces/teams", "labs", "envs", "assets", "pipelines"):
        assert (tmp_path / sub).is_dir()


def test_every_setting_is_documented():
    def walk(model):
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                yield from walk(annotation)
            else:
                yield name, field.description

    undocumented = [name for name, doc in walk(Settings) if not doc]
    assert undocumented == []


def test_an_empty_home_is_refused_not_taken_as_the_current_folder(monkeypatch):
    monkeypatch.setenv("DATALABS_HOME", "")
    with pytest.raises(ValueError, match="DATALABS_HOME is set but empty"):
        Settings()
