"""The minimal web lab of the lab-start benchmark: 200 "ok" to any GET that carries the lab's secret.

python3 -I -S app.py SOCKET        (the secret comes from $DATALAB_SECRET)
"""

import os
import socketserver
import sys
from http.server import BaseHTTPRequestHandler

SECRET = os.environ.get("DATALAB_SECRET", "")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server's naming)
        ok = self.headers.get("X-Datalab-Secret") == SECRET
        body = b"ok\n" if ok else b"no secret\n"
        self.send_response(200 if ok else 403)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep the lab log quiet
        pass


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


if __name__ == "__main__":
    with Server(sys.argv[1], Handler) as server:
        server.serve_forever()
