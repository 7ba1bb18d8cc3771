"""Retrieval quality on a small set made for this project (tests/retrieval_set.py), through the
batch API of one service (in-memory backend, the real wordllama embedder) for the whole module.

Issue 3's targets: hybrid finds the right memory in the top 5 for at least 90% of the
paraphrases, lexical alone does worse on them, and every keyword query (a rare word, a number,
a name) finds its memory first in hybrid mode. `pytest -s` prints the figures per mode.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from retrieval_set import KEYWORDS, MEMORIES, PARAPHRASES
from support import Service, make_config

from batchsvc.http.app import create_app
from batchsvc.keys import KeyStore
from batchsvc.lexical import tokenize

MODES = ("lexical", "semantic", "hybrid")
TOP = 5
#: Searches per batch: the spec's limit of operations per batch is 100.
CHUNK = 100

#: Function words, not counted as shared content words.
COMMON = frozenset(
    {"a", "an", "the", "and", "or", "of", "to", "in", "on", "at", "for", "by", "with", "my"}
    | {"our", "his", "her", "its", "their", "is", "are", "be", "was", "were", "it", "as", "s"}
    | {"from", "after", "before", "this", "that", "who", "what", "which", "how", "why"}
    | {"when", "do", "we", "i"}
)

Figures = dict[str, dict[str, Any]]


async def _load(service: Service) -> dict[str, str]:
    """Create every memory in batches; returns memory key -> id."""
    keys = list(MEMORIES)
    ids: dict[str, str] = {}
    for start in range(0, len(keys), CHUNK):
        part = keys[start : start + CHUNK]
        status, body = await service.batch(
            [{"type": "create", "data": {"content": MEMORIES[key]}} for key in part]
        )
        assert status == 200, body
        for key, op in zip(part, body["data"]["operations"], strict=True):
            ids[key] = op["result"]["id"]
    return ids


async def _search_all(
    service: Service, queries: list[tuple[str, str]], mode: str
) -> list[list[str]]:
    """The ids of the top `TOP` hits of every query, in batches of searches."""
    ranked: list[list[str]] = []
    for start in range(0, len(queries), CHUNK):
        part = queries[start : start + CHUNK]
        status, body = await service.batch(
            [
                {"type": "search", "query": query, "options": {"mode": mode, "limit": TOP}}
                for query, _ in part
            ]
        )
        assert status == 200, body
        for op in body["data"]["operations"]:
            hits = op["result"]["results"]
            assert all(0.0 <= hit["score"] <= 1.0 for hit in hits), hits
            ranked.append([hit["id"] for hit in hits])
    return ranked


def _misses(found: list[bool], queries: list[tuple[str, str]]) -> list[str]:
    return [query for ok, (query, _) in zip(found, queries, strict=True) if not ok]


async def _measure(tmp: Path) -> Figures:
    keys_file = tmp / "keys.json"
    config = make_config(keys_file, embedder={"name": "wordllama"})
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(config)))
    await client.start_server()
    try:
        store = KeyStore(keys_file)
        service = Service(client=client, key=store.create("acme")[1], keys=store)
        ids = await _load(service)
        figures: Figures = {}
        for mode in MODES:
            para = await _search_all(service, PARAPHRASES, mode)
            keyword = await _search_all(service, KEYWORDS, mode)
            para_hits = [ids[key] in hits for hits, (_, key) in zip(para, PARAPHRASES, strict=True)]
            first = [
                bool(hits) and hits[0] == ids[key]
                for hits, (_, key) in zip(keyword, KEYWORDS, strict=True)
            ]
            figures[mode] = {
                "paraphrase_top5": sum(para_hits) / len(PARAPHRASES),
                "paraphrase_found": sum(para_hits),
                "keyword_first": sum(first) / len(KEYWORDS),
                "keyword_found": sum(first),
                "paraphrase_misses": _misses(para_hits, PARAPHRASES),
                "keyword_misses": _misses(first, KEYWORDS),
            }
        return figures
    finally:
        await client.close()


def _report(figures: Figures) -> str:
    lines = [
        f"retrieval set: {len(MEMORIES)} memories, {len(PARAPHRASES)} paraphrases, "
        f"{len(KEYWORDS)} keyword queries"
    ]
    for mode, f in figures.items():
        lines.append(
            f"  {mode:8} paraphrase top-{TOP}: {f['paraphrase_found']}/{len(PARAPHRASES)} = "
            f"{f['paraphrase_top5']:.3f}; keyword first: {f['keyword_found']}/{len(KEYWORDS)} = "
            f"{f['keyword_first']:.3f}"
        )
        if f["paraphrase_misses"] or f["keyword_misses"]:
            lines.append(
                f"           misses: paraphrases {f['paraphrase_misses']}, "
                f"keywords {f['keyword_misses']}"
            )
    return "\n".join(lines)


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Figures]:
    """One service for the module: load the set once, run every query in every mode."""
    result = asyncio.run(_measure(tmp_path_factory.mktemp("retrieval")))
    print("\n" + _report(result))
    yield result


def test_the_set_is_what_it_claims() -> None:
    assert len(MEMORIES) >= 60 and len(PARAPHRASES) >= 40 and len(KEYWORDS) >= 15
    for _, key in PARAPHRASES + KEYWORDS:
        assert key in MEMORIES
    for query, key in KEYWORDS:
        # Some word of the query appears in exactly one memory: its answer.
        holders = [
            [k for k, text in MEMORIES.items() if word in tokenize(text)]
            for word in tokenize(query)
        ]
        assert [key] in holders, (query, holders)
    for query, key in PARAPHRASES:
        # Few shared words: at most one content word in common with the answer.
        shared = set(tokenize(query)) & set(tokenize(MEMORIES[key])) - COMMON
        assert len(shared) <= 1, (query, shared)


def test_hybrid_finds_90_percent_of_paraphrases_in_the_top_5(figures: Figures) -> None:
    assert figures["hybrid"]["paraphrase_top5"] >= 0.90, _report(figures)


def test_lexical_alone_does_worse_on_paraphrases(figures: Figures) -> None:
    assert figures["lexical"]["paraphrase_top5"] < figures["hybrid"]["paraphrase_top5"], _report(
        figures
    )


def test_every_keyword_query_is_first_in_hybrid(figures: Figures) -> None:
    assert figures["hybrid"]["keyword_first"] == 1.0, _report(figures)
