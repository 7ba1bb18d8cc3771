"""Plain writes through `SQLiteStore`: creates per second with 16 concurrent creators, the
executor's `limits.max_parallel`, on a fresh file (WAL, `synchronous=FULL`).

    python bench/bench_writes.py               # 4,000 timed creates after 400 of warm-up
    python bench/bench_writes.py --count 10000 # more

Each memory is shaped like a real one: ~25 words of content, a title, two tags, small
metadata and a 256-dimension unit vector, built beforehand so only the store is timed. No
server and no embedder: this isolates the backend's write path (round trips to aiosqlite's
thread and fsyncs), which is what group commit changes. After the run, every created memory
is read back to check that the count in the file is right.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's batchsvc, whatever the editable install says

from batchsvc_backends.sqlite.store import SQLiteStore  # noqa: E402

from batchsvc.models import Memory, new_memory_id  # noqa: E402

CREATORS = 16
DIMENSIONS = 256
TENANT = "bench"
WORDS = [
    "deploy",
    "checklist",
    "walrus",
    "harbour",
    "invoice",
    "kernel",
    "latency",
    "budget",
    "review",
    "sprint",
    "cache",
    "migration",
    "tenant",
    "storage",
    "replica",
    "backup",
    "restore",
    "profile",
    "catalog",
    "search",
    "vector",
    "index",
    "quarterly",
    "meeting",
    "customer",
    "feedback",
    "release",
    "rollback",
    "incident",
    "pager",
    "alert",
    "metric",
]


def memories(count: int, seed: int = 1) -> list[tuple[Memory, tuple[float, ...]]]:
    rng = random.Random(seed)
    made = []
    for n in range(count):
        raw = [rng.gauss(0.0, 1.0) for _ in range(DIMENSIONS)]
        norm = math.sqrt(sum(x * x for x in raw))
        memory = Memory(
            id=new_memory_id(),
            content=" ".join(rng.choices(WORDS, k=25)),
            title=f"{rng.choice(WORDS)} {rng.choice(WORDS)} {n}",
            memory_type="context",
            metadata={"source": "bench", "n": n, "priority": rng.randint(1, 5)},
            tags=(rng.choice(WORDS), f"bench-{n % 7}"),
            created_at="2024-01-15T10:00:00Z",
            updated_at="2024-01-15T10:00:00Z",
            version=1,
        )
        made.append((memory, tuple(x / norm for x in raw)))
    return made


async def create_all(store: SQLiteStore, rows: list[tuple[Memory, tuple[float, ...]]]) -> float:
    """Create `rows` with CREATORS tasks pulling from one list; the seconds it took."""
    pending = iter(rows)

    async def creator() -> None:
        for memory, vector in pending:
            await store.create(TENANT, memory, vector)

    started = time.perf_counter()
    await asyncio.gather(*(creator() for _ in range(CREATORS)))
    return time.perf_counter() - started


async def main(count: int) -> None:
    warmup, timed = memories(count // 10, seed=2), memories(count)
    with tempfile.TemporaryDirectory() as folder:
        async with SQLiteStore(str(Path(folder) / "bench.db")) as store:
            await create_all(store, warmup)
            seconds = await create_all(store, timed)
            page = await store.list(TENANT, limit=1)
            assert page.items, "nothing was stored"
            missing = [m.id for m, _ in timed if await store.get(TENANT, m.id) is None]
            assert not missing, f"{len(missing)} creates are not in the file"
    print(
        f"{count} creates, {CREATORS} concurrent creators: {seconds:.2f} s, "
        f"{count / seconds:,.0f} creates/s"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=4000, help="timed creates (default 4000)")
    asyncio.run(main(parser.parse_args().count))
