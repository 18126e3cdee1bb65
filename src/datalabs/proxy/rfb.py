"""The RFB (VNC) security handshake between the proxy and a desktop lab's Xvnc, and towards the browser.

Each desktop lab's Xvnc asks for VNC authentication (RFB security type 2) with a per-lab password that
only the platform and the lab know (`password_file`, read by Xvnc with -PasswordFile). The proxy answers
Xvnc's challenge itself (`authenticate`); the browser is then offered security type None (`greet`),
having been admitted by the proxy with the platform's own login. So the password never reaches a
browser, and a connection that ends up at another lab's Xvnc (the threat the socket checks of
connect.py also close) is refused by that Xvnc.

VNC authentication is DES: the 16-byte challenge encrypted with the password as key, each key byte with
its bits reversed (a quirk of the original implementation); TigerVNC's password file is the password
encrypted with a fixed, well-known key. DES is weak, but here it only has to keep one lab from another
on a socket no network reaches. `cryptography`'s TripleDES with the key repeated three times is DES.
"""

from __future__ import annotations

import asyncio
import secrets
import string
import struct

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

VERSION = b"RFB 003.008\n"
VNC_AUTH, NO_AUTH = 2, 1
PASSWORD_LENGTH = 8  # VNC authentication uses the first 8 bytes
_FIXED_KEY = bytes([23, 82, 107, 6, 35, 78, 88, 7])  # TigerVNC's password-file key (not a secret)
_ALPHABET = string.ascii_letters + string.digits


class RfbError(ConnectionError):
    """The lab's VNC server did not accept us, or spoke something that is not RFB."""


def new_password() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(PASSWORD_LENGTH))


def _reverse_bits(b: int) -> int:
    return int(f"{b:08b}"[::-1], 2)


def _des(key: bytes, data: bytes, *, vnc_key: bool) -> bytes:
    key = key[:8].ljust(8, b"\0")
    if vnc_key:
        key = bytes(_reverse_bits(b) for b in key)
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def password_file(password: str) -> bytes:
    """The contents of a TigerVNC password file (`vncpasswd -f`) for `password`."""
    return _des(_FIXED_KEY, password.encode()[:8].ljust(8, b"\0"), vnc_key=True)


def response(password: str, challenge: bytes) -> bytes:
    """The answer to a VNC authentication challenge."""
    return _des(password.encode(), challenge, vnc_key=True)


async def authenticate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, password: str) -> None:
    """Speak RFB 3.8 to the lab's Xvnc up to a successful security result, answering its challenge."""
    version = await reader.readexactly(12)
    if not version.startswith(b"RFB "):
        raise RfbError("the lab's desktop does not speak RFB")
    writer.write(VERSION)
    count = (await reader.readexactly(1))[0]
    if count == 0:
        reason = await reader.readexactly(struct.unpack(">I", await reader.readexactly(4))[0])
        raise RfbError(f"the lab's desktop refused the connection: {reason.decode(errors='replace')}")
    types = await reader.readexactly(count)
    if VNC_AUTH not in types:
        raise RfbError(f"the lab's desktop does not ask for its password (security types {list(types)})")
    writer.write(bytes([VNC_AUTH]))
    challenge = await reader.readexactly(16)
    writer.write(response(password, challenge))
    await writer.drain()
    if struct.unpack(">I", await reader.readexactly(4))[0] != 0:
        raise RfbError("the lab's desktop refused its password")


async def greet_browser(receive_bytes, send_bytes) -> bytes:
    """Offer the browser security type None (it was admitted by the proxy already); return any bytes it
    sent past the handshake (the start of its ClientInit)."""
    buffer = bytearray()

    async def read(n: int) -> bytes:
        while len(buffer) < n:
            chunk = await receive_bytes()
            if chunk is None:
                raise RfbError("the browser left during the handshake")
            buffer.extend(chunk)
        data = bytes(buffer[:n])
        del buffer[:n]
        return data

    await send_bytes(VERSION)
    version = await read(12)
    if not version.startswith(b"RFB 003."):
        raise RfbError("the browser does not speak RFB")
    await send_bytes(bytes([1, NO_AUTH]))
    if (await read(1))[0] != NO_AUTH:
        raise RfbError("the browser chose a security type it was not offered")
    await send_bytes(struct.pack(">I", 0))
    return bytes(buffer)
