"""HTTP as bytes on a socket, for requests a normal client refuses to send (conflicting
framing, oversized headers, false encodings, bodies cut short), and a `batchsvc serve`
process to send them to, whose JSON log lines the tests read."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from attrs import define

from tests.helpers.service import free_port, run_cli, wait_until_up

# Memory backend, no embedder: the tests here are about HTTP, not storage or search.
SERVE_CONFIG = """\
[auth]
keys_file = "keys.json"
[storage]
backend = "memory"
[storage.options]
[embedder]
name = "none"
[rate_limit]
batch_requests = 100000
other_requests = 100000
"""


@define
class RawResponse:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request_bytes(
    method: str, path: str, headers: list[tuple[str, str]], body: bytes = b""
) -> bytes:
    """A request as sent; headers exactly as given (no Content-Length is added)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{n}: {v}" for n, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def exchange(port: int, data: bytes, *, timeout: float = 10) -> RawResponse:
    """Send `data` on a new connection and read one response (by Content-Length, or to the
    end of the connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while True:
            head, found, body = received.partition(b"\r\n\r\n")
            if found:
                response = _parse(head, body)
                length = response.headers.get("content-length")
                if length is not None and len(body) >= int(length):
                    response.body = body[: int(length)]
                    return response
            chunk = sock.recv(65536)
            if not chunk:
                if not found:
                    raise AssertionError(f"connection closed without a response: {received!r}")
                return _parse(head, body)
            received += chunk


def _parse(head: bytes, body: bytes) -> RawResponse:
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(int(status_line.split()[1]), headers, body)


@define
class ServeProcess:
    """`batchsvc serve` on a free port, its standard error in a file, and a key."""

    port: int
    key: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def auth(self) -> tuple[str, str]:
        return ("Authorization", f"Bearer {self.key}")

    def log_lines(self) -> list[dict[str, Any]]:
        """Every JSON line logged so far (anything else on standard error is left out;
        `unstructured_log` has it)."""
        lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def unstructured_log(self) -> str:
        """Standard error without the JSON lines and aiohttp's banner: tracebacks and
        messages from the standard library's logging (aiohttp's own)."""
        lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        banner = ("======== Running on", "(Press CTRL+C to quit)")
        return "\n".join(
            line for line in lines if not line.startswith(("{", *banner)) and line.strip()
        )

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"{self.base}{path}", timeout=10) as response:
            body: bytes = response.read()
            return body

    def metric_lines(self, name: str) -> list[str]:
        return [
            line
            for line in self.get("/metrics").decode().splitlines()
            if line.startswith(name + "{")
        ]

    def wait_for_log(self, predicate: Any, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log_lines():
                if predicate(line):
                    return line
            time.sleep(0.05)
        raise AssertionError(f"no such log line in {self.log_lines()}")


@contextmanager
def serve_process(cwd: Path, extra_config: str = "") -> Iterator[ServeProcess]:
    config = cwd / "service.toml"
    config.write_text(SERVE_CONFIG + extra_config, encoding="utf-8")
    made = run_cli("keys", "create", "--tenant", "acme", "--config", str(config), cwd=cwd)
    assert made.returncode == 0, made.stderr
    port = free_port()
    log_path = cwd / "stderr.log"
    command = [sys.executable, "-m", "batchsvc", "serve", "--config", str(config)]
    with log_path.open("wb") as stderr:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    served = ServeProcess(port, made.stdout.strip(), process, log_path)
    try:
        wait_until_up(served.base)
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=15)
