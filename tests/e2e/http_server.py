#!/usr/bin/env python3
"""A small independent HTTP/1.1 server for the http client's tests (so the client is not only tested
against the host's own server).  Prints its port on the first line of stdout, then serves until killed.

  /echo            JSON {method, path, query, headers (lowercase names), body}
  /gzip            a gzip-encoded body ("hello gzip " * 100)
  /big?n=N         N bytes of "x"
  /slow?s=S        answers after S seconds
  /headers         repeated headers: X-Multi twice, Set-Cookie twice, two Link headers
  /redirect?n=N    302 chains down to /echo
  /status?code=C   an empty answer with that status
  /drop            closes the connection without answering
A request with an absolute URI (as sent to a proxy) is answered the same way, so the server doubles as
a forward proxy for the tests.  With --tls CERT KEY it speaks HTTPS.
"""
import gzip
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        u = urlsplit(self.path)
        q = parse_qs(u.query)
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if u.path == "/echo":
            out = {"method": self.command, "path": u.path, "query": u.query,
                   "headers": {k.lower(): v for k, v in self.headers.items()},
                   "body": body.decode("utf-8", "replace")}
            self.send(200, json.dumps(out).encode(), [("Content-Type", "application/json")])
        elif u.path == "/gzip":
            self.send(200, gzip.compress(b"hello gzip " * 100), [("Content-Encoding", "gzip")])
        elif u.path == "/big":
            self.send(200, b"x" * int(q.get("n", ["1000"])[0]))
        elif u.path == "/slow":
            time.sleep(float(q.get("s", ["1"])[0]))
            self.send(200, b"slow")
        elif u.path == "/headers":
            self.send(200, b"h", [("X-Multi", "a"), ("X-Multi", "b"), ("Set-Cookie", "a=1; Path=/"),
                                  ("Set-Cookie", "b=2"), ("Link", '<http://x/?page=2>; rel="next"'),
                                  ("Link", '<http://x/?page=9>; rel="last"'), ("X-Mixed-Case", "v")])
        elif u.path == "/redirect":
            left = int(q.get("n", ["1"])[0])
            to = "/echo" if left <= 1 else "/redirect?n=%d" % (left - 1)
            self.send(302, b"", [("Location", to)])
        elif u.path == "/drop":
            self.close_connection = True     # no answer at all
        elif u.path == "/status":
            self.send(int(q.get("code", ["200"])[0]))
        else:
            self.send(404, b"not found")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def handle_error(self, request, client_address):
        pass   # clients the tests abort on purpose (timeouts, too_large, cancel) reset their connections


if __name__ == "__main__":
    # http_server.py [--tls CERT KEY]
    srv = Server(("127.0.0.1", 0), Handler)
    if len(sys.argv) == 4 and sys.argv[1] == "--tls":
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()
