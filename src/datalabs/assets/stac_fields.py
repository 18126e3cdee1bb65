"""The fields extension: which parts of an item a search returns.

What the request gives (`stac_params.fields`) decides the starting set:
- no `include` at all: the whole item;
- an empty `include` (GET `fields=`, POST `{}` or empty/null lists): the default set, a valid item
  (`DEFAULT`: type, stac_version, stac_extensions, id, geometry, bbox, links, assets, collection and
  properties.datetime);
- a non-empty `include`: a minimal entity (`MINIMAL`: type, stac_version, id, collection) plus those paths.
Then `include` and `exclude` are applied, the most specific path deciding (`properties.x` beats
`properties`) and `include` winning over `exclude` on the same path. Paths are dotted; a name that is
not a top-level item member is taken as a property (`datetime` = `properties.datetime`).
"""

from __future__ import annotations

TOP_LEVEL = {
    "type",
    "stac_version",
    "stac_extensions",
    "id",
    "geometry",
    "bbox",
    "properties",
    "links",
    "assets",
    "collection",
}
DEFAULT = (
    "type",
    "stac_version",
    "stac_extensions",
    "id",
    "geometry",
    "bbox",
    "links",
    "assets",
    "collection",
    "properties.datetime",
)
MINIMAL = ("type", "stac_version", "id", "collection")


class Selection:
    """A compiled fields request: `apply(item)` returns the selected parts of one item."""

    def __init__(self, include: list[str] | None, exclude: list[str] | None):
        self.base = None if include is None else (MINIMAL if include else DEFAULT)
        rules: dict[str, bool] = {}
        for path in exclude or []:
            rules[_normal(path)] = False
        for path in include or []:
            rules[_normal(path)] = True  # include wins on the same path
        self.rules = rules
        every = [*rules, *(self.base or ())]
        self.parents = {p.rsplit(".", i)[0] for p in every for i in range(1, p.count(".") + 1)}

    def apply(self, item: dict) -> dict:
        return self._select(item, "")

    def _select(self, obj: dict, prefix: str) -> dict:
        out = {}
        for key, value in obj.items():
            path = prefix + key
            if path in self.parents and isinstance(value, dict):  # a rule below decides member by member
                inner = self._select(value, path + ".")
                if inner or self._keep(path):
                    out[key] = inner
            elif self._keep(path):
                out[key] = value
        return out

    def _keep(self, path: str) -> bool:
        decided = self._decision(path, self.rules.items())
        if decided is not None:
            return decided
        if self.base is None:
            return True
        return self._decision(path, ((b, True) for b in self.base)) or False

    @staticmethod
    def _decision(path: str, rules) -> bool | None:
        best, keep = -1, None
        for rule, value in rules:
            applies = path == rule or path.startswith(rule + ".")
            if applies and (len(rule) > best or (len(rule) == best and value)):  # include wins a tie
                best, keep = len(rule), value
        return keep


def _normal(path: str) -> str:
    path = path.strip()
    return path if path.split(".", 1)[0] in TOP_LEVEL else f"properties.{path}"
