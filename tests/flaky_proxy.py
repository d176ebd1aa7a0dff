"""An HTTP proxy in front of the S3 test server that fails on purpose: a 503 SlowDown, or a
connection closed without an answer. For the retry tests."""

import http.client
import http.server
import socketserver
import threading
from urllib.parse import urlsplit


class FlakyProxy:
    """Forwards requests to `upstream` unchanged (the Host header too, so signatures hold).
    The first time a request (method and path) is seen it gets a 503 SlowDown, the second
    time a connection closed without an answer, then the real answer; with always=True,
    every request gets a 503."""

    def __init__(self, upstream, always=False):
        self.upstream = urlsplit(upstream)
        self.always = always
        self.seen = {}
        self.failures = 0
        self.resets = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                verdict = proxy._verdict(self.command, self.path)
                if verdict == "reset":
                    self.close_connection = True
                    return
                if verdict == "slowdown":
                    payload = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":  # as a real server: else the body poisons the connection
                        self.wfile.write(payload)
                    return
                upstream = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=30)
                try:
                    upstream.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
                    response = upstream.getresponse()
                    data = response.read()
                    self.send_response(response.status)
                    for name, value in response.getheaders():
                        if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                            self.send_header(name, value)
                    # A HEAD answer announces the object's length, with no body.
                    length = response.getheader("Content-Length") if self.command == "HEAD" else len(data)
                    self.send_header("Content-Length", str(length or 0))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    upstream.close()

            do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _forward

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _verdict(self, method, path):
        with self._lock:
            count = self.seen[method, path] = self.seen.get((method, path), 0) + 1
            if self.always or count == 1:
                self.failures += 1
                return "slowdown"
            if count == 2:
                self.failures += 1
                self.resets += 1
                return "reset"
            return "pass"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        return False
