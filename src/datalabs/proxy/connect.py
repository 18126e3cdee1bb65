"""Connecting to a lab's unix socket so that the lab cannot send us anywhere else.

The socket lives in the lab's runtime folder, which the lab can write: it could replace `lab.sock` with a
symbolic link to another lab's socket (or a hard link, or another socket it made), and a plain
`connect(path)` by the proxy — as root — would follow it. So:

1. the socket is opened with O_PATH|O_NOFOLLOW (a link is refused, never followed) and must be a socket
   owned by the lab's uid;
2. the connection is made through that very inode (`/proc/self/fd/N`), so nothing can be swapped in
   between the check and the connect;
3. the listening peer must be the lab's uid (SO_PEERCRED), so a socket of another user's lab that was
   somehow made reachable is still refused.

The connect itself is non-blocking (a lab with a full listen backlog cannot stall the event loop that
serves every other user).
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import struct

from datalabs.sandbox.fs import O_PATH


class RedirectedSocket(ConnectionError):
    """The lab's socket is not what the lab was started with (a link, another owner, another peer)."""


def _open_inode(path: str, uid: int | None) -> int:
    folder, name = os.path.split(path)
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fd = os.open(name, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    st = os.fstat(fd)
    if not stat.S_ISSOCK(st.st_mode) or (uid is not None and st.st_uid != uid):
        os.close(fd)
        what = "a link" if stat.S_ISLNK(st.st_mode) else "not the lab's own socket"
        raise RedirectedSocket(f"the lab's socket was replaced by {what}")
    return fd


def peer_uid(sock: socket.socket) -> int:
    return struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]


async def open_lab_socket(path: str, uid: int | None) -> socket.socket:
    """A connected, non-blocking socket to the lab listening at `path` as `uid` (None: the platform is
    not root, and only links are refused). OSError/RedirectedSocket otherwise."""
    fd = _open_inode(path, uid)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, f"/proc/self/fd/{fd}")
        if uid is not None and peer_uid(sock) != uid:
            raise RedirectedSocket("another user's process answers on the lab's socket")
        return sock
    except BaseException:
        sock.close()
        raise
    finally:
        os.close(fd)
