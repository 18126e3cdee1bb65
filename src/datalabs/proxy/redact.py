"""Masking a lab's injected secret in response bodies that the browser will read.

A lab may render the secret it was given into a page (JupyterLab's page config can carry the token) or
echo request headers. The browser never needs it: the proxy injects it into every request anyway, so a
masked copy works just as well. Masks keep the length, so Content-Length stays right.

Only uncompressed text-like bodies are scanned (HTML, JSON, JavaScript, XML, plain text): binary
downloads pass untouched and at full speed.
"""

from __future__ import annotations

_TEXTUAL = (b"text/", b"application/json", b"application/javascript", b"application/xml")
_TEXTUAL_SUFFIXES = (b"+json", b"+xml")


def wants_redaction(headers: list[tuple[bytes, bytes]]) -> bool:
    """True for a body the browser could read as text and that we can scan (not compressed)."""
    content_type = b""
    for name, value in headers:
        if name == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
            return False
        if name == b"content-type":
            content_type = value.partition(b";")[0].strip().lower()
    return not content_type or content_type.startswith(_TEXTUAL) or content_type.endswith(_TEXTUAL_SUFFIXES)


class Redactor:
    """Masks `secrets` in a body streamed in chunks, also where a secret straddles two chunks.

    To catch a straddling secret without delaying streams (server-sent events, progress output), only a
    chunk's tail that could be the *start* of a secret is held back until the next chunk; ordinary text
    (which ends with a newline or punctuation, never part of a token) is passed on at once.
    """

    def __init__(self, secrets: tuple[bytes, ...]) -> None:
        self.secrets = secrets
        self._held = b""

    def feed(self, chunk: bytes, final: bool = False) -> bytes:
        """The part of the body that can go to the browser now, masked; with `final`, all that remains."""
        data = self._held + chunk if self._held else chunk
        for secret in self.secrets:
            if secret in data:
                data = data.replace(secret, b"*" * len(secret))
        if final:
            self._held = b""
            return data
        cut = self._partial_secret_start(data)
        self._held = data[cut:]
        return data[:cut] if self._held else data

    def _partial_secret_start(self, data: bytes) -> int:
        """Where a suffix of `data` begins that is a proper prefix of a secret (len(data) if none)."""
        cut = len(data)
        for secret in self.secrets:
            first = secret[:1]
            start = max(0, len(data) - len(secret) + 1)
            pos = data.find(first, start)
            while pos != -1:
                if secret.startswith(data[pos:]):
                    cut = min(cut, pos)
                    break
                pos = data.find(first, pos + 1)
        return cut
