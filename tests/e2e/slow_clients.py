#!/usr/bin/env python3
"""Slow clients (slowloris) for the server's specs: N connections to 127.0.0.1:PORT that each send a request
one byte every EVERY seconds and never finish it.  Runs until the server has closed every connection or
LIMIT seconds have passed, then prints one line: "closed=C open=O".  Writes "ready" to READY once every
connection is under way.

  slow_clients.py PORT N EVERY LIMIT READY
"""
import errno
import socket
import sys
import time

port, n, every, limit, ready = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
REQUEST = b"POST /hello/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nX-Slow: " + b"a" * 10000

socks = []
for _ in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", port))      # EINPROGRESS: the kernel completes it (backlog) or refuses it
    socks.append([s, 0, True])             # socket, bytes sent, open
with open(ready, "w") as f:
    f.write("ready\n")


def closed_by_server(s):
    """True once the server closed (FIN or RST) or refused the connection."""
    try:
        data = s.recv(4096)
        return data == b""                  # an answer (a 408/400 page) is not a close yet
    except BlockingIOError:
        return False
    except OSError:
        return True


start = time.monotonic()
while time.monotonic() - start < limit:
    alive = 0
    for entry in socks:
        s, sent, is_open = entry
        if not is_open:
            continue
        if closed_by_server(s):
            entry[2] = False
            s.close()
            continue
        try:
            if sent < len(REQUEST) and s.send(REQUEST[sent:sent + 1]) == 1:
                entry[1] = sent + 1
        except BlockingIOError:
            pass                            # still connecting (in the backlog, or SYN retried)
        except OSError as e:
            if e.errno in (errno.EPIPE, errno.ECONNRESET, errno.ECONNREFUSED):
                entry[2] = False
                s.close()
                continue
        alive += 1
    if alive == 0:
        break
    time.sleep(every)

still = sum(1 for e in socks if e[2])
print("closed=%d open=%d" % (n - still, still), flush=True)
