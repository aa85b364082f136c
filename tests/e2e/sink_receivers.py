#!/usr/bin/env python3
"""Receivers for the alert-sink specs: what a syslog server or an SMTP server on loopback got.

    sink_receivers.py unix PATH OUT      datagrams on a unix socket
    sink_receivers.py tcp OUT            octet-counted syslog over TCP
    sink_receivers.py tls CERT KEY OUT   the same over TLS
    sink_receivers.py smtp OUT           a minimal SMTP server (no auth, no TLS)

Each message received is appended to OUT followed by a line "\\x1e" (record separator).  Prints
"ready PORT" (0 for unix) once listening.  Serves until killed."""
import os
import socket
import socketserver
import ssl
import sys
import threading

mode = sys.argv[1]
OUT = sys.argv[-1]
lock = threading.Lock()


def record(msg):
    with lock, open(OUT, "ab") as f:
        f.write(msg + b"\n\x1e\n")


def octet_counted(rfile):
    while True:
        n = b""
        while True:
            c = rfile.read(1)
            if not c:
                return
            if c == b" ":
                break
            n += c
        record(rfile.read(int(n)))


class Syslog(socketserver.StreamRequestHandler):
    def handle(self):
        octet_counted(self.rfile)


class Smtp(socketserver.StreamRequestHandler):
    def reply(self, line):
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self):
        self.reply("220 localhost ESMTP test")
        mail = b""
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.strip().upper()
            if cmd.startswith(b"EHLO") or cmd.startswith(b"HELO"):
                self.reply("250 localhost")
            elif cmd.startswith(b"MAIL FROM:") or cmd.startswith(b"RCPT TO:"):
                mail += line
                self.reply("250 ok")
            elif cmd == b"DATA":
                self.reply("354 go on")
                while True:
                    d = self.rfile.readline()
                    if d in (b".\r\n", b".\n", b""):
                        break
                    mail += d
                record(mail)
                mail = b""
                self.reply("250 queued")
            elif cmd == b"QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


if mode == "unix":
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(sys.argv[2])
    print("ready 0", flush=True)
    while True:
        record(s.recv(65536))
else:
    srv = Server(("127.0.0.1", 0), Smtp if mode == "smtp" else Syslog)
    if mode == "tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("ready %d" % srv.server_address[1], flush=True)
    srv.serve_forever()
