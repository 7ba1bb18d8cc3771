"""What a real `batchsvc serve` logs about batches: one event per batch with its context and
counts, a warning per failed operation with its index and code, and never what a memory holds,
a query or a key, at any level."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.processes import DEFAULTS_CONFIG, Server, serving
from tests.helpers.responses import MISSING

#: Words that exist only in what the client sent: none may reach the log.
SECRETS = (
    "zebra7731content",
    "quokka5512title",
    "narwhal9043meta",
    "okapi4410tag",
    "axolotl2208query",
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    config = tmp_path / "service.toml"
    config.write_text(DEFAULTS_CONFIG + '[logging]\nlevel = "debug"\n', encoding="utf-8")
    with serving(tmp_path, config, tenant="acme", check_exit=True) as running:
        yield running


def test_a_batch_is_one_event_and_each_failure_a_warning_without_content(
    server: Server,
) -> None:
    operations = [
        {
            "type": "create",
            "data": {
                "content": f"a memory about {SECRETS[0]}",
                "title": SECRETS[1],
                "metadata": {"note": SECRETS[2], "nested": {"deep": SECRETS[2]}},
                "tags": [SECRETS[3]],
            },
        },
        {"type": "read", "id": MISSING},
        {"type": "search", "query": SECRETS[4], "options": {"filters": {"note": SECRETS[2]}}},
        {"type": "update", "id": "$0", "data": {"content": "", "title": SECRETS[1]}},
    ]
    body = {"operations": operations, "options": {"continue_on_error": True}}
    status, answer = server.call("POST", "/api/v1/batch", server.key, body)
    assert status == 207, answer
    assert server.stop() == 0
    lines = server.log_lines()

    [event] = [line for line in lines if line["event"] == "batch"]
    assert event["level"] == "info"
    assert event["batch_id"] == answer["data"]["batch_id"]
    assert event["tenant"] == "acme" and event["key_id"].startswith("key_")
    assert event["request_id"]
    assert event["backend"] == "sqlite"
    assert event["operations"] == 4
    assert event["statuses"] == {"success": 2, "failed": 2}
    assert event["types"] == {"create": 1, "read": 1, "search": 1, "update": 1}
    assert event["validate_only"] is False and event["atomic"] is False
    assert event["duration_ms"] > 0

    warnings = [line for line in lines if line["event"] == "operation_failed"]
    assert [(w["index"], w["type"], w["code"]) for w in warnings] == [
        (1, "read", "NOT_FOUND"),
        (3, "update", "VALIDATION_ERROR"),
    ]
    assert all(w["level"] == "warning" and w["batch_id"] == event["batch_id"] for w in warnings)

    everything = server.log.read_text(encoding="utf-8", errors="replace")
    assert everything.count("\n") >= len(lines) >= 3
    leaked = [word for word in (*SECRETS, server.key) if word in everything]
    assert not leaked, leaked
