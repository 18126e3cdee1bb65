"""Job files read as cwltool reads them: YAML 1.2 (its core schema: `1e5` is a number, `yes`/`on` are
strings), JSON through the standard library. PyYAML (libyaml) with 1.2 resolvers, imported only for YAML:
cwltool's own ruamel.yaml would cost the runner more start-up time than the whole rest of it.

Numbers keep the meaning cwltool gives them on a command line: it prints a float as written in the file
(`1.23e5` -> `123000`, `0.00001` -> `0.00001`), while a float that travelled through JSON is printed as
Python writes it (`123000.0`, `1e-05`). `exact_number` gives the JSON value that prints like the text.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

INT = re.compile(r"^[-+]?[0-9]+$|^0o[0-7]+$|^0x[0-9a-fA-F]+$")
FLOAT = re.compile(
    r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$"
)
BOOL = re.compile(r"^(true|True|TRUE|false|False|FALSE)$")
NULL = re.compile(r"^(~|null|Null|NULL|)$")

_loader = None


def loads(text: str) -> Any:
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(text, parse_float=exact_number)
        except ValueError:
            pass  # YAML flow style is not always JSON
    import yaml

    try:
        return yaml.load(text, Loader=_yaml12())  # noqa: S506 (a safe loader with other resolvers)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None


def exact_number(text: str) -> int | float:
    """The value of a YAML/JSON float whose command-line form (cwltool's) it keeps through JSON."""
    value = float(text)
    try:
        dec = Decimal(text.replace("_", ""))
    except InvalidOperation:
        return value
    shown = format(dec, "f") if "E" in str(dec) else str(dec)
    return int(shown) if re.fullmatch(r"-?[0-9]+", shown) else value


def _yaml12():
    global _loader
    if _loader is not None:
        return _loader
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc, valid-type]
        yaml_implicit_resolvers: dict = {}

    for tag, pattern, first in (
        ("tag:yaml.org,2002:bool", BOOL, "tTfF"),
        ("tag:yaml.org,2002:int", INT, "-+0123456789"),
        ("tag:yaml.org,2002:float", FLOAT, "-+0123456789."),
        ("tag:yaml.org,2002:null", NULL, ["~", "n", "N", ""]),
    ):
        Loader.add_implicit_resolver(tag, pattern, list(first))

    def construct_int(loader, node):
        text = node.value
        return int(text, 8) if text.startswith("0o") else int(text, 0) if text.startswith("0x") else int(text)

    def construct_float(loader, node):
        text = node.value.lower()
        if text.endswith(("inf", "nan")):
            return float(text.replace(".", ""))
        return exact_number(node.value)

    Loader.add_constructor("tag:yaml.org,2002:int", construct_int)
    Loader.add_constructor("tag:yaml.org,2002:float", construct_float)
    Loader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: node.value)
    _loader = Loader
    return Loader
