"""deploy/systemd: the units as systemd itself reads them (`systemd-analyze verify`), and the example
environment file's names against the real settings."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.deploy import nginx_support
from tests.deploy.settings_names import unknown

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
ANALYZE = shutil.which("systemd-analyze")
DATALABS = str(Path(sys.executable).parent / "datalabs")


def _verify(tmp_path: Path, edit=lambda text: text) -> subprocess.CompletedProcess:
    """`systemd-analyze verify` of copies of the units whose ExecStart names this checkout's `datalabs`
    (verify insists the command exists; /opt/datalabs is where the units expect an installation)."""
    if ANALYZE is None:
        nginx_support.missing("systemd-analyze is not installed")
    for unit in ("datalabs@.service", "datalabs.target"):
        text = (UNITS / unit).read_text().replace("/opt/datalabs/.venv/bin/datalabs", DATALABS)
        (tmp_path / unit).write_text(edit(text))
    return subprocess.run(
        [ANALYZE, "verify", "datalabs@8001.service", "datalabs.target"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_units_verify_without_a_warning(tmp_path):
    done = _verify(tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout == ""


def test_verify_reports_a_misspelled_or_invalid_setting(tmp_path):
    """systemd ignores what it cannot parse (exit 0): the warnings are what the check above relies on."""
    done = _verify(tmp_path, lambda t: t.replace("ProtectSystem=full", "ProtectSytem=full"))
    assert "Unknown key 'ProtectSytem'" in done.stderr
    done = _verify(tmp_path, lambda t: t.replace("Restart=always", "Restart=sometimes"))
    assert "restart specifier" in done.stderr


def _service() -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for line in (UNITS / "datalabs@.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            keys.setdefault(key, []).append(value)
    return keys


def test_one_instance_per_port_with_roles_from_the_environment_file():
    unit = _service()
    assert unit["ExecStart"] == [
        "/opt/datalabs/.venv/bin/datalabs serve --port %i --role ${DATALABS_REPLICA_ROLES}"
    ]
    assert unit["EnvironmentFile"] == ["/etc/datalabs/datalabs.env"]
    assert unit["Restart"] == ["always"] and unit["User"] == ["root"]
    assert unit["PartOf"] == ["datalabs.target"] and unit["WantedBy"] == ["datalabs.target"]
    # Roles default to all in the unit; the env file (read after it) may narrow them.
    assert unit["Environment"] == ["DATALABS_REPLICA_ROLES=api,proxy,manager,worker"]


def test_hardening_never_takes_what_sandboxes_need():
    """Options that would break bubblewrap, cgroups, devices or uid switching stay out, and each option
    left out is said why in the unit."""
    unit = _service()
    text = (UNITS / "datalabs@.service").read_text()
    for option in ("ProtectSystem", "ProtectKernelModules", "LockPersonality"):
        assert option in unit, option
    for option in (
        "NoNewPrivileges", "PrivateDevices", "ProtectControlGroups", "RestrictNamespaces", "SystemCallFilter",
        "ProtectKernelTunables", "RestrictSUIDSGID", "ProtectClock", "MemoryDenyWriteExecute",
        "CapabilityBoundingSet", "DynamicUser", "PrivateUsers",
    ):  # fmt: skip
        assert option not in unit, option
    explained = [
        "NoNewPrivileges", "PrivateDevices", "ProtectControlGroups", "RestrictNamespaces",
        "SystemCallFilter", "ProtectKernelTunables", "RestrictSUIDSGID", "CapabilityBoundingSet",
    ]  # fmt: skip
    for option in explained:
        assert re.search(rf"^# - .*\b{option}\b", text, re.M), f"{option}: left out without a reason"


def test_environment_file_names_real_settings():
    names = [
        line.split("=", 1)[0]
        for line in (UNITS / "datalabs.env").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert {"DATALABS_HOME", "DATALABS_DB__URL", "DATALABS_AUTH__SECRET_KEY", "DATALABS_SERVER__PUBLIC_URL",
            "DATALABS_LABS__ORIGIN_URL"} <= set(names)  # fmt: skip
    assert unknown(names) == []
    # The check itself: names a typo would make are not settings.
    assert unknown(["DATALABS_DB_URL", "DATALABS_LABS__ORIGIN", "DATALABS_SERVER__PUBLICURL"]) == [
        "DATALABS_DB_URL", "DATALABS_LABS__ORIGIN", "DATALABS_SERVER__PUBLICURL",
    ]  # fmt: skip
