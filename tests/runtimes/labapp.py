"""A minimal web lab for tests: HTTP on a unix socket, answering only with the injected secret header.

Run inside the sandbox as `python labapp.py SOCKET [SECRET]` (else $DATALAB_SECRET). GET /write?path=P
writes P, GET /read?path=P returns P's content (or the error), GET /env shows the environment,
GET /alloc?mb=N holds N MiB, GET /sh?cmd=C runs the shell command C in the lab (what any user can do in
their lab's terminal: the hostile tests' way in) and returns its exit code and output."""

import json
import os
import socketserver
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler

SOCKET = sys.argv[1]
SECRET = sys.argv[2] if len(sys.argv) > 2 else os.environ["DATALAB_SECRET"]
HELD = []


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.headers.get("X-Lab-Secret") != SECRET:
            return self._send(403, {"error": "no secret"})
        url = urllib.parse.urlparse(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        try:
            if url.path.endswith("/write"):
                with open(q["path"], "w") as f:
                    f.write(q.get("text", "hello"))
                return self._send(200, {"wrote": q["path"]})
            if url.path.endswith("/read"):
                with open(q["path"]) as f:
                    return self._send(200, {"content": f.read(200)})
            if url.path.endswith("/connect"):
                import socket

                s = socket.socket(socket.AF_UNIX)
                s.connect(q["path"])
                return self._send(200, {"connected": q["path"]})
            if url.path.endswith("/sh"):
                import subprocess

                done = subprocess.run(
                    ["/bin/sh", "-c", q["cmd"]],
                    capture_output=True,
                    text=True,
                    timeout=float(q.get("timeout", 60)),
                )
                return self._send(200, {"code": done.returncode, "out": done.stdout, "err": done.stderr})
            if url.path.endswith("/env"):
                return self._send(200, dict(os.environ))
            if url.path.endswith("/alloc"):
                HELD.append(bytearray(int(q["mb"]) * 2**20))
                for i in range(0, len(HELD[-1]), 4096):
                    HELD[-1][i] = 1
                return self._send(200, {"held_mb": sum(len(b) for b in HELD) // 2**20})
        except OSError as exc:
            return self._send(200, {"error": exc.strerror or str(exc), "errno": exc.errno})
        return self._send(200, {"ok": True, "uid": os.getuid(), "cwd": os.getcwd()})

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        print(fmt % args, flush=True)


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):  # http.server expects a (host, port) client address
        request, _ = super().get_request()
        return request, ("lab", 0)


print(f"labapp serving on {SOCKET}", flush=True)
Server(SOCKET, Handler).serve_forever()
