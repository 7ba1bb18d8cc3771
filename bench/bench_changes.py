"""Writes of every kind through POST /api/v1/batch on the default setup (SQLite, wordllama):
creates, then updates of content, updates of metadata only, and deletes of the same memories,
in batches of 100, each kind timed on its own.

Run from the repository root, with batchsvc installed:

    python bench/bench_changes.py              # 10,000 memories; under a minute
    python bench/bench_changes.py --count 2000 # a quick run
    python bench/bench_changes.py --continue-on-error

It starts the real service as bench_search.py does (a spawned process, SQLite in a temporary
folder, wordllama, logging as `batchsvc serve`, rate limits out of reach), sends the batches
4 in flight, and checks that every operation of every batch succeeded. A batch's writes run
one after another with the default options; consecutive creates reach storage in one
`create_many` call and consecutive updates and deletes in one `change_many`
(batchsvc/batch/bulk.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))  # bench_search, run as a script
import bench_search as bs  # noqa: E402


async def post_all(
    server: bs.Server, key: str, bodies: list[bytes]
) -> tuple[float, float, list[Any]]:
    """Seconds and server CPU seconds to send `bodies`, IN_FLIGHT at a time; each batch's
    operation results, in order. Every operation must have succeeded."""
    headers = bs._headers(key)
    results: list[Any] = [None] * len(bodies)
    async with bs._session(server.port, bs.IN_FLIGHT) as session:
        pending = iter(enumerate(bodies))

        async def worker() -> None:
            for position, body in pending:
                async with session.post("/api/v1/batch", data=body, headers=headers) as response:
                    payload = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"batch: {response.status} {payload[:300]!r}")
                operations = orjson.loads(payload)["data"]["operations"]
                if any(op["status"] != "success" for op in operations):
                    raise RuntimeError(f"not every operation succeeded: {payload[:300]!r}")
                results[position] = operations

        cpu0, t0 = server.cpu(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(bs.IN_FLIGHT)))
        return time.perf_counter() - t0, server.cpu() - cpu0, results


def bodies_of(operations: list[dict[str, Any]], options: dict[str, Any] | None) -> list[bytes]:
    return [
        orjson.dumps({"operations": group, **({"options": options} if options else {})})
        for group in bs.chunks(operations)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="memories (a multiple of 100)")
    parser.add_argument("--continue-on-error", action="store_true")
    args = parser.parse_args()
    options = {"continue_on_error": True} if args.continue_on_error else None
    from batchsvc.api_keys import KeyStore

    texts = bs.Texts(seed=5)
    rows = [texts.create(n) for n in range(args.count)]
    print(
        f"SQLite backend, wordllama embedder; {args.count:,} memories, batches of 100, "
        f"{bs.IN_FLIGHT} in flight, options {options or 'default'}; {os.cpu_count()} CPUs\n"
    )
    figures: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-changes-") as folder:
        keys_file = str(Path(folder) / "keys.json")
        key = KeyStore(Path(keys_file)).create(bs.TENANT)[1]
        server = bs.Server(
            str(Path(folder) / "data" / "batchsvc.db"), keys_file, str(Path(folder) / "log")
        )
        try:
            creates = [{"type": "create", "data": row} for row in rows]
            seconds, cpu, done = asyncio.run(post_all(server, key, bodies_of(creates, options)))
            figures.append(("create", seconds, cpu))
            ids = [op["result"]["id"] for batch in done for op in batch]
            kinds = [
                (
                    "update content",
                    lambda i, n: {"content": f"changed {n}: {' '.join(texts.draw(20))}"},
                ),
                ("update metadata", lambda i, n: {"metadata": {"touched": n}}),
            ]
            for name, data in kinds:
                ops = [{"type": "update", "id": i, "data": data(i, n)} for n, i in enumerate(ids)]
                seconds, cpu, done = asyncio.run(post_all(server, key, bodies_of(ops, options)))
                figures.append((name, seconds, cpu))
            ops = [{"type": "delete", "id": i} for i in ids]
            seconds, cpu, done = asyncio.run(post_all(server, key, bodies_of(ops, options)))
            figures.append(("delete", seconds, cpu))
        finally:
            server.stop()
    print(f"{'operation':<18} {'seconds':>8} {'ops/s':>9} {'server CPU us/op':>17}")
    print("-" * 55)
    for name, seconds, cpu in figures:
        n = len(rows)
        print(f"{name:<18} {seconds:>8.2f} {n / seconds:>9,.0f} {1e6 * cpu / n:>17,.0f}")


if __name__ == "__main__":
    main()
