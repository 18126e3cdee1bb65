"""The view-only RFB filter on its own (bytes in, bytes out, any chunking)."""

from __future__ import annotations

import pytest

from datalabs.proxy.rfb_input import RFBInputError, ViewOnlyFilter

PIXEL_FORMAT = bytes([0]) + bytes(19)
ENCODINGS = bytes([2, 0, 0, 2]) + (0).to_bytes(4, "big") + (-223).to_bytes(4, "big", signed=True)
UPDATE = bytes([3, 1]) + bytes(8)
KEY = bytes([4, 1, 0, 0]) + (0x61).to_bytes(4, "big")
POINTER = bytes([5, 1, 0, 10, 0, 20])
CUT = bytes([6, 0, 0, 0]) + (5).to_bytes(4, "big") + b"hello"


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000])
def test_input_is_dropped_and_the_rest_passes_in_any_chunking(chunk):
    stream = PIXEL_FORMAT + KEY + ENCODINGS + POINTER + CUT + UPDATE + KEY
    f, out = ViewOnlyFilter(), b""
    for i in range(0, len(stream), chunk):
        out += f.feed(stream[i : i + chunk])
    assert out == PIXEL_FORMAT + ENCODINGS + UPDATE


@pytest.mark.parametrize(
    "bad", [bytes([7]) + bytes(10), bytes([255]), bytes([6, 0, 0, 0]) + (2**31).to_bytes(4, "big")]
)
def test_unknown_types_and_huge_cut_text_are_refused(bad):
    with pytest.raises(RFBInputError):
        ViewOnlyFilter(max_cut=1 << 20).feed(UPDATE + bad)
