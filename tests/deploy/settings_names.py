"""Whether an environment variable names a real setting: Settings ignores unknown DATALABS_* names
(extra="ignore"), so a misspelled one in a deployment file would be silently without effect."""

from __future__ import annotations

from pydantic import BaseModel

from datalabs.config import Settings

# Read by deployment files or the CLI, not by Settings.
NOT_SETTINGS = {"DATALABS_CONFIG", "DATALABS_REPLICA_ROLES"}


def is_setting(name: str) -> bool:
    if not name.startswith("DATALABS_"):
        return False
    model: type[BaseModel] | None = Settings
    for part in name.removeprefix("DATALABS_").lower().split("__"):
        if model is None or part not in model.model_fields:
            return False
        annotation = model.model_fields[part].annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return True


def unknown(names) -> list[str]:
    return [n for n in names if n.startswith("DATALABS_") and n not in NOT_SETTINGS and not is_setting(n)]
