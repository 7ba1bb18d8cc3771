"""Throughput of POST /api/v1/batch against single requests and against a bare aiohttp floor.

Run from the repository root, with batchsvc installed:

    python bench/bench_batch.py            # the full run: about 10-15 s on 2 cores
    python bench/bench_batch.py --quick    # a short run, for a smoke check
    python bench/bench_batch.py --profile  # the batch path under cProfile: top entries

Every server runs in its own process (spawned, so it carries none of the client's heap), on
127.0.0.1 with a free port; the load generator is an aiohttp ClientSession in this process with
a few requests in flight over keep-alive connections. Each measurement starts with a warm-up.

The service is the real one: `create_app` with the in-memory backend, a key made by KeyStore in
a temporary folder, rate limits raised out of reach, and logging configured as `batchsvc serve`
configures it (JSON lines on stderr), with the server's stderr sent to a temporary file: a line
per request is part of the real cost, but it must not flood the terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import json
import multiprocessing
import os
import random
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

BATCH_SIZE = 100
# Measured requests per path, split into rounds (500 batches = 50,000 ops), after a warm-up.
FULL = {"batches": 500, "singles": 6_000, "rounds": 5}
QUICK = {"batches": 40, "singles": 400, "rounds": 2}
# The targets: the batch path against the single path, and against the floor.
TARGET_VS_SINGLE = 25.0
TARGET_VS_FLOOR = 0.5
HIGH_RATE_LIMIT = {"batch_requests": 10**9, "other_requests": 10**9, "window_seconds": 60}
# Words for the memories' text: shared terms make the lexical index do real work.
VOCABULARY = """
project alpha beta deploy review meeting notes customer invoice latency cache retry schema
migration index query budget roadmap design incident postmortem release branch token config
service backend storage vector search memory context workflow
"""
WORDS = VOCABULARY.split()
MEMORY_TYPES = ("context", "project", "knowledge", "reference", "personal", "workflow")


@dataclass(frozen=True)
class Settings:
    batches: int
    singles: int
    rounds: int
    width: int
    gc: bool
    key: str
    keys_file: str


# --- the workload ------------------------------------------------------------------------------


def make_create(rng: random.Random, n: int) -> dict[str, Any]:
    """One plausible create: ~170 characters of text, a title, two tags, a little metadata."""
    content = " ".join(rng.choice(WORDS) for _ in range(22))
    return {
        "type": "create",
        "data": {
            "content": f"note {n}: {content}",
            "title": f"{rng.choice(WORDS)} {rng.choice(WORDS)} {n}",
            "memory_type": rng.choice(MEMORY_TYPES),
            "tags": [rng.choice(WORDS), f"bench-{n % 7}"],
            "metadata": {"source": "bench", "n": n, "priority": rng.randint(1, 5)},
        },
    }


@dataclass
class Workload:
    """Pre-encoded bodies, so the client spends no time encoding while it measures."""

    batches: list[bytes]
    singles: list[bytes]


def make_workload(distinct_batches: int = 20, seed: int = 7) -> Workload:
    rng = random.Random(seed)
    batches: list[bytes] = []
    singles: list[bytes] = []
    for b in range(distinct_batches):
        ops = [make_create(rng, b * BATCH_SIZE + i) for i in range(BATCH_SIZE)]
        batches.append(orjson.dumps({"operations": ops}))
        singles.extend(orjson.dumps(op["data"]) for op in ops)
    return Workload(batches, singles)


# --- the server process ------------------------------------------------------------------------

FLOOR_STORE: list[Any] = []


def _floor_app(loads: Callable[[bytes], Any], dumps: Callable[[Any], bytes]) -> web.Application:
    """The floor: parse the body, keep the dicts, answer a small JSON. No middleware, no logs."""

    async def batch(request: web.Request) -> web.Response:
        operations = loads(await request.read())["operations"]
        FLOOR_STORE.extend(operations)
        body = dumps({"success": True, "count": len(operations)})
        return web.Response(body=body, content_type="application/json")

    async def single(request: web.Request) -> web.Response:
        FLOOR_STORE.append(loads(await request.read()))
        body = dumps({"success": True, "count": 1})
        return web.Response(body=body, status=201, content_type="application/json")

    app = web.Application()
    app.router.add_post("/api/v1/batch", batch)
    app.router.add_post("/api/v1/memories", single)
    return app


def _service_app(keys_file: str) -> web.Application:
    """The real service, configured and logging exactly as `batchsvc serve` does."""
    from batchsvc.config import parse_config
    from batchsvc.http.app import create_app, freeze_startup_heap
    from batchsvc.logs import configure_logging

    raw = {
        "auth": {"keys_file": keys_file},
        "rate_limit": HIGH_RATE_LIMIT,
        # Set by --embedder in the parent; spawned servers inherit the environment.
        "embedder": {"name": os.environ.get("BATCHSVC_BENCH_EMBEDDER", "none")},
        # The figures in the README are the in-memory backend's: the service's own cost.
        "storage": {"backend": "memory", "options": {}},
    }
    config = parse_config(raw, "bench", env={})
    configure_logging(config.logging.level, config.logging.json)
    app = create_app(config)
    freeze_startup_heap(app)  # as `batchsvc serve` does
    return app


def _json_dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def build_app(kind: str, keys_file: str) -> web.Application:
    if kind == "service":
        return _service_app(keys_file)
    if kind == "floor-orjson":
        return _floor_app(orjson.loads, orjson.dumps)
    if kind == "floor-json":
        return _floor_app(json.loads, _json_dumps)
    raise ValueError(kind)


class Profiler:
    """cProfile, or pyinstrument (sampling, less distorting) when asked for and installed."""

    def __init__(self, kind: str | None) -> None:
        self.kind = kind
        self._impl: Any = None

    def start(self) -> None:
        if self.kind == "pyinstrument":
            import pyinstrument  # type: ignore[import-not-found, unused-ignore]

            self._impl = pyinstrument.Profiler(interval=0.0005, async_mode="disabled")
            self._impl.start()
        elif self.kind == "cprofile":
            import cProfile

            self._impl = cProfile.Profile()
            self._impl.enable()

    def report(self) -> str:
        if self._impl is None:
            return ""
        if self.kind == "pyinstrument":
            self._impl.stop()
            return str(self._impl.output_text(unicode=False, color=False))
        self._impl.disable()
        return _shorten_paths(_pstats_text(self._impl))


def _pstats_text(profile: Any) -> str:
    import pstats

    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    out.write("== top 30 by cumulative time ==\n")
    stats.sort_stats("cumulative").print_stats(30)
    out.write("== top 25 by own (internal) time ==\n")
    stats.sort_stats("tottime").print_stats(25)
    return out.getvalue()


def _shorten_paths(text: str) -> str:
    paths = sysconfig.get_paths()
    prefixes = {paths["purelib"], paths["stdlib"], str(Path(__file__).resolve().parent.parent)}
    for prefix in sorted(prefixes, key=len, reverse=True):
        text = text.replace(prefix + "/", "")
    return text


class GcClock:
    """Wall time spent in the cyclic garbage collector, from gc.callbacks."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._began = 0.0
        gc.callbacks.append(self.on_gc)

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._began


async def _serve(kind: str, keys_file: str, profiler_kind: str | None, conn: Any) -> None:
    runner = web.AppRunner(build_app(kind, keys_file), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    profiler = Profiler(profiler_kind)
    gc_clock = GcClock()

    def on_command() -> None:
        command = conn.recv()
        if command == "cpu":
            conn.send((time.process_time(), gc_clock.seconds))
        elif command == "profile":
            profiler.start()
            conn.send("ok")
        elif command == "stop":
            loop.remove_reader(conn.fileno())
            stop.set()

    loop.add_reader(conn.fileno(), on_command)
    conn.send(runner.addresses[0][1])
    await stop.wait()
    conn.send(profiler.report())
    await runner.cleanup()


def server_main(
    kind: str, keys_file: str, log_path: str, profiler: str | None, gc_on: bool, conn: Any
) -> None:
    """The server process: stderr (and so structlog's lines) goes to `log_path`."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 2)
    os.close(fd)
    if not gc_on:
        gc.disable()
    asyncio.run(_serve(kind, keys_file, profiler, conn))


class PipeServer:
    """A server in a spawned process, driven through a pipe; `target(*args, pipe)` must send
    its port first, then answer commands. bench_search.py uses it too."""

    def __init__(
        self, target: Callable[..., None], args: tuple[Any, ...], log_path: str, start_s: float
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.log_path = log_path
        self._conn, child = context.Pipe()
        self.process = context.Process(target=target, args=(*args, child), daemon=True)
        self.process.start()
        child.close()
        self.port: int = self._ask(None, start_s)

    def _ask(self, command: str | None, timeout: float) -> Any:
        try:
            if command is not None:
                self._conn.send(command)
            if self._conn.poll(timeout):
                return self._conn.recv()
        except (EOFError, OSError):
            pass
        tail = Path(self.log_path).read_text(errors="replace")[-3000:]
        self.process.terminate()
        raise SystemExit(f"the server process did not answer {command!r}; its stderr:\n{tail}")


class Server(PipeServer):
    """A server process for one measurement."""

    def __init__(self, kind: str, settings: Settings, log_path: str, profiler: str | None) -> None:
        args = (kind, settings.keys_file, log_path, profiler, settings.gc)
        super().__init__(server_main, args, log_path, 60)

    def start_profiling(self) -> None:
        self._ask("profile", 30)

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU seconds the server process has used so far, and seconds spent in its GC."""
        cpu, in_gc = self._ask("cpu", 30)
        return float(cpu), float(in_gc)

    def stop(self) -> str:
        """Stop the server; returns its profile report ('' when not profiling)."""
        report = str(self._ask("stop", 120))
        self.process.join(30)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        return report


# --- the load generator ------------------------------------------------------------------------


@dataclass
class Target:
    """One thing to measure: which server, which route, which bodies, what counts as success."""

    label: str
    server: str
    route: str
    bodies: list[bytes]
    ops_per_request: int
    expect_status: int


@dataclass
class Round:
    seconds: float
    requests: int
    ops: int
    latencies: list[float]
    server_cpu: float
    server_gc: float
    client_cpu: float

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds


@dataclass
class Measurement:
    """All measured rounds of one target; the totals are over every round."""

    target: Target
    rounds: list[Round] = field(default_factory=list)
    log_lines: int = 0

    def total(self, name: str) -> float:
        return float(sum(getattr(r, name) for r in self.rounds))

    @property
    def ops_per_s(self) -> float:
        return self.total("ops") / self.total("seconds")

    @property
    def ops_per_cpu_s(self) -> float:
        return self.total("ops") / self.total("server_cpu")

    @property
    def latencies(self) -> list[float]:
        return sorted(x for r in self.rounds for x in r.latencies)


async def _send(
    session: aiohttp.ClientSession, target: Target, headers: dict[str, str], count: int, width: int
) -> list[float]:
    """Send `count` requests, `width` in flight; returns each request's latency."""
    latencies: list[float] = []
    issued = iter(range(count))

    async def worker() -> None:
        for i in issued:
            body = target.bodies[i % len(target.bodies)]
            began = time.perf_counter()
            async with session.post(target.route, data=body, headers=headers) as response:
                payload = await response.read()
                if response.status != target.expect_status:
                    raise RuntimeError(f"{target.label}: {response.status} {payload[:300]!r}")
            latencies.append(time.perf_counter() - began)

    await asyncio.gather(*(worker() for _ in range(width)))
    return latencies


async def _check_once(
    session: aiohttp.ClientSession, target: Target, headers: dict[str, str]
) -> None:
    """Check that the server really does the work before trusting its speed."""
    async with session.post(target.route, data=target.bodies[0], headers=headers) as response:
        body = await response.json()
    assert response.status == target.expect_status, body
    if target.server != "service":
        assert body["count"] == target.ops_per_request, body
    elif target.ops_per_request > 1:
        data = body["data"]
        assert data["processed"] == target.ops_per_request and data["failed"] == 0, data
    else:
        assert body["data"]["id"].startswith("mem_"), body


async def drive(
    server: Server,
    target: Target,
    settings: Settings,
    count: int,
    rounds: int,
    after_warmup: Callable[[], None] | None = None,
) -> list[Round]:
    """Warm up with a tenth of `count`, then send `count` requests in `rounds` timed rounds."""
    headers = {"Authorization": f"Bearer {settings.key}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=settings.width)
    timeout = aiohttp.ClientTimeout(total=60)
    base = f"http://127.0.0.1:{server.port}"
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as session:
        await _check_once(session, target, headers)
        await _send(session, target, headers, max(settings.width, count // 10), settings.width)
        if after_warmup is not None:
            after_warmup()
        results = []
        for _ in range(rounds):
            results.append(
                await _timed(server, session, target, headers, count // rounds, settings)
            )
    return results


async def _timed(
    server: Server,
    session: aiohttp.ClientSession,
    target: Target,
    headers: dict[str, str],
    count: int,
    settings: Settings,
) -> Round:
    (cpu0, gc0), client0, t0 = server.cpu_seconds(), time.process_time(), time.perf_counter()
    latencies = await _send(session, target, headers, count, settings.width)
    seconds = time.perf_counter() - t0
    (cpu1, gc1), client1 = server.cpu_seconds(), time.process_time()
    ops = count * target.ops_per_request
    return Round(seconds, count, ops, latencies, cpu1 - cpu0, gc1 - gc0, client1 - client0)


def measure(target: Target, settings: Settings) -> Measurement:
    count = settings.batches if target.ops_per_request > 1 else settings.singles
    with tempfile.NamedTemporaryFile(prefix="bench-server-", suffix=".log") as log:
        server = Server(target.server, settings, log.name, None)
        try:
            rounds = asyncio.run(drive(server, target, settings, count, settings.rounds))
        finally:
            server.stop()
        with open(log.name, "rb") as handle:
            lines = sum(1 for _ in handle)
    return Measurement(target, rounds, lines)


# --- reporting ---------------------------------------------------------------------------------


def _ms(ordered: list[float], q: float) -> float:
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def print_table(measurements: dict[str, Measurement]) -> None:
    header = (
        f"{'path':<34} {'requests':>8} {'ops':>6} {'ops/s':>9} {'ops/CPU-s':>9} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'srv CPU':>7} {'GC':>4} {'cli CPU':>7}  ops/s per round"
    )
    print(header)
    print("-" * len(header))
    for m in measurements.values():
        seconds, lat = m.total("seconds"), m.latencies
        per_round = " / ".join(f"{r.ops_per_s:,.0f}" for r in m.rounds)
        print(
            f"{m.target.label:<34} {m.total('requests'):>8,.0f} {m.total('ops'):>6,.0f} "
            f"{m.ops_per_s:>9,.0f} {m.ops_per_cpu_s:>9,.0f} "
            f"{_ms(lat, 0.5):>7.2f} {_ms(lat, 0.99):>7.2f} "
            f"{m.total('server_cpu') / seconds:>7.0%} "
            f"{m.total('server_gc') / m.total('server_cpu'):>4.0%} "
            f"{m.total('client_cpu') / seconds:>7.0%}  "
            f"{per_round}"
        )


def _ratio_line(label: str, by_wall: float, by_cpu: float, target: float | None) -> str:
    line = f"{label:<39} {by_wall:7.2f}x {by_cpu:9.2f}x"
    if target is not None:
        verdict = "PASS" if by_wall >= target else "FAIL"
        line += f"   >= {target:g}x   {verdict}"
    return line


def print_ratios(m: dict[str, Measurement]) -> None:
    def ratio(label: str, top: str, bottom: str, target: float | None = None) -> None:
        by_wall = m[top].ops_per_s / m[bottom].ops_per_s
        by_cpu = m[top].ops_per_cpu_s / m[bottom].ops_per_cpu_s
        print(_ratio_line(label, by_wall, by_cpu, target))

    print(f"\n{'ratio':<39} {'by ops/s':>8} {'by ops/CPU-s':>10}   target  verdict (by ops/s)")
    ratio("(a)/(b)  batch vs single, service", "a", "b", TARGET_VS_SINGLE)
    ratio("(a)/(c)  batch vs floor (orjson)", "a", "c", TARGET_VS_FLOOR)
    ratio("(a)/(c') batch vs floor (stdlib json)", "a", "c_json")
    ratio("(c)/(d)  bare handler, batch vs single", "c", "d")
    print(
        "(the issue: a bare handler's batch path is about 30-45x its single path here)\n"
        f"\nservice log lines written (a, b): {m['a'].log_lines:,}, {m['b'].log_lines:,} "
        "(one per request, warm-up included)\n"
        "ops/CPU-s: ops per CPU second of the server process; steadier than ops/s on a busy box\n"
        "srv/cli CPU: CPU seconds per wall second of the server / client process (100% = 1 core)"
        "\nGC: the share of the server's CPU time spent in the cyclic garbage collector"
    )


def targets(workload: Workload) -> dict[str, Target]:
    batch, single = workload.batches, workload.singles
    return {
        "a": Target(
            "(a) service, batch of 100 creates", "service", "/api/v1/batch", batch, 100, 200
        ),
        "b": Target("(b) service, single creates", "service", "/api/v1/memories", single, 1, 201),
        "c": Target("(c) floor, batch, orjson", "floor-orjson", "/api/v1/batch", batch, 100, 200),
        "c_json": Target(
            "(c') floor, batch, stdlib json", "floor-json", "/api/v1/batch", batch, 100, 200
        ),
        "d": Target(
            "(d) floor, single, orjson", "floor-orjson", "/api/v1/memories", single, 1, 201
        ),
    }


# --- main --------------------------------------------------------------------------------------


def run_table(settings: Settings) -> None:
    workload = make_workload()
    print(
        f"batch body: {len(workload.batches[0]):,} bytes for {BATCH_SIZE} creates; single body: "
        f"~{len(workload.singles[0])} bytes; {settings.width} requests in flight; "
        f"{settings.rounds} round(s); {os.cpu_count()} CPUs; Python {sys.version.split()[0]}, "
        f"aiohttp {aiohttp.__version__}, orjson {orjson.__version__}"
        + ("; SERVER GC DISABLED" if not settings.gc else "")
        + "\n",
        flush=True,
    )
    measurements = {}
    for name, target in targets(workload).items():
        print(f"  measuring {target.label} ...", file=sys.stderr, flush=True)
        measurements[name] = measure(target, settings)
    print_table(measurements)
    print_ratios(measurements)
    _warn_if_busy(measurements["a"])


def _warn_if_busy(batch: Measurement) -> None:
    """The batch path keeps its server on one core; less means others took the CPU."""
    share = batch.total("server_cpu") / batch.total("seconds")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average now: {load} ({os.cpu_count()} CPUs)")
    if share < 0.85:
        print(
            f"WARNING: the service's batch server got only {share:.0%} of a core: other "
            "processes competed for the CPU, so ops/s is low; compare ops/CPU-s instead."
        )


def run_profile(which: str, profiler: str, settings: Settings) -> None:
    target = targets(make_workload())["a" if which == "batch" else "b"]
    count = settings.batches if which == "batch" else settings.singles
    with tempfile.NamedTemporaryFile(prefix="bench-server-", suffix=".log") as log:
        server = Server(target.server, settings, log.name, profiler)
        try:
            run = drive(server, target, settings, count, 1, server.start_profiling)
            rounds = asyncio.run(run)
        finally:
            report = server.stop()
    ops_per_s = rounds[0].ops_per_s
    print(f"{target.label} under {profiler}: {ops_per_s:,.0f} ops/s (slowed by the profiler)")
    print(f"server-side profile of the measured requests (warm-up excluded):\n\n{report}")


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run with few requests")
    parser.add_argument("--concurrency", type=int, default=6, help="requests in flight")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="batch",
        choices=("batch", "single"),
        help="profile the service's batch (default) or single path, instead of the table",
    )
    parser.add_argument(
        "--profiler",
        choices=("cprofile", "pyinstrument"),
        default="cprofile",
        help="pyinstrument samples instead of tracing; it must be installed separately",
    )
    parser.add_argument(
        "--embedder",
        default="none",
        help="the service's embedder: none (default) measures the service's own cost, which "
        "is what the floor comparison is about; wordllama is what `batchsvc serve` runs",
    )
    parser.add_argument(
        "--no-gc",
        action="store_true",
        help="diagnostic: disable the cyclic garbage collector in the server processes",
    )
    return parser.parse_args()


def main() -> None:
    args = _args()
    os.environ["BATCHSVC_BENCH_EMBEDDER"] = args.embedder
    print(f"service embedder: {args.embedder}")
    sizes = QUICK if args.quick else FULL
    from batchsvc.api_keys import KeyStore

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-keys-") as folder:
        keys_file = str(Path(folder) / "keys.json")
        key = KeyStore(Path(keys_file)).create("bench")[1]
        width, gc_on = args.concurrency, not args.no_gc
        settings = Settings(**sizes, width=width, gc=gc_on, key=key, keys_file=keys_file)
        if args.profile:
            run_profile(args.profile, args.profiler, settings)
        else:
            run_table(settings)
    print(f"\n(bench took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
