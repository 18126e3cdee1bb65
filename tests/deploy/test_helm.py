"""deploy/helm/datalabs: values against values.schema.json (jsonschema), and `helm lint` + the rendered
manifests through Helm's own Go code (helm-python-sdk: Helm v4's SDK as a library, no `helm` binary)."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

from datalabs.config import Settings
from datalabs.origins import LabOrigins
from tests.deploy import nginx_support
from tests.deploy.settings_names import unknown

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "datalabs"
DB = {"database": {"url": "postgresql+psycopg://datalabs:pw@db.example.org/datalabs"}}


def _values() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def _schema() -> dict:
    return json.loads((CHART / "values.schema.json").read_text())


def test_default_values_meet_the_schema():
    schema = _schema()
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(_values(), schema, cls=jsonschema.Draft7Validator)


@pytest.mark.parametrize(
    "change",
    [
        {"replicas": 0},
        {"replicas": "2"},
        {"roles": ["api", "scheduler"]},
        {"roles": []},
        {"host": "Datalabs.example.org"},
        {"host": "example.org; evil"},
        {"labsHost": "*.lab.example.org"},
        {"database": {"url": "sqlite:///var/datalabs.db"}},
        {"database": {"url": "postgresql+psycopg://u@db/d extra"}},
        {"config": {"db": {"url": "postgresql://elsewhere"}}},
        {"replica": 3},
        {"image": {"repository": "registry.example.org/datalabs", "tag": "latest and greatest"}},
        {"service": {"port": 70000}},
        {"existingSecret": "Not_A_Name"},
    ],
)
def test_schema_refuses_bad_values(change):
    values = _values()
    values.update(copy.deepcopy(change))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(values, _schema(), cls=jsonschema.Draft7Validator)


@pytest.fixture(scope="module")
def helm():
    try:
        import helm_python
    except ImportError:
        nginx_support.missing("helm-python-sdk (Helm's Go SDK, in the test extras) is not installed")
    return helm_python


def _render(helm, values: dict) -> dict[str, list[dict]]:
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(values)
        rendered = chart.render(values, name="dl", namespace="science")
    return {
        path.rsplit("/", 1)[1]: [doc for doc in yaml.safe_load_all(text) if doc]
        for path, text in rendered.items()
        if path.endswith(".yaml")
    }


def test_helm_lint_is_clean(helm):
    for values in (None, DB, {**DB, "tls": {"enabled": False}, "replicas": 5, "existingSecret": "mine"}):
        report = helm.lint(str(CHART), values, strict=True)
        assert report["errors"] == [] and report["messages"] == [], report


def test_helm_lint_reports_values_the_schema_refuses(helm):
    report = helm.lint(str(CHART), {**DB, "roles": ["scheduler"]})
    assert report["errors"], report


def test_rendered_manifests(helm):
    docs = _render(helm, {**DB, "replicas": 3})
    (deployment,) = docs["deployment.yaml"]
    assert deployment["kind"] == "Deployment" and deployment["spec"]["replicas"] == 3
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == [
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--role",
        "api,proxy,manager,worker",
    ]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"].startswith("/healthz")
    env = {e["name"]: e["value"] for e in container["env"]}
    assert unknown(env) == []
    origins = LabOrigins(env["DATALABS_LABS__ORIGIN_URL"], 8000)
    assert origins.lab_of("ab12cd.lab.example.org") == "ab12cd"
    assert origins.lab_of("datalabs.example.org") is None

    (secret,) = docs["secret.yaml"]
    assert set(secret["stringData"]) == {"DATALABS_DB__URL", "DATALABS_AUTH__SECRET_KEY"}
    assert secret["stringData"]["DATALABS_DB__URL"] == DB["database"]["url"]
    assert len(secret["stringData"]["DATALABS_AUTH__SECRET_KEY"]) == 48
    assert container["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]

    (ingress,) = docs["ingress.yaml"]
    hosts = [rule["host"] for rule in ingress["spec"]["rules"]]
    assert hosts == ["datalabs.example.org", "*.lab.example.org"]
    assert ingress["spec"]["tls"][0]["hosts"] == hosts
    (service,) = docs["service.yaml"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_configmap_is_a_datalabs_toml_the_settings_read(helm, tmp_path, monkeypatch):
    docs = _render(helm, {**DB, "config": {"site_name": "Sky Lab", "labs": {"idle_timeout": 600}}})
    (configmap,) = docs["configmap.yaml"]
    path = tmp_path / "datalabs.toml"
    path.write_text(configmap["data"]["datalabs.toml"])
    assert tomllib.loads(path.read_text())["labs"] == {"network": "none", "idle_timeout": 600}  # merged
    monkeypatch.setenv("DATALABS_CONFIG", str(path))
    (deployment,) = docs["deployment.yaml"]
    for item in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
        if item["name"] != "DATALABS_CONFIG":
            monkeypatch.setenv(item["name"], item["value"])
    settings = Settings()
    assert settings.site_name == "Sky Lab" and settings.labs.idle_timeout == 600
    assert settings.server.public_url == "https://datalabs.example.org"
    assert settings.auth.cookie_secure is True


def test_existing_secret_replaces_the_charts(helm):
    docs = _render(helm, {**DB, "existingSecret": "site-datalabs"})
    assert docs.get("secret.yaml", []) == []
    (deployment,) = docs["deployment.yaml"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"] == [
        {"secretRef": {"name": "site-datalabs"}}
    ]


def test_render_without_a_database_fails_clearly(helm):
    with (
        pytest.raises(helm.HelmError, match="database.url is required"),
        helm.Chart.load(str(CHART)) as chart,
    ):
        chart.render({}, name="dl", namespace="science")
