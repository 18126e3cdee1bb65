"""Vectorised text handling for listings: lines as rows of a uint8 matrix, parsed with numpy, not per line.

Python-level splitting costs ~3 µs a line; the listing ingest has ~3 µs for everything, so lines are
cut into fixed-width byte matrices and fields are read column-wise.
"""

from __future__ import annotations

import numpy as np

_HASH_WEIGHTS = np.random.default_rng(20261124).integers(1, 2**63, size=4096, dtype=np.uint64) | np.uint64(1)


def lines(buffer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive, without the newline) of every complete line in `buffer`."""
    ends = np.flatnonzero(buffer == 10)
    starts = np.concatenate([[0], ends[:-1] + 1])
    return starts, ends


def cut(buffer: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Rows of `buffer[start:end]`, left-aligned and NUL-padded to the longest."""
    lengths = ends - starts
    width = int(lengths.max()) if len(lengths) else 0
    if width == 0:
        return np.zeros((len(starts), 0), np.uint8)
    padded = np.concatenate([buffer, np.zeros(width, np.uint8)])
    # Whole rows are copied out of a sliding-window view: one memcpy per row, no index matrix.
    matrix = np.lib.stride_tricks.sliding_window_view(padded, width)[starts]
    if (lengths != width).any():
        matrix[np.arange(width) >= lengths[:, None]] = 0
    return matrix


def integers(buffer: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Decimal integers in buffer[start:end] (leading digits only: '1732492800.25' reads 1732492800)."""
    digits = cut(buffer, starts, ends) - np.uint8(48)  # non-digits wrap to values above 9
    is_digit = digits <= 9
    count = np.where(is_digit.all(axis=1), digits.shape[1], np.argmin(is_digit, axis=1))
    value = np.zeros(len(starts), np.int64)
    for column in range(digits.shape[1]):  # Horner's rule, one column of all rows at a time
        value = np.where(column < count, value * 10 + digits[:, column], value)
    return value


def strings(matrix: np.ndarray) -> np.ndarray:
    """The rows of a uint8 matrix as a numpy bytes array (trailing NULs dropped)."""
    matrix = np.ascontiguousarray(matrix)
    return matrix.view(f"S{matrix.shape[1]}").ravel() if matrix.shape[1] else np.zeros(len(matrix), "S1")


def row_hashes(matrix: np.ndarray) -> np.ndarray:
    """A 64-bit hash per row (for grouping equal rows without sorting strings); 8 bytes at a time."""
    rows, width = matrix.shape
    words = -(-width // 8)
    padded = np.zeros((rows, words * 8), np.uint8)
    padded[:, :width] = matrix
    return (padded.view("<u8") * _HASH_WEIGHTS[:words]).sum(axis=1, dtype=np.uint64)


def group(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of one representative row per distinct row, group number of every row)."""
    _, first, inverse = np.unique(row_hashes(matrix), return_index=True, return_inverse=True)
    return first, inverse


def lower(matrix: np.ndarray) -> np.ndarray:
    upper = (matrix >= 65) & (matrix <= 90)
    return np.where(upper, matrix + 32, matrix).astype(np.uint8)


def last_index(matrix: np.ndarray, byte: int) -> np.ndarray:
    """Column of the last `byte` in each row, -1 where there is none."""
    hits = matrix == byte
    reversed_first = np.argmax(hits[:, ::-1], axis=1)
    return np.where(hits.any(axis=1), matrix.shape[1] - 1 - reversed_first, -1)
