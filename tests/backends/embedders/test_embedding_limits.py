"""Embedding stays within the documented limits, through a real `batchsvc serve` process (SQLite,
the default wordllama embedder): the largest batch the limits allow is embedded in bounded memory
within the default deadline, and a batch answered at its deadline stops embedding.

Both faults were found against a running server: 100 creates of 99,000 characters (a 9.9 MB
body, inside every limit) padded every text to the longest one in wordllama and took the server
from 1.7 GB to 11.9 GB, past the 30 s deadline; and a batch answered at its deadline kept a core
busy for half a minute more, embedding texts whose vectors were thrown away.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.processes import DEFAULTS_CONFIG, Server, serving

#: The documented limits: operations per batch, and characters of content.
OPERATIONS = 100
CHARACTERS = 99_000
#: What the largest batch may add to the server's resident memory at its peak. Measured on the
#: development machine: 160 MB, of which 123 MB the service takes with no embedder at all (the
#: body, its parsed JSON, SQLite and the lexical index: about 12 times the body), and the
#: embedder the rest (one group's tokenizer records and one slice of token rows, under 100 MB
#: whatever the texts; backends/embedders/token_mean.py). Before the fix: 2,411 MB for these texts.
PEAK_EXTRA_BYTES = 400 * 2**20
#: A core's worth of CPU in a second is about 1 s; an idle server uses a few milliseconds.
IDLE_CPU_S = 0.2

VOCABULARY = (
    "the quarterly report is due on friday and needs the sales figures of every team in company "
    "customer meeting notes project deadline budget review infrastructure migration database "
    "performance latency throughput incident postmortem onboarding documentation roadmap "
    "kubernetes cluster upgrade security audit compliance invoice payment refund shipping"
)
WORDS = VOCABULARY.split()


def _text(seed: int, characters: int) -> str:
    """English-like text of exactly `characters` characters (about 5.6 characters a token)."""
    rng = random.Random(seed)
    words: list[str] = []
    size = 0
    while size < characters:
        word = rng.choice(WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:characters]


def _largest_batch(options: dict[str, Any] | None = None) -> bytes:
    operations = [
        {"type": "create", "data": {"content": _text(index, CHARACTERS)}}
        for index in range(OPERATIONS)
    ]
    body: dict[str, Any] = {"operations": operations}
    if options:
        body["options"] = options
    return json.dumps(body).encode()


def status_kb(server: Server, field: str) -> int:
    """A field of /proc/<pid>/status in kB, such as VmRSS or VmHWM (the peak of VmRSS)."""
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{server.process.pid}/status")


def cpu_seconds(server: Server) -> float:
    """User and system CPU time of the process, all its threads."""
    stat = Path(f"/proc/{server.process.pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batch(server: Server, body: bytes) -> tuple[int, Any]:
    """POST a batch already encoded; embedding the largest one takes a while."""
    return server.call("POST", "/api/v1/batch", server.key, body, timeout=120)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`batchsvc serve` with the defaults (SQLite in the folder, wordllama), for the module."""
    folder = tmp_path_factory.mktemp("serve")
    config = folder / "service.toml"
    config.write_text(DEFAULTS_CONFIG, encoding="utf-8")
    with serving(folder, config, tenant="acme") as served:
        yield served


def _statuses(answer: dict[str, Any]) -> set[tuple[str, str | None]]:
    return {
        (op["status"], (op.get("error") or {}).get("code")) for op in answer["data"]["operations"]
    }


def test_the_largest_batch_is_embedded_in_bounded_memory_within_the_deadline(
    server: Server,
) -> None:
    body = _largest_batch()
    assert len(body) <= 10 * 2**20  # inside the body limit, as every other limit
    before_kb = status_kb(server, "VmRSS")
    status, answer = batch(server, body)
    # The default deadline is 30 s: an operation not started by then would be skipped.
    assert status == 200, _statuses(answer)
    assert answer["data"]["processed"] == OPERATIONS
    peak_extra = (status_kb(server, "VmHWM") - before_kb) * 1024
    assert peak_extra <= PEAK_EXTRA_BYTES, f"{peak_extra / 2**20:.0f} MiB at the peak"


def test_a_batch_answered_at_its_deadline_stops_embedding(server: Server) -> None:
    # Embedding these texts takes seconds; the batch is answered after 300 ms.
    status, answer = batch(server, _largest_batch({"timeout": 300}))
    assert status == 207
    assert _statuses(answer) == {("skipped", "TIMEOUT")}
    # The embedding may finish the group it is in, then stops: the second after the next one
    # finds the server idle (before the fix it spent a core there, and for 20 s more).
    time.sleep(1.0)
    start = cpu_seconds(server)
    time.sleep(1.0)
    used = cpu_seconds(server) - start
    assert used < IDLE_CPU_S, f"{used:.2f} s of CPU in a second, after the batch was answered"
