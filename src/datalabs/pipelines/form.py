"""The launch form of a pipeline, generated from its CWL inputs: one field description per input, and the
way back from what a browser posts (strings) to the typed inputs a run takes.

Fields are named `in.<input id>`. An empty field means "not given": the input's default applies, or, for
a required input, the run service refuses it with its own message. Values that cannot even be converted
(`abc` for an int) are reported per field here, and everything the user typed is kept for the page to
show again.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from datalabs.errors import Invalid
from datalabs.pipelines.documents import Param, short_id, type_text
from datalabs.sandbox import parsing

PREFIX = "in."
NUMBERS = {"int": int, "long": int, "float": float, "double": float}
FILE_TYPES = ("File", "Directory")
EMAIL_SPLIT = re.compile(r"[\s,;]+")


@dataclass(frozen=True)
class Field:
    """How one CWL input is shown: `widget` is text | number | checkbox | select | file | lines | json."""

    id: str
    name: str  # the form field's name
    label: str
    help: str
    type_text: str
    widget: str
    required: bool
    value: str = ""  # what the field shows (the default, or what the user typed)
    checked: bool = False
    step: str = ""  # number inputs: "1" for integers, "any" for floats
    options: list[str] = field(default_factory=list)
    kind: str = ""  # File | Directory, for pickers (also of File[] lines)


def _base(t: Any) -> tuple[Any, bool]:
    """(the type without "null", optional?)"""
    if isinstance(t, list):
        rest = [x for x in t if x != "null"]
        return (rest[0] if len(rest) == 1 else rest), "null" in t
    if isinstance(t, str) and t.endswith("?"):
        return t[:-1], True
    return t, False


def _shown(value: Any) -> str:
    """A default as the field shows it (file objects by their reference)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict) and value.get("class") in FILE_TYPES:
        return str(value.get("location") or value.get("path") or "")
    if isinstance(value, list):
        return "\n".join(_shown(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def field_of(p: Param, typed: dict[str, str] | None = None) -> Field:
    """The field for input `p`, showing `typed[name]` when the user already typed something."""
    t, nullable = _base(p.type)
    name = PREFIX + p.id
    raw = typed.get(name) if typed is not None else None
    value = raw if raw is not None else _shown(p.default)
    common = {
        "id": p.id,
        "name": name,
        "label": p.label or p.id,
        "help": p.doc,
        "type_text": type_text(p.type),
        "required": not (nullable or p.has_default),
    }
    scalar = t if isinstance(t, str) else ""
    if scalar == "boolean":
        checked = (raw == "true") if typed is not None else bool(p.default)
        return Field(**{**common, "required": False}, widget="checkbox", checked=checked)
    if scalar in NUMBERS:
        return Field(**common, widget="number", value=value, step="1" if NUMBERS[scalar] is int else "any")
    if scalar in FILE_TYPES:
        return Field(**common, widget="file", value=value, kind=t)
    if isinstance(t, dict) and t.get("type") == "enum":
        symbols = [short_id(s) for s in t.get("symbols", [])]
        return Field(**common, widget="select", value=value, options=symbols)
    if isinstance(t, dict) and t.get("type") == "array" and _scalar_items(t.get("items")):
        items = t.get("items")
        return Field(**common, widget="lines", value=value, kind=items if items in FILE_TYPES else "")
    if scalar in ("string", "Any"):
        return Field(**common, widget="text", value=value)
    return Field(**common, widget="json", value=value)


def _scalar_items(items: Any) -> bool:
    return isinstance(items, str) and (items in NUMBERS or items in ("string", "boolean", *FILE_TYPES))


def fields(params: list[Param], typed: dict[str, str] | None = None) -> list[Field]:
    return [field_of(p, typed) for p in params]


def _convert(t: Any, text: str, where: str) -> Any:
    if not isinstance(t, str):
        return text  # enum symbols and the like: the run service checks them
    if t in NUMBERS:
        try:
            return NUMBERS[t](text)
        except ValueError:
            kind = "a whole number" if NUMBERS[t] is int else "a number"
            raise Invalid(f"{where}: '{text}' is not {kind}", code="bad_input") from None
    if t == "boolean":
        if text.lower() not in ("true", "false"):
            raise Invalid(f"{where}: '{text}' is not true or false", code="bad_input")
        return text.lower() == "true"
    return text


def parse(params: list[Param], form: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """(inputs for the run service, {input id: message}) from the posted form. File references stay
    strings: the run service turns them into File objects and checks the user may read them."""
    inputs: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for p in params:
        f = field_of(p)
        raw = form.get(f.name)
        t, _ = _base(p.type)
        try:
            if f.widget == "checkbox":
                # An unticked box is not sent at all: false, unless the input may stay unset.
                if raw is not None or not (p.optional and p.default is None):
                    inputs[p.id] = raw is not None
                continue
            text = (raw or "").strip()
            if not text:
                continue  # not given: the default applies, or the service says it is required
            if f.widget == "lines":
                lines = [line.strip() for line in text.splitlines() if line.strip()]
                inputs[p.id] = [_convert(t["items"], line, f"input '{p.id}'") for line in lines]
            elif f.widget == "json":
                try:
                    inputs[p.id] = parsing.load_json(text, p.id)
                except parsing.DocumentError as exc:
                    raise Invalid(f"input '{p.id}': {exc.located_reason}", code="bad_input") from None
            else:
                inputs[p.id] = _convert(t, text, f"input '{p.id}'")
        except Invalid as exc:
            errors[p.id] = exc.message
    return inputs, errors


def notify_of(form: dict[str, str], own_email: str = "") -> dict[str, Any] | None:
    """The run's `notify` object from the form's notification options (None: no notification).

    `notify_failure` / `notify_success` say when; `email_me` sends to the user, `email_to` to other
    addresses (separated by commas, spaces or new lines), `webhook` calls a URL."""
    on = [event for event in ("failure", "success") if form.get(f"notify_{event}")]
    others = [a for a in EMAIL_SPLIT.split(form.get("email_to", "").strip()) if a]
    hook = form.get("webhook", "").strip()
    me = bool(form.get("email_me"))
    if not on:
        if others or hook or me:
            raise Invalid(
                "notify: choose when to notify (when the run fails, succeeds, or both)", code="bad_notify"
            )
        return None
    if not (others or hook or me):
        raise Invalid("notify: choose whom to notify (you, other addresses or a webhook)", code="bad_notify")
    email: bool | list[str] = me
    if others:
        email = [*others, own_email] if me and own_email else others
    return {"on": on, "email": email, "webhooks": [hook] if hook else []}


def error_place(message: str, names: set[str]) -> str:
    """Where a service's message belongs on the launch page: an input's field ("input 'count': ..."), the
    notification, output, cluster or schedule options, or the top of the form ("page")."""
    if m := re.match(r"^input '([^']+)'", message):
        return m.group(1) if m.group(1) in names else "page"
    for prefix, place in (
        ("notify", "notify"),
        ("output_dir", "output"),
        ("timeout", "page"),
        ("no cluster", "cluster"),
    ):
        if message.startswith(prefix):
            return place
    if "cron" in message:
        return "cron"
    return "page"
