"""Durability on the SQLite backend, with a real server process killed with SIGKILL mid-stream.

A client streams batches at a `batchsvc serve` process: plain batches of creates
(`continue_on_error`) and atomic batches (five creates sharing a batch-unique tag, plus an
update of a memory an earlier batch created). Once a few hundred operations have been reported
`success`, the server is killed with `kill -9` while requests are in flight. A new server on
the same file must then show every operation reported `success` with the content it was given,
and every atomic batch whole or absent, its update included, also those whose answer was lost.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
from attrs import define, field

from tests.helpers.processes import make_key, serving, write_config

WORKERS = 6
PLAIN_CREATES = 20
GROUP_SIZE = 5
MIN_SUCCESSES = 300  # per round
MIN_STREAM_SECONDS = 0.5
ROUNDS = 3
MAX_STREAM_SECONDS = 10.0
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=20)


@define
class Group:
    """One atomic batch: its creates (tagged `tag`) and the update of `target`."""

    tag: str
    contents: list[str]
    target: str | None
    target_before: str | None
    target_after: str | None
    outcome: str = "unknown"  # "success", "failed" (rolled back) or "unknown" (answer lost)
    ids: list[str] = field(factory=list)
    version: int | None = None


@define
class Record:
    """What the client was told, and what it was not."""

    round: int
    created: dict[str, str] = field(factory=dict)  # id -> content, creates reported success
    pool: list[str] = field(factory=list)  # plain creates an atomic batch may still update
    groups: list[Group] = field(factory=list)
    unknown_requests: int = 0
    answered_requests: int = 0
    in_flight: int = 0
    atomic_in_flight: int = 0
    in_flight_at_kill: int = -1
    successes: int = 0
    killed: bool = False


async def _post_batch(
    session: aiohttp.ClientSession, base: str, body: dict[str, Any], record: Record
) -> tuple[int, dict[str, Any]] | None:
    """The status and body of one batch, or None when its answer was lost (the kill)."""
    record.in_flight += 1
    try:
        async with session.post(f"{base}/api/v1/batch", json=body) as response:
            answer: dict[str, Any] = await response.json()
            record.answered_requests += 1
            return response.status, answer
    except (TimeoutError, aiohttp.ClientError, ConnectionError):
        record.unknown_requests += 1
        return None
    finally:
        record.in_flight -= 1


async def _plain(
    session: aiohttp.ClientSession, base: str, record: Record, worker: int, n: int
) -> None:
    prefix = f"plain r{record.round} w{worker} b{n}"
    contents = [f"{prefix} op{i} durable text" for i in range(PLAIN_CREATES)]
    body = {
        "operations": [
            {"type": "create", "data": {"content": c, "tags": ["plain"]}} for c in contents
        ],
        "options": {"continue_on_error": True},
    }
    answered = await _post_batch(session, base, body, record)
    if answered is None:
        return
    status, answer = answered
    assert status in (200, 207), answer
    for operation, content in zip(answer["data"]["operations"], contents, strict=True):
        if operation["status"] == "success":
            memory_id = operation["result"]["id"]
            record.created[memory_id] = content
            record.pool.append(memory_id)
            record.successes += 1


async def _atomic(
    session: aiohttp.ClientSession, base: str, record: Record, worker: int, n: int
) -> None:
    tag = f"grp-r{record.round}-w{worker}-b{n}"
    contents = [f"group {tag} member {k} atomic text" for k in range(GROUP_SIZE)]
    operations: list[dict[str, Any]] = [
        {"type": "create", "data": {"content": c, "tags": [tag, "atomic"]}} for c in contents
    ]
    target = record.pool.pop(0) if record.pool else None  # each target is updated only once
    after = f"updated by {tag}" if target else None
    if target is not None:
        operations.append({"type": "update", "id": target, "data": {"content": after}})
    group = Group(tag, contents, target, record.created.get(target) if target else None, after)
    record.groups.append(group)
    record.atomic_in_flight += 1
    try:
        answered = await _post_batch(
            session, base, {"operations": operations, "options": {"atomic": True}}, record
        )
    finally:
        record.atomic_in_flight -= 1
    if answered is None:
        return
    status, answer = answered
    assert status in (200, 422), answer
    if status == 422:
        group.outcome = "failed"
        return
    group.outcome = "success"
    results = answer["data"]["operations"]
    assert all(op["status"] == "success" for op in results), answer
    group.ids = [op["result"]["id"] for op in results[:GROUP_SIZE]]
    for memory_id, content in zip(group.ids, contents, strict=True):
        record.created[memory_id] = content
    record.successes += len(results)
    if target is not None:
        group.version = results[GROUP_SIZE]["result"]["version"]


async def _worker(session: aiohttp.ClientSession, base: str, record: Record, worker: int) -> None:
    for n in itertools.count():
        if record.killed:
            return
        step = _atomic if n % 2 else _plain
        await step(session, base, record, worker, n)


async def _stream_and_kill(
    base: str, key: str, process: subprocess.Popen[bytes], round: int
) -> Record:
    """Stream batches from several workers; SIGKILL the server once enough has succeeded."""
    record = Record(round)
    headers = {"Authorization": f"Bearer {key}"}
    connector = aiohttp.TCPConnector(limit=WORKERS)
    async with aiohttp.ClientSession(
        headers=headers, timeout=REQUEST_TIMEOUT, connector=connector
    ) as session:
        tasks = [
            asyncio.create_task(_worker(session, base, record, worker)) for worker in range(WORKERS)
        ]
        started = time.monotonic()
        try:
            while time.monotonic() - started < MAX_STREAM_SECONDS:
                await asyncio.sleep(0.02)
                if any(task.done() for task in tasks):
                    break  # a worker failed: its exception is raised below
                elapsed = time.monotonic() - started
                enough = record.successes >= MIN_SUCCESSES and elapsed >= MIN_STREAM_SECONDS
                if enough and record.atomic_in_flight:  # aim the kill at an atomic batch
                    await asyncio.sleep(random.uniform(0, 0.01))
                    break
            record.killed = True
            record.in_flight_at_kill = record.in_flight
            os.kill(process.pid, signal.SIGKILL)
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
        finally:
            for task in tasks:
                task.cancel()
    return record


def _list_all(base: str, key: str) -> dict[str, dict[str, Any]]:
    """Every memory of the tenant, through the paginated listing."""

    async def run() -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        cursor: str | None = None
        headers = {"Authorization": f"Bearer {key}"}
        async with aiohttp.ClientSession(headers=headers, timeout=REQUEST_TIMEOUT) as session:
            for _ in range(10_000):
                params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
                async with session.get(f"{base}/api/v1/memories", params=params) as response:
                    assert response.status == 200, await response.text()
                    data = (await response.json())["data"]
                for item in data["items"]:
                    found[item["id"]] = item
                cursor = data["next_cursor"]
                if not cursor:
                    return found
        raise AssertionError("the listing did not end")

    return asyncio.run(run())


def _get(base: str, key: str, memory_id: str) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {key}"}
        url = f"{base}/api/v1/memories/{memory_id}"
        async with (
            aiohttp.ClientSession(headers=headers, timeout=REQUEST_TIMEOUT) as session,
            session.get(url) as response,
        ):
            assert response.status == 200, await response.text()
            data: dict[str, Any] = (await response.json())["data"]
            return data

    return asyncio.run(run())


def _verify(base: str, key: str, records: list[Record]) -> None:
    """Every success reported in `records` is stored; every atomic batch is whole or absent."""
    stored = _list_all(base, key)
    by_tag: dict[str, list[dict[str, Any]]] = {}
    for memory in stored.values():
        for tag in memory["tags"]:
            by_tag.setdefault(tag, []).append(memory)
    for record in records:
        targets = {group.target for group in record.groups if group.target}

        # Every create reported success is there, with its content.
        missing = [memory_id for memory_id in record.created if memory_id not in stored]
        assert not missing, f"{len(missing)} reported creates lost, e.g. {missing[:5]}"
        for memory_id, content in record.created.items():
            if memory_id not in targets:
                assert stored[memory_id]["content"] == content, memory_id
                assert stored[memory_id]["version"] == 1, memory_id

        # Every atomic batch is whole or absent, its update included, answered or not.
        for group in record.groups:
            _verify_group(group, by_tag.get(group.tag, []), stored)

    # The single-memory endpoint agrees with the listing.
    updated = next(g for g in records[-1].groups if g.outcome == "success" and g.target)
    assert updated.target is not None
    assert _get(base, key, updated.target)["content"] == updated.target_after
    last = next(reversed(records[-1].created))
    assert _get(base, key, last)["content"] == records[-1].created[last]


def _verify_group(
    group: Group, members: list[dict[str, Any]], stored: dict[str, dict[str, Any]]
) -> None:
    """One atomic batch is whole or absent (`members`: the stored memories of its tag), its
    update included, and as its answer said when it got one."""
    assert len(members) in (0, GROUP_SIZE), (group.tag, group.outcome, len(members))
    applied = len(members) == GROUP_SIZE
    if group.outcome == "success":
        assert applied, group.tag
        assert sorted(m["id"] for m in members) == sorted(group.ids)
    elif group.outcome == "failed":
        assert not applied, group.tag
    if applied:
        assert sorted(m["content"] for m in members) == sorted(group.contents)
    if group.target is not None:
        target = stored[group.target]
        want = group.target_after if applied else group.target_before
        assert target["content"] == want, (group.tag, group.outcome, target)
        assert target["version"] == (2 if applied else 1), (group.tag, target)
        if group.version is not None:
            assert target["version"] == group.version


def test_kill_9_mid_stream_loses_nothing_reported_and_splits_no_atomic_batch(
    tmp_path: Path,
) -> None:
    """ROUNDS times on one file: start, check everything reported so far, stream, kill -9."""
    config = write_config(tmp_path)
    key = make_key(tmp_path, config)

    records: list[Record] = []
    for round in range(ROUNDS):
        with serving(tmp_path, config, f"round{round}.log") as server:
            process, base = server.process, server.base
            if records:
                _verify(base, key, records)
            record = asyncio.run(_stream_and_kill(base, key, process, round))
            assert process.wait(timeout=15) == -signal.SIGKILL
        records.append(record)
        # The kill landed mid-stream, after real work.
        assert record.successes >= MIN_SUCCESSES, record.successes
        assert record.in_flight_at_kill >= 1
        assert record.unknown_requests >= 1, "no request was cut off by the kill"
        assert any(group.outcome == "success" and group.target for group in record.groups)

    with serving(tmp_path, config, "last.log") as server:
        process, base = server.process, server.base
        _verify(base, key, records)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
