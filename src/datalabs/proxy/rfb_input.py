"""View-only desktops (issue 19): the client's RFB input messages dropped, everything else passed.

RFB (RFC 6143 §7.5) client messages after the handshake, each parsed with its own length: SetPixelFormat
(0, 20 bytes), SetEncodings (2, 4 + 4n), FramebufferUpdateRequest (3, 10), KeyEvent (4, 8), PointerEvent
(5, 6), ClientCutText (6, 8 + length). Key, pointer and cut-text messages are dropped for a viewer; a
message type outside this list, or a cut text over `max_cut` bytes, is a protocol error (the bridge closes).
"""

from __future__ import annotations

_FIXED = {0: 20, 3: 10, 4: 8, 5: 6}
_INPUT = frozenset({4, 5, 6})


class RFBInputError(ValueError):
    """The client sent something a view-only bridge will not pass (unknown type, oversized cut text)."""


class ViewOnlyFilter:
    """Feed the client's bytes in any chunking; `feed` returns what may go on to the server. Buffers at
    most one incomplete message (bounded: SetEncodings' count is 16 bits, cut text by `max_cut`)."""

    def __init__(self, max_cut: int = 1 << 20) -> None:
        self.max_cut = max_cut
        self._buf = bytearray()
        self._skip = 0  # bytes of a dropped cut text still to come

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        view = memoryview(data)
        if self._skip:
            n = min(self._skip, len(view))
            self._skip -= n
            view = view[n:]
        self._buf += view
        while self._buf and not self._skip:
            size = self._size(self._buf)
            if size is None:
                break
            kind = self._buf[0]
            if kind == 6 and len(self._buf) < size:  # a dropped cut text: skip it as it streams
                self._skip = size - len(self._buf)
                self._buf.clear()
                break
            if len(self._buf) < size:
                break
            if kind not in _INPUT:
                out += self._buf[:size]
            del self._buf[:size]
        return bytes(out)

    def _size(self, buf: bytearray) -> int | None:
        kind = buf[0]
        if kind in _FIXED:
            return _FIXED[kind]
        if kind == 2:
            return None if len(buf) < 4 else 4 + 4 * int.from_bytes(buf[2:4], "big")
        if kind == 6:
            if len(buf) < 8:
                return None
            length = int.from_bytes(buf[4:8], "big")
            if length > self.max_cut:
                raise RFBInputError(f"cut text of {length} bytes")
            return 8 + length
        raise RFBInputError(f"unknown RFB client message type {kind}")
