"""A webhook receiver for host/admin/tests/webhooks.rs.

Verifies every request with an independent Standard Webhooks
implementation (PyPI's `standardwebhooks`), then answers per a script.

    webhook_receiver.py SECRET SCRIPT OUT

SECRET: the subscription's `whsec_…`. SCRIPT: the status of each verified
request in turn, e.g. `500,200` (the last repeats). OUT: a file to which
each request is appended as one JSON line: {"verified", "status", "id",
"timestamp", "type", "data", "error"}. Prints `listening PORT` (127.0.0.1,
a free port) on stdout once ready; exits when stdin closes.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main() -> None:
    secret, script, out = sys.argv[1], sys.argv[2], sys.argv[3]
    statuses = [int(s) for s in script.split(",") if s]
    webhook = Webhook(secret)
    lock = threading.Lock()
    verified = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            record = {
                "id": headers.get("webhook-id"),
                "timestamp": headers.get("webhook-timestamp"),
                "content_type": headers.get("content-type"),
            }
            try:
                payload = webhook.verify(body, headers)
                record.update(verified=True, type=payload.get("type"), data=payload.get("data"),
                              event_time=payload.get("timestamp"))
                with lock:
                    n = verified[0]
                    verified[0] += 1
                status = statuses[min(n, len(statuses) - 1)]
            except (WebhookVerificationError, ValueError) as e:
                record.update(verified=False, error=str(e))
                status = 400
            record["status"] = status
            with lock, open(out, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"listening {server.server_address[1]}", flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
