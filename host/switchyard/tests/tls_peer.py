#!/usr/bin/env python3
"""An independent TLS peer for tests/tls.rs (Python's stdlib `ssl`, OpenSSL).

client: connects to --port over TLS (--ca pinned, optional --cert/--key,
        --tls11 to offer TLS 1.1 only), then for each line of stdin (a request
        in hex) writes it with a 2-byte big-endian length header and prints one
        JSON line {"reply": hex, "server_cn": ...}; a failure prints
        {"error": ...} and exits. Ends at EOF on stdin.
proxy:  a TLS server on 127.0.0.1:0 (prints {"port": N}) that terminates TLS
        and forwards bytes to the plaintext --upstream host:port. A stdin line
        "use CERT KEY" switches the certificate for new connections; EOF on
        stdin (or 300 s) ends it.
"""
import argparse
import json
import os
import select
import socket
import ssl
import sys
import threading
import warnings

warnings.simplefilter("ignore", DeprecationWarning)


OUT = threading.Lock()


def out(doc):
    # One whole line at a time: the proxy's threads print concurrently.
    with OUT:
        sys.stdout.write(json.dumps(doc) + "\n")
        sys.stdout.flush()


def read_frame(sock):
    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed by the switch")
            buf += chunk
        return buf

    n = int.from_bytes(exact(2), "big")
    return exact(n)


def client(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(a.ca)
    if a.tls11:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1_1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    if a.cert:
        ctx.load_cert_chain(a.cert, a.key)
    try:
        raw = socket.create_connection(("127.0.0.1", a.port), timeout=20)
        tls = ctx.wrap_socket(raw, server_hostname=a.server_name)
        cert = tls.getpeercert()
        cn = dict(x[0] for x in cert["subject"]).get("commonName")
        out({"connected": True, "server_cn": cn, "version": tls.version()})
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            msg = bytes.fromhex(line)
            tls.sendall(len(msg).to_bytes(2, "big") + msg)
            out({"reply": read_frame(tls).hex(), "server_cn": cn})
    except (OSError, ssl.SSLError, ConnectionError) as e:
        out({"error": str(e)})
        sys.exit(2)


def proxy(a):
    state = {"ctx": server_ctx(a.cert, a.key)}
    host, port = a.upstream.rsplit(":", 1)
    srv = socket.create_server(("127.0.0.1", 0))
    out({"port": srv.getsockname()[1]})
    threading.Thread(target=control, args=(state,), daemon=True).start()
    threading.Timer(300, lambda: os._exit(0)).start()
    while True:
        conn, _ = srv.accept()
        threading.Thread(
            target=forward, args=(state["ctx"], conn, (host, int(port))), daemon=True
        ).start()


def server_ctx(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def control(state):
    for line in sys.stdin:
        parts = line.split()
        if len(parts) == 3 and parts[0] == "use":
            state["ctx"] = server_ctx(parts[1], parts[2])
            out({"using": parts[1]})
    os._exit(0)


def forward(ctx, conn, upstream):
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
    except (OSError, ssl.SSLError) as e:
        out({"handshake_error": str(e)})
        return
    up = socket.create_connection(upstream)
    try:
        while True:
            ready = [tls] if tls.pending() else select.select([tls, up], [], [], 60)[0]
            if not ready:
                return
            for s in ready:
                data = s.recv(65536)
                if not data:
                    return
                (up if s is tls else tls).sendall(data)
    except (OSError, ssl.SSLError):
        return
    finally:
        up.close()
        tls.close()


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("client")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--ca", required=True)
    c.add_argument("--cert")
    c.add_argument("--key")
    c.add_argument("--server-name", default="localhost")
    c.add_argument("--tls11", action="store_true")
    x = sub.add_parser("proxy")
    x.add_argument("--cert", required=True)
    x.add_argument("--key", required=True)
    x.add_argument("--upstream", required=True)
    a = p.parse_args()
    client(a) if a.mode == "client" else proxy(a)


if __name__ == "__main__":
    main()
