"""A webhook receiver for vicibridge's end-to-end tests: a real HTTP server that verifies every
request with the official Standard Webhooks library (`standardwebhooks`, pinned in
scripts/test) and checks every body against schemas/webhook-event.v1.json (`jsonschema`).

    python receiver.py --log requests.jsonl --schema schemas/webhook-event.v1.json \
        --secret whsec_... [--secret whsec_...] [--examples schemas/examples]

Prints `listening PORT` once it accepts connections. Each request is appended to the log as
one JSON object: the Standard Webhooks headers, which of the --secret values verified it (each
one is tried on its own, as a receiver holding only that secret would), whether the body
matches the schema, the parsed body, the answer sent. What to answer is scripted over HTTP:
POST /_script with {"answers": [{"status": 503, "headers": {...}, "body": "...",
"hang_secs": 5}, ...]} queues answers taken one per request; then 204 (the default).
"""

import argparse
import json
import pathlib
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
from standardwebhooks import Webhook, WebhookVerificationError


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--secret", action="append", default=[])
    parser.add_argument("--examples", help="a directory of example bodies that must match the schema")
    args = parser.parse_args()

    with open(args.schema, encoding="utf-8") as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    if args.examples:
        # The published examples (schemas/examples/*.json) must match the published schema.
        for path in sorted(pathlib.Path(args.examples).glob("*.json")):
            example = json.loads(path.read_text(encoding="utf-8"))
            errors = [e.message for e in validator.iter_errors(example)]
            if errors or path.stem != example.get("type"):
                print(f"invalid example {path.name}: {errors or 'file name is not its type'}", flush=True)
                return 1
    hooks = [Webhook(s) for s in args.secret]
    lock = threading.Lock()
    answers = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def reply(self, status, headers=None, body=""):
            data = body.encode()
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path == "/_script":
                with lock:
                    answers.extend(json.loads(raw)["answers"])
                self.reply(204)
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            verified = []
            for i, hook in enumerate(hooks):
                try:
                    hook.verify(raw, headers)
                    verified.append(i)
                except WebhookVerificationError:
                    pass
            try:
                body = json.loads(raw)
                errors = [e.message for e in validator.iter_errors(body)]
            except ValueError as e:
                body, errors = None, [f"not JSON: {e}"]
            with lock:
                answer = answers.pop(0) if answers else {"status": 204}
            record = {
                "at": time.time(),
                "path": self.path,
                "webhook_id": headers.get("webhook-id"),
                "webhook_timestamp": headers.get("webhook-timestamp"),
                "signatures": len(headers.get("webhook-signature", "").split()),
                "verified_with": verified,
                "schema_errors": errors[:5],
                "headers": {k: v for k, v in headers.items() if not k.startswith("webhook-")},
                "raw": raw.decode("utf-8", "replace"),
                "body": body,
                "answered": answer.get("status", 204),
            }
            with lock, open(args.log, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            if answer.get("hang_secs"):
                time.sleep(answer["hang_secs"])
            try:
                self.reply(answer.get("status", 204), answer.get("headers"), answer.get("body", ""))
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
