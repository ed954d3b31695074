#!/usr/bin/env python3
"""Opens N keep-alive connections to HOST:PORT, sends one request with the
given header on each, reads every response, then holds them all open until
stdin closes or a line arrives. Prints 'HOLDING <n ok>' once all answered."""

import selectors
import socket
import sys


def main():
    host, port, n, path, header = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{header}\r\n\r\n".encode()
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=30)
        s.sendall(request)
        socks.append(s)
    ok = 0
    for s in socks:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        ok += data.startswith(b"HTTP/1.1 200")
    print(f"HOLDING {ok}", flush=True)
    sel = selectors.DefaultSelector()
    sel.register(sys.stdin, selectors.EVENT_READ)
    sel.select(timeout=120)
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
