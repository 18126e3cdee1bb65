"""A minimal RFB 3.8 client (security None or VNC authentication, Raw encoding) for desktop-lab tests and
benchmarks.

It reads the lab's framebuffer straight from its VNC unix socket or through a WebSocket (our proxy's
bridge, or websockify), so a test can say "the screen is not blank" from pixels, and the benchmark can
time the first frame and measure frame bandwidth with the same client on every path.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from datalabs.proxy import rfb
from datalabs.runtimes import desktop

# 32 bits per pixel, depth 24, little-endian, true colour, 8 bits per channel at shifts 16/8/0.
PIXEL_FORMAT = struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)


class UnixTransport:
    def __init__(self, path: str, timeout: float = 30) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(timeout)
        self.sock.connect(path)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self) -> bytes:
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError("the VNC server closed the connection")
        return data

    def close(self) -> None:
        self.sock.close()


class WebSocketTransport:
    """RFB over a WebSocket (binary messages; boundaries mean nothing). `compression="deflate"` offers
    permessage-deflate as browsers do."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
        compression: str | None = None,
    ) -> None:
        from websockets.sync.client import connect

        self.timeout = timeout
        self.ws = connect(
            url,
            additional_headers=headers or {},
            subprotocols=["binary"],
            max_size=None,
            proxy=None,
            compression=compression,
        )

    def send(self, data: bytes) -> None:
        self.ws.send(data)

    def recv(self) -> bytes:
        data = self.ws.recv(timeout=self.timeout)
        return data if isinstance(data, bytes) else data.encode()

    def close(self) -> None:
        self.ws.close()


@dataclass
class Frame:
    width: int
    height: int
    pixels: bytearray  # BGRX, 4 bytes a pixel

    def colours(self, step: int = 7) -> int:
        """Distinct colours among every `step`-th pixel: 1 for a blank screen, dozens for a window."""
        view = memoryview(self.pixels).cast("I")
        return len(set(view[::step]))


class RfbClient:
    """`password`: the lab's VNC password, for a connection straight to its socket (through the proxy
    the browser is offered no authentication: the proxy answers Xvnc itself)."""

    def __init__(self, transport, password: str | None = None) -> None:
        self.t = transport
        self.password = password
        self.buffer = bytearray()
        self.received = 0
        self._handshake()

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.t.recv()
            self.received += len(chunk)
            self.buffer += chunk
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def _handshake(self) -> None:
        version = self._read(12)
        if not version.startswith(b"RFB "):
            raise ValueError(f"not an RFB server: {version!r}")
        self.t.send(b"RFB 003.008\n")
        types = self._read(self._read(1)[0])
        if 1 in types:
            self.t.send(b"\x01")
        elif 2 in types and self.password is not None:
            self.t.send(b"\x02")
            self.t.send(rfb.response(self.password, self._read(16)))
        else:
            raise ValueError(f"the server wants authentication: security types {list(types)}")
        if struct.unpack(">I", self._read(4))[0] != 0:
            raise ValueError("security handshake failed")
        self.t.send(b"\x01")  # shared: do not disconnect the user's own session
        self.width, self.height = struct.unpack(">HH", self._read(4))
        self._read(16)
        self.name = self._read(struct.unpack(">I", self._read(4))[0]).decode("utf-8", "replace")
        self.t.send(b"\x00\x00\x00\x00" + PIXEL_FORMAT)
        self.t.send(struct.pack(">BxHi", 2, 1, 0))  # SetEncodings: Raw only

    def frame(self, incremental: bool = False) -> Frame:
        """Request an update of the whole screen and read it (other server messages are skipped)."""
        w, h = self.width, self.height
        self.t.send(struct.pack(">BBHHHH", 3, int(incremental), 0, 0, w, h))
        pixels = bytearray(w * h * 4)
        while True:
            kind = self._read(1)[0]
            if kind == 0:
                break
            if kind == 2:  # bell
                continue
            if kind == 3:  # server cut text
                self._read(3)
                self._read(struct.unpack(">I", self._read(4))[0])
                continue
            raise ValueError(f"unexpected RFB message {kind}")
        (count,) = struct.unpack(">xH", self._read(3))
        for _ in range(count):
            x, y, rw, rh, encoding = struct.unpack(">HHHHi", self._read(12))
            if encoding != 0:
                raise ValueError(f"unexpected encoding {encoding}")
            data = self._read(rw * rh * 4)
            for row in range(rh):
                start = ((y + row) * w + x) * 4
                pixels[start : start + rw * 4] = data[row * rw * 4 : (row + 1) * rw * 4]
        return Frame(w, h, pixels)

    def close(self) -> None:
        self.t.close()


def in_network_of(pid: int, fn):
    """Run `fn()` in a new thread that has joined the network namespace of process `pid` (a lab's: labs
    have their own loopback), and return its result. Threads `fn` starts share that namespace."""
    import ctypes
    import threading

    result: dict = {}

    def body() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        try:
            if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET; this thread only
                raise OSError(ctypes.get_errno(), "setns failed")
        finally:
            os.close(fd)
        try:
            result["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")


def screenshot(vnc_socket: str, password: str | None = None) -> Frame:
    client = RfbClient(UnixTransport(vnc_socket), password)
    try:
        return client.frame()
    finally:
        client.close()


def x_windows(runtime_dir: Path, name: str) -> list[str]:
    """Ids of the visible windows whose name matches `name` on the lab's display."""
    argv = desktop.x_command(runtime_dir, ["xdotool", "search", "--onlyvisible", "--name", name])
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    return out.stdout.split()


def wait_for_window(runtime_dir: Path, name: str, timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while not (found := x_windows(runtime_dir, name)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def xvnc_pids(runtime_dir: Path) -> list[int]:
    """The Xvnc process of the lab whose runtime dir this is (found by the X socket it holds open)."""
    x0 = str(runtime_dir / desktop.X11_DIR / "X0")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or _comm(entry) != "Xvnc":
            continue
        # Each lab has its own network namespace: its unix sockets are listed in its own /proc/net/unix.
        socket_inodes = set()
        try:
            for line in (entry / "net" / "unix").read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) >= 8 and fields[7] == "/tmp/.X11-unix/X0":
                    socket_inodes.add(fields[6])
        except OSError:
            continue
        if _socket_inodes(entry) & socket_inodes:
            # Every lab's X socket is /tmp/.X11-unix/X0 in its own view: tell them apart by the runtime dir
            # in the process's mount table.
            try:
                if x0.rsplit("/", 2)[0] in (entry / "mountinfo").read_text():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _comm(proc: Path) -> str:
    try:
        return (proc / "comm").read_text().strip()
    except OSError:
        return ""


def _socket_inodes(proc: Path) -> set[str]:
    try:
        links = [os.readlink(f) for f in (proc / "fd").iterdir()]
    except OSError:
        return set()
    return {link[8:-1] for link in links if link.startswith("socket:[")}


def tcp_inodes(pid: int) -> set[str]:
    """Inodes of the TCP sockets (listening or not) the process holds."""
    tcp = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            tcp.add(line.split()[9])
    return _socket_inodes(Path(f"/proc/{pid}")) & tcp
