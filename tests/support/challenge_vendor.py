"""A stand-in for a bot-challenge vendor (Cloudflare Turnstile, hCaptcha) in its own process, on the
standard library's HTTP server (independent of the gateway's h11 client):

- `GET /api.js`: the widget's script. It defines `turnstile` and `hcaptcha` with the vendors'
  explicit-rendering calls, `render(element, {sitekey, callback, ...}) -> id` and `reset(id)`; the
  widget is a button, "I am human", whose click hands the page a fresh token `pass.<random>`.
- `POST /siteverify`: the vendors' form (secret, response, remoteip) -> JSON `success` and
  `error-codes`: a token passes once, with the right secret; a second use is `timeout-or-duplicate`.
  Each verification is appended to `--log` as a JSON line (token, remoteip, whether the secret was
  right: never the secret itself).
- `POST /mode` with `ok`, `hang` (never answer) or `garbage` (200, not JSON): how siteverify behaves.

Served on two loopback ports: HTTPS (`--tls-cert/--tls-key`: the page loads the script from a
secure origin) and plain HTTP (the gateway's siteverify to a loopback address). Prints
`ready <https port> <http port>` when listening.

    python -m tests.support.challenge_vendor --secret S --tls-cert C --tls-key K --log verify.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

SCRIPT = """(() => {
  const widgets = new Map();
  let next = 0;
  const vendor = {
    render(element, options) {
      const id = "w" + (next++);
      const button = document.createElement("button");
      button.type = "button";
      button.className = "stand-in-challenge";
      button.dataset.sitekey = options.sitekey || "";
      button.textContent = "I am human";
      button.addEventListener("click", () => {
        const bytes = crypto.getRandomValues(new Uint8Array(12));
        const token = "pass." + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
        button.dataset.solved = "true";
        options.callback(token);
      });
      element.append(button);
      widgets.set(id, button);
      return id;
    },
    reset(id) {
      const button = widgets.get(id);
      if (button) delete button.dataset.solved;
    },
  };
  window.turnstile = vendor;
  window.hcaptcha = vendor;
})();
"""


class State:
    def __init__(self, secret: str, log: Path) -> None:
        self.secret = secret
        self.log = log
        self.used: set[str] = set()
        self.mode = "ok"
        self.lock = threading.Lock()


def handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Access-Control-Allow-Origin", "*")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path.split("?")[0] == "/api.js":
                self._answer(200, "application/javascript", SCRIPT.encode())
            else:
                self._answer(404, "text/plain", b"not found\n")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode()
            if self.path == "/mode":
                state.mode = body.strip()
                self._answer(200, "text/plain", b"ok\n")
                return
            if self.path != "/siteverify":
                self._answer(404, "text/plain", b"not found\n")
                return
            if state.mode == "hang":
                time.sleep(60)
                return
            if state.mode == "garbage":
                self._answer(200, "text/html", b"<html>maintenance</html>")
                return
            form = {k: v[0] for k, v in parse_qs(body).items()}
            token, right_secret = form.get("response", ""), form.get("secret") == state.secret
            with state.lock:
                if not right_secret:
                    codes = ["invalid-input-secret"]
                elif not token.startswith("pass."):
                    codes = ["invalid-input-response"]
                elif token in state.used:
                    codes = ["timeout-or-duplicate"]
                else:
                    codes = []
                    state.used.add(token)
                with state.log.open("a") as out:
                    out.write(json.dumps({"token": token, "remoteip": form.get("remoteip", ""),
                                          "sitekey": form.get("sitekey", ""), "secret_ok": right_secret,
                                          "success": not codes}) + "\n")
            self._answer(200, "application/json", json.dumps({"success": not codes, "error-codes": codes}).encode())

    return Handler


class Vendor:
    """The stand-in as a process of its own: `start()`, then `script` (https) and `verify_url` (http);
    `mode("hang")`; `verifications()`; `stop()` by its pid."""

    def __init__(self, directory: Path, secret: str, pki: Path) -> None:
        self.secret = secret
        self.log = directory / "verifications.jsonl"
        self.args = [sys.executable, "-m", "tests.support.challenge_vendor", "--secret", secret,
                     "--tls-cert", str(pki / "server.crt"), "--tls-key", str(pki / "server.key"),
                     "--log", str(self.log)]
        self.p: subprocess.Popen[str] | None = None
        self.https_port = self.http_port = 0

    def start(self) -> Vendor:
        self.p = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
        assert self.p.stdout is not None
        line = self.p.stdout.readline().split()
        assert line[:1] == ["ready"], f"the challenge vendor did not start: {line}"
        self.https_port, self.http_port = int(line[1]), int(line[2])
        return self

    @property
    def script(self) -> str:
        return f"https://127.0.0.1:{self.https_port}/api.js"

    @property
    def verify_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/siteverify"

    def mode(self, mode: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=5)
        try:
            conn.request("POST", "/mode", body=mode.encode())
            assert conn.getresponse().status == 200
        finally:
            conn.close()

    def verifications(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []

    def stop(self) -> None:
        if self.p is not None and self.p.poll() is None:
            self.p.kill()
            self.p.wait(10)


@contextlib.asynccontextmanager
async def running_vendor(directory: Path, secret: str, pki: Path) -> AsyncIterator[Vendor]:
    """A stand-in vendor for the test's length (its TLS: the development PKI's server certificate)."""
    vendor = await asyncio.to_thread(Vendor(directory, secret, pki).start)
    try:
        yield vendor
    finally:
        vendor.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--tls-cert", required=True)
    parser.add_argument("--tls-key", required=True)
    parser.add_argument("--log", required=True, type=Path)
    args = parser.parse_args(argv)
    state = State(args.secret, args.log)
    secure = ThreadingHTTPServer(("127.0.0.1", 0), handler(state))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.tls_cert, args.tls_key)
    secure.socket = context.wrap_socket(secure.socket, server_side=True)
    plain = ThreadingHTTPServer(("127.0.0.1", 0), handler(state))
    for server in (secure, plain):
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"ready {secure.server_address[1]} {plain.server_address[1]}", flush=True)
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
