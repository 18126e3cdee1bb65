"""Starts a lab's command inside its sandbox: `launcher.py PORT SOCKET -- COMMAND...`.

Run by the sandbox's Python with `-I -S` (no site, no user paths: it imports nothing of the platform),
as the lab's user, after the sandbox is built. It

1. sets the umask to 007: files a lab writes are its user's and its teams' (team workspaces are
   group-shared), never everybody's; makes $HOME if it is missing;
2. when PORT is not 0, listens on 127.0.0.1:PORT of the lab's own loopback (its network namespace) and
   forwards each connection to the platform's API unix socket SOCKET (bound in read-only), so
   `DATALABS_API_URL=http://127.0.0.1:PORT` works in the lab while nothing else of the host is
   reachable. The listening socket exists before the command starts, so the lab never races it;
3. execs COMMAND, which keeps the lab's process id (the forwarder is a grandchild, adopted by the
   sandbox's init, and dies with the sandbox).
"""

import asyncio
import contextlib
import os
import socket
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:  # the other side went away: end this direction
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()


async def _serve(listener: socket.socket, path: str) -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(path)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(client, sock=listener)
    async with server:
        await server.serve_forever()


def _forward(port: int, path: str) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
    except OSError as exc:
        print(f"datalabs: the platform API is not available in this lab ({exc})", file=sys.stderr)
        listener.close()
        return
    if os.fork() == 0:
        if os.fork() == 0:  # the grandchild serves; its parent exits so the sandbox's init adopts it
            try:
                asyncio.run(_serve(listener, path))
            finally:
                os._exit(0)
        os._exit(0)
    os.wait()
    listener.close()


def _home() -> None:
    """Make $HOME if it is missing (a lab's home is a folder of its owner's workspace), as the lab's own
    user: if the workspace cannot take it (full, frozen by its quota), a home in /tmp for this session."""
    home = os.environ.get("HOME", "")
    if not home or os.path.isdir(home):
        return
    try:
        os.makedirs(home, mode=0o700, exist_ok=True)
    except OSError as exc:
        fallback = "/tmp/home"
        os.makedirs(fallback, mode=0o700, exist_ok=True)
        os.environ["HOME"] = fallback
        why = f"cannot make the lab's home {home} ({exc.strerror}); using {fallback}"
        print(f"datalabs: {why}", file=sys.stderr)


def main(argv: list[str]) -> None:
    port, path, sep, *command = argv
    if sep != "--" or not command:
        raise SystemExit("usage: launcher.py PORT SOCKET -- COMMAND...")
    os.umask(0o007)
    _home()
    if int(port):
        _forward(int(port), path)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
