"""The SQLite backend with the default embedder: creates/s through POST /api/v1/batch against
the embedder alone plus raw inserts of the same rows, and search latency per mode.

Run from the repository root, with batchsvc installed:

    python bench/bench_search.py            # 10,000 and 100,000 memories: a few minutes
    python bench/bench_search.py --quick    # 10,000 memories only, fewer queries
    python bench/bench_search.py --continue-on-error   # batches with continue_on_error: true

What it does, in one run, on a fresh temporary data folder:

1. Starts the real service (`create_app`, backend `sqlite`, embedder `wordllama`, logging as
   `batchsvc serve` configures it, rate limits out of reach) in a spawned process on 127.0.0.1,
   and sends 100 batches of 100 creates (4 in flight). The first 5 batches are a warm-up; the
   other 9,500 creates are timed. The server's file then holds 10,000 memories.
2. Searches them through POST /api/v1/memories/search, one request in flight, in each mode.
3. Stops the server and, in this process, times on the same 9,500 rows: the embedder alone
   (`WordLlamaEmbedder.embed`, batches of 100, the same `embedding_text` the service embeds),
   and raw inserts into fresh files at the service's schema, one transaction per 100 rows:
   (c) plain `sqlite3` statements (the issue's baseline), (d) `SQLiteStore.create_many` of
   100 (the store's part of a batch of creates, without HTTP and the executor).
4. Unless --quick: adds 90,000 more memories straight into the server's file (embedder +
   `SQLiteStore.create_many` of 100, not through HTTP), restarts the server on it and searches
   again at 100,000.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))  # for bench_batch, run as a script
import bench_batch as bb  # noqa: E402

BATCH_SIZE = bb.BATCH_SIZE
SMALL, LARGE = 10_000, 100_000
WARMUP_BATCHES = 5
IN_FLIGHT = 4
MODES = ("lexical", "semantic", "hybrid")
TENANT = "bench"
TARGET_RATIO = 1.5
TARGET_HYBRID_P99_MS = 50.0


# --- the data ----------------------------------------------------------------------------------


def vocabulary() -> list[str]:
    """Whole English-ish words from WordLlama's own tokenizer, roughly in frequency order, so a
    Zipf draw over them gives text whose words the embedder knows and whose terms the lexical
    index sees with realistic skew (common words in many rows, rare ones in few)."""
    import wordllama

    folder = Path(wordllama.__file__).parent / "tokenizers"
    try:
        path = next(folder.glob("*.json"))
        vocab = json.loads(path.read_text())["model"]["vocab"]
    except (StopIteration, OSError, KeyError, ValueError):
        return list(bb.WORDS)
    words = [k[1:] for k in vocab if k.startswith("\u2581") and len(k) >= 5]
    return [w for w in words if w.isascii() and w.isalpha() and w.islower()] or list(bb.WORDS)


class Texts:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.words = vocabulary()
        self.weights = [1.0 / (rank + 10) for rank in range(len(self.words))]

    def draw(self, k: int) -> list[str]:
        return self.rng.choices(self.words, self.weights, k=k)

    def create(self, n: int) -> dict[str, Any]:
        """Shaped like bench_batch's creates: ~22 words of content, a title, tags, metadata."""
        rng = self.rng
        return {
            "content": f"note {n}: {' '.join(self.draw(22))}",
            "title": f"{' '.join(self.draw(2))} {n}",
            "memory_type": rng.choice(bb.MEMORY_TYPES),
            "tags": [rng.choice(bb.WORDS), f"bench-{n % 7}"],
            "metadata": {"source": "bench", "n": n, "priority": rng.randint(1, 5)},
        }


def batch_body(rows: list[dict[str, Any]], options: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"operations": [{"type": "create", "data": r} for r in rows]}
    if options:
        body["options"] = options
    return orjson.dumps(body)


def chunks(rows: list[Any], size: int = BATCH_SIZE) -> list[list[Any]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


# --- the server process ------------------------------------------------------------------------


def _app(db_path: str, keys_file: str) -> Any:
    from batchsvc.config import parse_config
    from batchsvc.http.app import create_app, freeze_startup_heap
    from batchsvc.logs import configure_logging

    raw = {
        "auth": {"keys_file": keys_file},
        "rate_limit": bb.HIGH_RATE_LIMIT,
        "embedder": {"name": "wordllama"},
        "storage": {"backend": "sqlite", "options": {"path": db_path}},
    }
    config = parse_config(raw, "bench", env={})
    configure_logging(config.logging.level, config.logging.json)
    app = create_app(config)
    freeze_startup_heap(app)  # as `batchsvc serve` does
    return app


async def _serve(db_path: str, keys_file: str, conn: Any) -> None:
    from aiohttp import web

    runner = web.AppRunner(_app(db_path, keys_file), access_log=None)
    await runner.setup()  # opens the store and loads the model
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_command() -> None:
        command = conn.recv()
        if command == "cpu":
            conn.send(time.process_time())
        elif command == "stop":
            loop.remove_reader(conn.fileno())
            stop.set()

    loop.add_reader(conn.fileno(), on_command)
    conn.send(runner.addresses[0][1])
    await stop.wait()
    await runner.cleanup()
    conn.send("stopped")


def server_main(db_path: str, keys_file: str, log_path: str, conn: Any) -> None:
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 2)
    os.close(fd)
    asyncio.run(_serve(db_path, keys_file, conn))


class Server(bb.PipeServer):
    def __init__(self, db_path: str, keys_file: str, log_path: str) -> None:
        super().__init__(server_main, (db_path, keys_file, log_path), log_path, 120)

    def cpu(self) -> float:
        return float(self._ask("cpu", 30))

    def stop(self) -> None:
        self._ask("stop", 120)
        self.process.join(30)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)


# --- the client --------------------------------------------------------------------------------


def _session(port: int, width: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=width)
    timeout = aiohttp.ClientTimeout(total=120)
    return aiohttp.ClientSession(f"http://127.0.0.1:{port}", connector=connector, timeout=timeout)


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


@dataclass
class Timed:
    seconds: float
    server_cpu: float
    rows: int


async def send_batches(server: Server, key: str, bodies: list[bytes]) -> Timed:
    """Warm up with the first batches, then time the rest, IN_FLIGHT at a time; every batch must
    report 100 processed and none failed."""
    headers = _headers(key)
    async with _session(server.port, IN_FLIGHT) as session:

        async def post(body: bytes) -> None:
            async with session.post("/api/v1/batch", data=body, headers=headers) as response:
                payload = await response.read()
            if response.status != 200:
                raise RuntimeError(f"batch: {response.status} {payload[:300]!r}")
            data = orjson.loads(payload)["data"]
            if data["processed"] != BATCH_SIZE or data["failed"] != 0:
                raise RuntimeError(f"batch did not do the work: {str(data)[:300]}")

        async def run(group: list[bytes]) -> None:
            pending = iter(group)

            async def worker() -> None:
                for body in pending:
                    await post(body)

            await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))

        await run(bodies[:WARMUP_BATCHES])
        cpu0, t0 = server.cpu(), time.perf_counter()
        await run(bodies[WARMUP_BATCHES:])
        seconds, cpu1 = time.perf_counter() - t0, server.cpu()
    return Timed(seconds, cpu1 - cpu0, (len(bodies) - WARMUP_BATCHES) * BATCH_SIZE)


async def search_latencies(
    port: int, key: str, queries: list[str], mode: str, warmup: int
) -> tuple[list[float], float]:
    """One request in flight; returns the sorted latencies and the mean hits per query."""
    headers = _headers(key)
    latencies: list[float] = []
    hits = 0
    async with _session(port, 1) as session:
        for i, text in enumerate(queries[:warmup] + queries):
            body = orjson.dumps({"query": text, "options": {"mode": mode, "limit": 10}})
            began = time.perf_counter()
            async with session.post(
                "/api/v1/memories/search", data=body, headers=headers
            ) as response:
                payload = await response.read()
            elapsed = time.perf_counter() - began
            if response.status != 200:
                raise RuntimeError(f"search {mode}: {response.status} {payload[:300]!r}")
            if i >= warmup:
                latencies.append(elapsed)
                hits += len(_results(orjson.loads(payload)["data"]))
    return sorted(latencies), hits / max(1, len(queries))


def _results(data: Any) -> list[Any]:
    if isinstance(data, list):
        return data
    for name in ("results", "hits", "memories", "items"):
        if isinstance(data, dict) and isinstance(data.get(name), list):
            return list(data[name])
    return []


# --- in-process baselines and the bulk load ----------------------------------------------------


def _memories(rows: list[dict[str, Any]]) -> list[Any]:
    from batchsvc.models import NewMemory, new_memory_id, utc_now

    out = []
    for r in rows:
        new = NewMemory(
            content=r["content"],
            title=r["title"],
            memory_type=r["memory_type"],
            metadata=r["metadata"],
            tags=tuple(r["tags"]),
        )
        out.append(new.build(new_memory_id(), utc_now()))
    return out


def _texts(rows: list[dict[str, Any]]) -> list[str]:
    from batchsvc.embedding import embedding_text

    return [embedding_text(r["title"], r["content"]) for r in rows]


async def embed_alone(rows: list[dict[str, Any]]) -> tuple[float, list[Any]]:
    """Seconds to embed the rows' texts in batches of 100 (model loaded and warmed first)."""
    from batchsvc_backends.embedders.wordllama import WordLlamaEmbedder

    texts = _texts(rows)
    async with WordLlamaEmbedder() as embedder:
        await embedder.embed(texts[:BATCH_SIZE])
        vectors: list[Any] = []
        t0 = time.perf_counter()
        for group in chunks(texts):
            vectors.extend(await embedder.embed(group))
        return time.perf_counter() - t0, vectors


async def insert_rows(path: str, rows: list[dict[str, Any]], vectors: list[Any]) -> float:
    """Seconds to insert the rows with their vectors by `SQLiteStore.create_many`, 100 per
    call: the store's part of a batch of creates, without HTTP and the executor."""
    from batchsvc_backends.sqlite.store import SQLiteStore

    memories = _memories(rows)
    async with SQLiteStore(path) as store:
        t0 = time.perf_counter()
        for group in chunks(list(zip(memories, vectors, strict=True))):
            await store.create_many(TENANT, group)
        return time.perf_counter() - t0


def raw_sql_inserts(path: str, rows: list[dict[str, Any]], vectors: list[Any]) -> float:
    """Seconds to insert the rows with plain `sqlite3` statements (no aiosqlite, no store;
    the service's pure helpers only make the FTS words and vector bytes) into a file at its
    schema, with its pragmas, one transaction per 100 rows: each memory's row (vector
    included), its FTS5 row, and the tenant's totals. The rows' words and JSON are made inside
    the timed loop: any insert of these rows needs them."""
    import sqlite3

    from batchsvc_backends.sqlite.indexes import encode
    from batchsvc_backends.sqlite.queries import indexed_text, words
    from batchsvc_backends.sqlite.store import SQLiteStore

    async def create_schema() -> None:
        async with SQLiteStore(path):
            pass

    asyncio.run(create_schema())
    memories = _memories(rows)
    blobs = [encode(vector) for vector in vectors]
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode = WAL", "synchronous = FULL", "foreign_keys = ON"):
        conn.execute(f"PRAGMA {pragma}")
    conn.execute("INSERT INTO tenants (name) VALUES (?)", (TENANT,))
    number = conn.execute("SELECT id FROM tenants WHERE name = ?", (TENANT,)).fetchone()[0]
    t0 = time.perf_counter()
    for group in chunks(list(zip(memories, blobs, strict=True))):
        conn.execute("BEGIN IMMEDIATE")
        total = 0
        for memory, blob in group:
            tokens = words(memory)
            total += len(tokens)
            rowid = conn.execute(
                "INSERT INTO memories (tenant, id, content, title, memory_type, metadata, tags, "
                "created_at, updated_at, version, length, vector) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    TENANT,
                    memory.id,
                    memory.content,
                    memory.title,
                    memory.memory_type,
                    json.dumps(memory.metadata, ensure_ascii=False, separators=(",", ":")),
                    json.dumps(list(memory.tags), ensure_ascii=False, separators=(",", ":")),
                    memory.created_at,
                    memory.updated_at,
                    memory.version,
                    len(tokens),
                    blob,
                ),
            ).lastrowid
            conn.execute(
                "INSERT INTO memories_fts (rowid, words) VALUES (?, ?)",
                (rowid, indexed_text(number, tokens)),
            )
        conn.execute(
            "UPDATE tenants SET docs = docs + ?, tokens = tokens + ? WHERE name = ?",
            (len(group), total, TENANT),
        )
        conn.execute("COMMIT")
    seconds = time.perf_counter() - t0
    conn.close()
    return seconds


async def bulk_load(path: str, rows: list[dict[str, Any]]) -> float:
    """Embed and insert `rows` into the file at `path`, 100 per `create_many`."""
    from batchsvc_backends.embedders.wordllama import WordLlamaEmbedder
    from batchsvc_backends.sqlite.store import SQLiteStore

    t0 = time.perf_counter()
    async with WordLlamaEmbedder() as embedder, SQLiteStore(path) as store:
        for group in chunks(rows, 1000):
            vectors = await embedder.embed(_texts(group))
            pairs = list(zip(_memories(group), vectors, strict=True))
            for part in chunks(pairs):
                await store.create_many(TENANT, part)
    return time.perf_counter() - t0


# --- main --------------------------------------------------------------------------------------


def _ms(ordered: list[float], q: float) -> float:
    return bb._ms(ordered, q)


def search_table(
    server: Server, key: str, queries: list[str], size: int, rows: list[str]
) -> dict[str, list[float]]:
    out = {}
    for mode in MODES:
        print(f"  searching {size:,} memories, {mode} ...", file=sys.stderr, flush=True)
        lat, hits = asyncio.run(search_latencies(server.port, key, queries, mode, 20))
        out[mode] = lat
        rows.append(
            f"{size:>9,} {mode:<9} {len(lat):>7} {_ms(lat, 0.5):>8.2f} {_ms(lat, 0.99):>8.2f} "
            f"{1000 * sum(lat) / len(lat):>8.2f} {1000 * lat[-1]:>8.2f} {hits:>6.1f}"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 memories only")
    parser.add_argument("--queries", type=int, default=0, help="queries per mode (300; quick 100)")
    parser.add_argument(
        "--continue-on-error",
        action="store_true",
        help="send the batches with continue_on_error: true (a batch of creates reaches "
        "storage in one call either way)",
    )
    args = parser.parse_args()
    n_queries = args.queries or (100 if args.quick else 300)
    started = time.perf_counter()

    from batchsvc.api_keys import KeyStore

    texts = Texts(seed=11)
    rows = [texts.create(n) for n in range(SMALL)]
    queries = [" ".join(texts.draw(texts.rng.randint(1, 4))) for _ in range(n_queries)]
    options = {"continue_on_error": True} if args.continue_on_error else None
    bodies = [batch_body(group, options) for group in chunks(rows)]
    timed_rows = rows[WARMUP_BATCHES * BATCH_SIZE :]
    print(
        f"SQLite backend, wordllama embedder (256 dims); {len(texts.words):,}-word vocabulary "
        f"(Zipf); batch body ~{len(bodies[0]):,} bytes; {IN_FLIGHT} batches in flight, "
        f"options {options or 'default'}; "
        f"{n_queries} queries per mode, 1 in flight, limit 10; {os.cpu_count()} CPUs; "
        f"Python {sys.version.split()[0]}\n",
        flush=True,
    )
    table: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-search-") as folder:
        keys_file = str(Path(folder) / "keys.json")
        key = KeyStore(Path(keys_file)).create(TENANT)[1]
        db_path = str(Path(folder) / "data" / "batchsvc.db")
        log_path = str(Path(folder) / "server.log")

        print("  loading 10,000 memories through /api/v1/batch ...", file=sys.stderr, flush=True)
        server = Server(db_path, keys_file, log_path)
        try:
            batch = asyncio.run(send_batches(server, key, bodies))
            small = search_table(server, key, queries, SMALL, table)
        finally:
            server.stop()

        print("  embedder alone, raw inserts ...", file=sys.stderr, flush=True)
        embed_s, vectors = asyncio.run(embed_alone(timed_rows))
        raw_path = str(Path(folder) / "raw" / "raw.db")
        insert_s = asyncio.run(insert_rows(raw_path, timed_rows, vectors))
        sql_path = str(Path(folder) / "raw" / "sql.db")
        sql_s = raw_sql_inserts(sql_path, timed_rows, vectors)

        large: dict[str, list[float]] = {}
        load_s = 0.0
        if not args.quick:
            print("  loading 90,000 more directly ...", file=sys.stderr, flush=True)
            more = [texts.create(n) for n in range(SMALL, LARGE)]
            load_s = asyncio.run(bulk_load(db_path, more))
            server = Server(db_path, keys_file, log_path)
            try:
                large = search_table(server, key, queries, LARGE, table)
            finally:
                server.stop()
        with open(log_path, "rb") as handle:
            log_lines = sum(1 for _ in handle)

    n = batch.rows
    print(f"{'creates, ' + format(n, ',') + ' rows':<44} {'seconds':>8} {'rows/s':>9}")
    print("-" * 63)
    lines = [
        ("(a) POST /api/v1/batch (HTTP, server process)", batch.seconds),
        ("(b) embedder alone (WordLlamaEmbedder.embed)", embed_s),
        ("(c) raw inserts (plain sqlite3, txn per 100)", sql_s),
        ("(d) SQLiteStore.create_many (100 a call)", insert_s),
        ("(b)+(c)", embed_s + sql_s),
        ("(b)+(d)", embed_s + insert_s),
    ]
    for label, seconds in lines:
        print(f"{label:<44} {seconds:>8.2f} {n / seconds:>9,.0f}")
    print(f"(a) server CPU: {batch.server_cpu:.2f} s ({n / batch.server_cpu:,.0f} rows per CPU-s)")
    # The target is against raw inserts: (c). (d), the store's own insert path outside
    # HTTP and the executor, tells how much of the gap is the storage layer.
    ratio = batch.seconds / (embed_s + sql_s)
    verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
    print(f"ratio (a) / ((b)+(c)) = {ratio:.2f}x   target <= {TARGET_RATIO}x   {verdict}")
    print(f"(by server CPU instead of wall time: {batch.server_cpu / (embed_s + sql_s):.2f}x)")
    print(f"ratio (a) / ((b)+(d)) = {batch.seconds / (embed_s + insert_s):.2f}x")

    header = (
        f"\n{'memories':>9} {'mode':<9} {'queries':>7} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'mean ms':>8} {'max ms':>8} {'hits':>6}"
    )
    print(header)
    print("-" * (len(header) - 1))
    for line in table:
        print(line)
    del small
    if large:
        p99 = _ms(large["hybrid"], 0.99)
        verdict = "PASS" if p99 < TARGET_HYBRID_P99_MS else "FAIL"
        print(
            f"hybrid p99 at {LARGE:,}: {p99:.2f} ms   target < {TARGET_HYBRID_P99_MS:g} ms   "
            f"{verdict}"
        )
        print(f"(the 90,000 extra memories were loaded directly in {load_s:.1f} s)")
    else:
        print("hybrid p99 at 100,000: not measured (--quick)")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"server log lines: {log_lines:,}; load average now: {load}")
    print(f"\n(bench took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
