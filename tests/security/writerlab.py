"""A lab that writes on demand, for quota tests: HTTP on a unix socket, answering only with the secret header.

Run inside the sandbox as `python writerlab.py SOCKET SECRET`.
GET /fill?path=P&mb=N   appends N MiB to P, 1 MiB at a time: {"written": bytes, "errno": int | null}
GET /write?path=P       writes a few bytes to P: {"errno": int | null}
GET /grow?path=P        starts a program that keeps P open and appends to it until refused: {"pid"}
GET /alive?pid=N        {"alive": bool}
GET /mounts             this sandbox's mount lines under /media/home
"""

import json
import os
import socketserver
import subprocess
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler

SOCKET, SECRET = sys.argv[1], sys.argv[2]
GROW = """
import sys, time
f = open(sys.argv[1], "ab", buffering=0)
while True:
    f.write(b"g" * (256 << 10))
    time.sleep(0.02)
"""


def fill(path, mb):
    written = 0
    try:
        with open(path, "ab", buffering=0) as f:
            for _ in range(mb):
                chunk = memoryview(b"q" * (1 << 20))
                while chunk:
                    n = f.write(chunk)
                    written += n
                    chunk = chunk[n:]
        return {"written": written, "errno": None}
    except OSError as exc:
        return {"written": written, "errno": exc.errno}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.headers.get("X-Lab-Secret") != SECRET:
            return self._send(403, {"error": "no secret"})
        url = urllib.parse.urlparse(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        route = url.path.rsplit("/", 1)[-1]
        if route == "fill":
            return self._send(200, fill(q["path"], int(q["mb"])))
        if route == "write":
            try:
                with open(q["path"], "w") as f:
                    f.write("small")
                return self._send(200, {"errno": None})
            except OSError as exc:
                return self._send(200, {"errno": exc.errno})
        if route == "grow":
            child = subprocess.Popen([sys.executable, "-c", GROW, q["path"]], start_new_session=True)
            return self._send(200, {"pid": child.pid})
        if route == "alive":
            pid = int(q["pid"])
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it died: a zombie is not alive
            except ChildProcessError:
                done = pid
            return self._send(200, {"alive": done == 0})
        if route == "mounts":
            with open("/proc/self/mountinfo") as f:
                return self._send(200, {"lines": [line for line in f if " /media/home" in line]})
        return self._send(200, {"ok": True, "uid": os.getuid()})

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        pass


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):  # http.server expects a (host, port) client address
        request, _ = super().get_request()
        return request, ("lab", 0)


Server(SOCKET, Handler).serve_forever()
