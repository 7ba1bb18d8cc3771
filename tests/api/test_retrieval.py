"""Retrieval quality on a small set made for this project (tests/helpers/retrieval_set.py),
through the batch API of one service per embedder (in-memory backend, the real embedder), built
once for the module: the set is loaded once per embedder and every query runs in every mode.

Issue 3's targets: hybrid finds the right memory in the top 5 for at least 90% of the
paraphrases, lexical alone does worse on them, and every keyword query (a rare word, a number,
a name; `KEYWORDS` and `SHARED_KEYWORDS` together) finds its memory first in hybrid mode.

- `minilm` (the `minilm` extra) meets them, and is held to them: hybrid finds 117 of 122
  paraphrases in the top 5 (0.959; semantic alone 118/122, lexical 30/122) and puts all 55
  keyword queries first.
- `wordllama` (the default: fast, no extra) does NOT reach the 90% on this set: hybrid finds
  93 of 122 paraphrases in the top 5 (0.762; semantic alone 94/122, lexical 30/122) and puts
  54 of 55 keyword queries first (0.982). Its floors here are what it achieves, with a little
  slack, so that a change that makes it worse fails: hybrid paraphrases >= 0.75, lexical below
  hybrid, keyword queries first >= 0.95.

`pytest -s` prints the figures per embedder and mode.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from attrs import frozen

from batchsvc.http.app import create_app
from batchsvc.search.lexical import tokenize
from tests.helpers.retrieval_set import (
    KEYWORDS,
    MEMORIES,
    PARAPHRASES,
    SHARED_KEYWORDS,
    TITLES,
    text,
)
from tests.helpers.search import MODES
from tests.helpers.service import Service, make_config

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

#: Per mode (`MODES`), the figures of that mode; and "embedder", the embedder's name.
Figures = dict[str, Any]

#: Every keyword query: a word only its answer holds, or one two memories hold.
ALL_KEYWORDS = KEYWORDS + SHARED_KEYWORDS


@frozen
class Floor:
    """What hybrid search must achieve with one embedder."""

    #: Share of paraphrases whose memory is in the top 5.
    paraphrase_top5: float
    #: Share of keyword queries whose memory is first.
    keyword_first: float


#: The issue's targets.
ISSUE = Floor(paraphrase_top5=0.90, keyword_first=1.0)
#: Per embedder: minilm is held to the issue's targets; wordllama, which misses the 90% here
#: (0.762), to a regression floor just under what it achieves (see the module's docstring).
FLOORS = {"minilm": ISSUE, "wordllama": Floor(paraphrase_top5=0.75, keyword_first=0.95)}


async def _load(service: Service) -> dict[str, str]:
    """Create every memory in batches; returns memory key -> id."""
    keys = list(MEMORIES)
    ids: dict[str, str] = {}
    for start in range(0, len(keys), CHUNK):
        part = keys[start : start + CHUNK]
        status, body = await service.batch(
            [
                {"type": "create", "data": {"content": MEMORIES[key], "title": TITLES.get(key)}}
                for key in part
            ]
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


async def _measure(tmp: Path, embedder: str) -> Figures:
    keys_file = tmp / "keys.json"
    config = make_config(keys_file, embedder={"name": embedder})
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(config)))
    await client.start_server()
    try:
        service = Service.of(client, keys_file)
        ids = await _load(service)
        figures: Figures = {}
        for mode in MODES:
            para = await _search_all(service, PARAPHRASES, mode)
            keyword = await _search_all(service, ALL_KEYWORDS, mode)
            para_hits = [ids[key] in hits for hits, (_, key) in zip(para, PARAPHRASES, strict=True)]
            first = [
                bool(hits) and hits[0] == ids[key]
                for hits, (_, key) in zip(keyword, ALL_KEYWORDS, strict=True)
            ]
            figures[mode] = {
                "paraphrase_top5": sum(para_hits) / len(PARAPHRASES),
                "paraphrase_found": sum(para_hits),
                "keyword_first": sum(first) / len(ALL_KEYWORDS),
                "keyword_found": sum(first),
                "paraphrase_misses": _misses(para_hits, PARAPHRASES),
                "keyword_misses": _misses(first, ALL_KEYWORDS),
            }
        return figures
    finally:
        await client.close()


def _report(figures: Figures) -> str:
    lines = [
        f"{figures['embedder']} on the retrieval set: {len(MEMORIES)} memories, "
        f"{len(PARAPHRASES)} paraphrases, "
        f"{len(ALL_KEYWORDS)} keyword queries ({len(SHARED_KEYWORDS)} on a word two memories share)"
    ]
    for mode in MODES:
        f = figures[mode]
        found, keywords = f["keyword_found"], len(ALL_KEYWORDS)
        lines.append(
            f"  {mode:8} paraphrase top-{TOP}: {f['paraphrase_found']}/{len(PARAPHRASES)} = "
            f"{f['paraphrase_top5']:.3f}; keyword first: {found}/{keywords} = "
            f"{f['keyword_first']:.3f}"
        )
        if f["paraphrase_misses"] or f["keyword_misses"]:
            lines.append(
                f"           misses: paraphrases {f['paraphrase_misses']}, "
                f"keywords {f['keyword_misses']}"
            )
    return "\n".join(lines)


@pytest.fixture(scope="module", params=sorted(FLOORS))
def figures(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Figures]:
    """One service per embedder for the module: load the set once, run every query in every
    mode. `figures["embedder"]` names the embedder."""
    name: str = request.param
    started = time.perf_counter()
    result = asyncio.run(_measure(tmp_path_factory.mktemp(f"retrieval-{name}"), name))
    result["embedder"] = name
    print(f"\n{_report(result)}\n  ({time.perf_counter() - started:.1f} s to load and search)")
    yield result


def _holders(query: str) -> list[list[str]]:
    """For each word of the query, the memories (title and content) that hold it."""
    words = {key: set(tokenize(text(key))) for key in MEMORIES}
    return [[key for key in MEMORIES if word in words[key]] for word in tokenize(query)]


def test_the_set_is_what_it_claims() -> None:
    assert len(MEMORIES) >= 120 and len(PARAPHRASES) >= 100 and len(ALL_KEYWORDS) >= 40
    assert set(TITLES) <= set(MEMORIES)
    for _, key in PARAPHRASES + ALL_KEYWORDS:
        assert key in MEMORIES
    for query, key in KEYWORDS:
        # Some word of the query appears in exactly one memory: its answer.
        holders = _holders(query)
        assert [key] in holders, (query, holders)
    for query, key in SHARED_KEYWORDS:
        # Some word of the query appears in exactly two memories, its answer one of them.
        holders = _holders(query)
        assert any(len(h) == 2 and key in h for h in holders), (query, holders)
    for query, key in PARAPHRASES:
        # Few shared words: at most one content word in common with the answer.
        shared = set(tokenize(query)) & set(tokenize(text(key))) - COMMON
        assert len(shared) <= 1, (query, shared)
    for key in MEMORIES:
        # Realistic lengths: 10 to 60 words.
        assert 10 <= len(tokenize(text(key))) <= 60, key


def test_hybrid_finds_the_paraphrases_in_the_top_5(figures: Figures) -> None:
    """At least 90% with minilm (the issue's target); wordllama's floor is 0.75."""
    floor = FLOORS[figures["embedder"]]
    assert figures["hybrid"]["paraphrase_top5"] >= floor.paraphrase_top5, _report(figures)


def test_lexical_alone_does_worse_on_paraphrases(figures: Figures) -> None:
    assert figures["lexical"]["paraphrase_top5"] < figures["hybrid"]["paraphrase_top5"], _report(
        figures
    )


def test_keyword_queries_are_first_in_hybrid(figures: Figures) -> None:
    """Every one with minilm (the issue's target); wordllama's floor is 0.95."""
    floor = FLOORS[figures["embedder"]]
    assert figures["hybrid"]["keyword_first"] >= floor.keyword_first, _report(figures)


def test_minilm_is_held_to_the_issue_s_targets() -> None:
    # The issue's targets are asserted for minilm, not some weaker floor.
    assert FLOORS["minilm"] == ISSUE == Floor(paraphrase_top5=0.90, keyword_first=1.0)
