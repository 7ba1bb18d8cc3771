"""Real `batchsvc` processes, for what only a process shows: the command line, signals, the log
on standard error, the file lock, /proc, a kill -9. Every test that starts `batchsvc serve`
starts it with `serving`; a start that must fail runs through `refused`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from attrs import define

#: A start that is refused must end by itself well within this (seconds).
REFUSAL_TIMEOUT = 30
#: How long a server has to exit after SIGTERM before it is killed (seconds).
STOP_TIMEOUT = 15

#: The shipped defaults (SQLite in `data/`, the wordllama embedder), but for the keys file,
#: kept in `state/`, and the batch quota: 1,000 batches a minute instead of the spec's 10.
DEFAULTS_CONFIG = '[auth]\nkeys_file = "state/keys.json"\n[rate_limit]\nbatch_requests = 1000\n'


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`batchsvc ARGS` in `cwd`, to its end; its exit code and output."""
    return subprocess.run(
        [sys.executable, "-m", "batchsvc", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def write_config(
    folder: Path, *, backend: str = "sqlite", db: str = "data/batchsvc.db", embedder: str = "none"
) -> Path:
    """A config in `folder`: the backend (SQLite at `db`, relative to `folder`, or memory), the
    embedder (none unless asked), keys in `state/`, and no rate limit in the way."""
    path = folder / f"service-{embedder}.toml"
    # Empty for memory, which takes no options: left out, they would be SQLite's defaults.
    options = f'path = "{db}"\n' if backend == "sqlite" else ""
    path.write_text(
        '[auth]\nkeys_file = "state/keys.json"\n'
        f'[storage]\nbackend = "{backend}"\n[storage.options]\n{options}'
        f'[embedder]\nname = "{embedder}"\n'
        "[rate_limit]\nbatch_requests = 100000\nother_requests = 100000\n",
        encoding="utf-8",
    )
    return path


def make_key(folder: Path, config: Path, tenant: str = "acme") -> str:
    """A new key for `tenant`, made by `batchsvc keys create`."""
    made = run_cli("keys", "create", "--tenant", tenant, "--config", str(config), cwd=folder)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@define
class Server:
    """A running `batchsvc serve`: its port, its process, its standard error (a file), and the
    key `serving(..., tenant=...)` made for it."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path
    made_key: str | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def key(self) -> str:
        assert self.made_key is not None, "serving(..., tenant=...) makes the server a key"
        return self.made_key

    def auth(self) -> tuple[str, str]:
        """The Authorization header of `key`, as a name and a value (for raw requests)."""
        return ("Authorization", f"Bearer {self.key}")

    def call(
        self,
        method: str,
        path: str,
        key: str | None = None,
        body: Any = None,
        *,
        timeout: float = 20,
    ) -> tuple[int, Any]:
        """One request; its status and decoded JSON body (errors included). `body` is sent
        as JSON, or as it is if it is bytes already."""
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base}{path}", data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def get(self, path: str) -> bytes:
        """The body of a GET that must succeed."""
        with urllib.request.urlopen(f"{self.base}{path}", timeout=10) as response:
            body: bytes = response.read()
            return body

    def metric_lines(self, name: str) -> list[str]:
        """The samples of metric `name` in /metrics, as exposed."""
        return [
            line
            for line in self.get("/metrics").decode().splitlines()
            if line.startswith(name + "{")
        ]

    def log_lines(self) -> list[dict[str, Any]]:
        """Every JSON line logged so far (anything else on standard error is left out;
        `unstructured_log` has it)."""
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def unstructured_log(self) -> str:
        """Standard error without the JSON lines and aiohttp's banner: tracebacks and
        messages from the standard library's logging (aiohttp's own)."""
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        banner = ("======== Running on", "(Press CTRL+C to quit)")
        return "\n".join(
            line for line in lines if not line.startswith(("{", *banner)) and line.strip()
        )

    def wait_for_log(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10
    ) -> dict[str, Any]:
        """The first JSON line logged for which `predicate` holds, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log_lines():
                if predicate(line):
                    return line
            time.sleep(0.05)
        raise AssertionError(f"no such log line in {self.log_lines()}")

    def wait_until_up(self) -> None:
        """Poll /healthz for up to 20 s (the embedder loads at start); a process that ends
        meanwhile fails at once, with what it said."""
        for _ in range(200):
            if self.process.poll() is not None:
                raise AssertionError(
                    f"`batchsvc serve` exited with {self.process.returncode}: "
                    + self.log.read_text(encoding="utf-8", errors="replace")[-2000:]
                )
            try:
                urllib.request.urlopen(f"{self.base}/healthz", timeout=1)
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        raise AssertionError(f"{self.base} did not come up")

    def stop(self) -> int:
        """SIGTERM, then SIGKILL if the process has not exited within `STOP_TIMEOUT`; its exit
        code (negative: the signal that ended it)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        return self.process.returncode


@contextmanager
def serving(
    folder: Path,
    config: Path,
    log_name: str = "server.log",
    *,
    tenant: str | None = None,
    check_exit: bool = False,
) -> Iterator[Server]:
    """`batchsvc serve --config CONFIG` in `folder` on a free port, its standard error in
    `folder/log_name`, until the block ends; then stopped (`Server.stop`) if still running.

    `tenant`: make a key for it first (`Server.key`). `check_exit`: once the block ended
    without an error, the process must have exited with 0 (a clean stop after SIGTERM)."""
    made_key = make_key(folder, config, tenant) if tenant is not None else None
    port = free_port()
    log = folder / log_name
    command = [sys.executable, "-m", "batchsvc", "serve", "--config", str(config)]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=sink,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    server = Server(port, process, log, made_key)
    try:
        server.wait_until_up()
        yield server
    finally:
        server.stop()
    if check_exit:
        assert process.returncode == 0, server.unstructured_log()[-2000:]


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
