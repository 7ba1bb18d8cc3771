"""Fault 7: a client hanging up while its body is read was logged as `request_crashed` (error,
with a traceback) and counted as a 500, so any key holder could inflate the error rate and
flood the log. Against a real `batchsvc serve`: it is counted as 499 (nginx's "client closed
request"), logged at info, and the server goes on serving."""

from __future__ import annotations

import socket
import struct
import time

import orjson
import pytest

from tests.helpers.processes import Server
from tests.helpers.raw_http import exchange, request_bytes

REQUESTS = "batchsvc_http_requests_total"


def counted(served: Server, route: str) -> dict[str, float]:
    """The request counter's samples for POST `route`, by status."""
    samples: dict[str, float] = {}
    for line in served.metric_lines(REQUESTS):
        labels, value = line.rsplit(" ", 1)
        if f'route="{route}"' in labels and 'method="POST"' in labels:
            status = labels.split('status="')[1].split('"')[0]
            samples[status] = float(value)
    return samples


def hang_up(served: Server, path: str, request_id: str, *, reset: bool) -> None:
    """Headers announcing 100,000 bytes, a few of them, then close (FIN, or RST if `reset`)."""
    headers = [
        served.auth(),
        ("Content-Type", "application/json"),
        ("Content-Length", "100000"),
        ("X-Request-Id", request_id),
    ]
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=5)
    sock.sendall(request_bytes("POST", path, headers, b'{"operations": [{"type"'))
    time.sleep(0.2)  # let the server start reading the body
    if reset:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
@pytest.mark.parametrize("path", ["/api/v1/batch", "/api/v1/memories"])
def test_hanging_up_mid_body_is_499_not_an_error(served: Server, path: str, reset: bool) -> None:
    before = counted(served, path)
    request_id = f"hangup-{path.rsplit('/', 1)[1]}-{'rst' if reset else 'fin'}"
    hang_up(served, path, request_id, reset=reset)

    logged = served.wait_for_log(
        lambda line: line.get("request_id") == request_id and line["event"] == "request"
    )
    assert logged["status"] == 499, logged
    lines = [line for line in served.log_lines() if line.get("request_id") == request_id]
    assert all(line["level"] in ("debug", "info") for line in lines), lines
    assert not any(line["event"] == "request_crashed" for line in lines)
    assert "Traceback" not in served.unstructured_log()

    after = counted(served, path)
    assert after.get("500", 0) == before.get("500", 0) == 0
    assert after.get("499", 0) == before.get("499", 0) + 1

    # And the server still serves, on a new connection.
    body = orjson.dumps({"operations": [{"type": "create", "data": {"content": "still here"}}]})
    headers = [served.auth(), ("Content-Type", "application/json")]
    headers.append(("Content-Length", str(len(body))))
    response = exchange(served.port, request_bytes("POST", "/api/v1/batch", headers, body))
    assert response.status == 200, response
