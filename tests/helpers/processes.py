"""Real `batchsvc` processes on a real SQLite file, for the tests of storage faults: a config
file, a server that is stopped (or killed) at the end, a start that must be refused, and a
client that speaks JSON."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from attrs import define

from tests.helpers.service import free_port, run_cli, wait_until_up

#: A start that is refused must end by itself well within this (seconds).
REFUSAL_TIMEOUT = 30


def write_config(folder: Path, *, db: str = "data/batchsvc.db", embedder: str = "none") -> Path:
    """A config in `folder`: SQLite at `db` (relative to `folder`), no rate limit in the way."""
    path = folder / f"service-{embedder}.toml"
    path.write_text(
        '[auth]\nkeys_file = "state/keys.json"\n'
        f'[storage]\nbackend = "sqlite"\n[storage.options]\npath = "{db}"\n'
        f'[embedder]\nname = "{embedder}"\n'
        "[rate_limit]\nbatch_requests = 100000\nother_requests = 100000\n",
        encoding="utf-8",
    )
    return path


def make_key(folder: Path, config: Path, tenant: str = "acme") -> str:
    made = run_cli("keys", "create", "--tenant", tenant, "--config", str(config), cwd=folder)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


@define
class Server:
    base: str
    process: subprocess.Popen[bytes]
    log: Path

    def call(
        self, method: str, path: str, key: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        """One request; its status and decoded JSON body (errors included)."""
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base}{path}", data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def log_lines(self) -> list[dict[str, Any]]:
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@contextmanager
def serving(folder: Path, config: Path, log_name: str = "server.log") -> Iterator[Server]:
    """`batchsvc serve` until the block ends (then SIGTERM; SIGKILL if it does not stop)."""
    port = free_port()
    log = folder / log_name
    command = [sys.executable, "-m", "batchsvc", "serve", "--config", str(config)]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*command, "--port", str(port)], cwd=folder, stdout=subprocess.DEVNULL, stderr=sink
        )
    try:
        wait_until_up(f"http://127.0.0.1:{port}")
        yield Server(f"http://127.0.0.1:{port}", process, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


def refused(folder: Path, *args: str) -> tuple[int, str]:
    """Run `batchsvc ARGS`, which must end by itself (a start that fails must not hang);
    its exit code and standard error. A process still running is killed, and the test fails."""
    command = [sys.executable, "-m", "batchsvc", *args]
    if args[0] == "serve":
        command += ["--port", str(free_port())]
    process = subprocess.Popen(
        command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _, stderr = process.communicate(timeout=REFUSAL_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        raise AssertionError(
            f"`batchsvc {' '.join(args)}` still ran after {REFUSAL_TIMEOUT} s: "
            + stderr.decode(errors="replace")[-2000:]
        ) from None
    return process.returncode, stderr.decode(errors="replace")
