"""pyiso8583 (an independent ISO 8583 implementation) as a test peer.

Commands (JSON on stdin, JSON on stdout):
  encode              {"t": "0200", "2": "...", ...}        -> {"hex": "..."}
  decode              {"hex": "..."}                         -> {"t": "0210", "39": "00", ...}
  exchange HOST PORT  [{...}, {...}]  -> [{...}, {...}]: each message is encoded by
                      pyiso8583, sent with a 2-byte big-endian length over TCP, and the
                      response decoded by pyiso8583.
Binary fields are hex strings, as pyiso8583 represents them.
"""
import json
import socket
import struct
import sys

import iso8583
from iso8583.specs import default as spec


def clean(decoded):
    return {k: v for k, v in decoded.items() if k not in ("p", "1", "h")}


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return buf


def main():
    cmd = sys.argv[1]
    data = json.load(sys.stdin)
    if cmd == "encode":
        raw, _ = iso8583.encode(dict(data), spec)
        json.dump({"hex": bytes(raw).hex()}, sys.stdout)
    elif cmd == "decode":
        decoded, _ = iso8583.decode(bytes.fromhex(data["hex"]), spec)
        json.dump(clean(decoded), sys.stdout)
    elif cmd == "exchange":
        host, port = sys.argv[2], int(sys.argv[3])
        out = []
        with socket.create_connection((host, port), timeout=10) as sock:
            for msg in data:
                raw, _ = iso8583.encode(dict(msg), spec)
                sock.sendall(struct.pack(">H", len(raw)) + bytes(raw))
                (length,) = struct.unpack(">H", recv_exact(sock, 2))
                decoded, _ = iso8583.decode(recv_exact(sock, length), spec)
                out.append(clean(decoded))
        json.dump(out, sys.stdout)
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
