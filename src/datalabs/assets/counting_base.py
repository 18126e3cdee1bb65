"""The column type shared by the counting modules: dictionaries, one bitmap per set, per-row codes."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from pyroaring import BitMap


@dataclass
class Column:
    """A column over the whole index (all segments): dictionaries, one bitmap per set, per-row codes."""

    values: list[Any]
    sets: list[tuple[int, ...]]
    bitmaps: list[BitMap | None]
    codes: np.ndarray
    value_ix: dict[Any, int] = field(default_factory=dict)
    set_ix: dict[tuple[int, ...], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.value_ix = self.value_ix or {v: i for i, v in enumerate(self.values)}
        self.set_ix = self.set_ix or {s: i for i, s in enumerate(self.sets)}

    @cached_property
    def incidence(self) -> tuple[np.ndarray, np.ndarray]:
        pairs = [(code, v) for code, members in enumerate(self.sets) for v in members]
        if not pairs:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        codes, values = zip(*pairs, strict=True)
        return np.asarray(codes, np.int64), np.asarray(values, np.int64)

    @cached_property
    def live(self) -> list[tuple[int, BitMap]]:
        return [(code, bm) for code, bm in enumerate(self.bitmaps) if bm is not None]

    @cached_property
    def sets_of_value(self) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in self.values]
        for code, members in enumerate(self.sets):
            for v in members:
                out[v].append(code)
        return out
