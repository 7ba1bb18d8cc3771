"""Fault 8: requests aiohttp's own parser refuses were answered in plain text (echoing the
bytes it choked on), without the envelope or an X-Request-Id, and logged with a traceback at
error level. Sent as raw bytes to a real `batchsvc serve`, and to an AppRunner built from
create_app: 400 VALIDATION_ERROR in the envelope, `details.reason`, a short message, an
X-Request-Id, logged at info. Then the aiohttp internals `batchsvc.http.protocol` relies on."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from batchsvc.http.app import create_app
from batchsvc.http.protocol import EnvelopeRequestHandler, answer_protocol_errors_in_envelope
from tests.helpers.processes import Server
from tests.helpers.raw_http import RawResponse, exchange, request_bytes
from tests.helpers.responses import REQUEST_ID, assert_error
from tests.helpers.service import make_config

LONG = "a" * 9000  # past aiohttp's 8190-byte line and field limits
BODY = b'{"operations": [{"type": "create", "data": {"content": "x"}}]}'

# name: (raw request, the expected details.reason)
REFUSED: dict[str, tuple[bytes, str]] = {
    "long-header-line": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + LONG.encode() + b"\r\n\r\n",
        "line_too_long",
    ),
    "long-request-line": (
        b"GET /healthz?" + LONG.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        "line_too_long",
    ),
    "content-length-and-chunked": (
        b"POST /api/v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "malformed_request",
    ),
    "two-content-types": (
        b"POST /api/v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY),
        "malformed_request",
    ),
    "two-content-lengths": (
        b"POST /api/v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
        b"Content-Length: 4\r\n\r\nabcd",
        "malformed_request",
    ),
    "bad-chunk-size": (
        b"POST /api/v1/batch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nabc\r\n0\r\n\r\n",
        "malformed_request",
    ),
    "too-many-headers": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-H%d: v\r\n" % i for i in range(200))
        + b"\r\n",
        "malformed_request",
    ),
    "no-host": (b"GET /healthz HTTP/1.1\r\n\r\n", "malformed_request"),
    "bad-method": (b"G(T /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "invalid_request_line"),
    "tls-on-http": (
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40),
        "invalid_request_line",
    ),
    "header-without-colon": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
        "malformed_request",
    ),
}


def assert_enveloped(response: RawResponse, reason: str) -> str:
    """The envelope, the reason, a short message without echoed bytes; the request id."""
    assert response.status == 400, response
    assert response.headers["content-type"].startswith("application/json"), response
    assert_error(response.json(), "VALIDATION_ERROR", {"reason": reason})
    message = response.json()["error"]["message"]
    assert len(message) <= 160 and "b'" not in message and "aiohttp" not in message.lower()
    assert "Brotli" not in message and "\n" not in message
    request_id = response.headers["x-request-id"]
    assert REQUEST_ID.fullmatch(request_id), request_id
    return request_id


class TestServe:
    @pytest.mark.parametrize("name", list(REFUSED))
    def test_refused_in_the_envelope(self, served: Server, name: str) -> None:
        raw, reason = REFUSED[name]
        request_id = assert_enveloped(exchange(served.port, raw), reason)
        logged = served.wait_for_log(lambda line: line.get("request_id") == request_id)
        assert logged["level"] == "info" and logged["event"] == "bad_http_request", logged
        assert logged["reason"] == reason
        # aiohttp's own "Error handling request" traceback went to standard error unstructured.
        assert "Traceback" not in served.unstructured_log()
        assert "Error handling request" not in served.unstructured_log()
        assert not [line for line in served.log_lines() if line["level"] == "error"]

    def test_still_serves_after_them(self, served: Server) -> None:
        for raw, _ in REFUSED.values():
            exchange(served.port, raw)
        headers = [served.auth(), ("Content-Type", "application/json")]
        headers.append(("Content-Length", str(len(BODY))))
        response = exchange(served.port, request_bytes("POST", "/api/v1/batch", headers, BODY))
        assert response.status == 200, response


@pytest.fixture
async def runner_port(tmp_path: Path) -> AsyncIterator[int]:
    """create_app in a plain web.AppRunner on a loopback socket, as tests/api/test_openapi.py."""
    runner = web.AppRunner(create_app(make_config(tmp_path / "keys.json")), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert isinstance(runner.server, web.Server)
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def raw_exchange(port: int, data: bytes) -> RawResponse:
    """`exchange`, off the event loop that runs the server."""
    return await asyncio.to_thread(exchange, port, data)


class TestAppRunner:
    """The fix is in create_app: an AppRunner built from it (the test client, a live server
    in a test) answers the same."""

    @pytest.mark.parametrize("name", ["content-length-and-chunked", "long-header-line"])
    async def test_refused_in_the_envelope(self, runner_port: int, name: str) -> None:
        raw, reason = REFUSED[name]
        assert_enveloped(await raw_exchange(runner_port, raw), reason)


class TestAiohttpHooks:
    """`batchsvc.http.protocol` relies on aiohttp internals (see its docstring). If any of
    these fails after an aiohttp upgrade, the envelope for parser errors is gone: find the
    new way in, and change that module."""

    def test_runners_build_the_server_through_make_handler(self) -> None:
        source = inspect.getsource(web.AppRunner._make_server)
        assert "._make_handler(" in source

    def test_handle_error_signature(self) -> None:
        parameters = list(inspect.signature(web.RequestHandler.handle_error).parameters)
        assert parameters == ["self", "request", "status", "exc", "message"]
        source = inspect.getsource(web.RequestHandler._make_error_handler)
        assert "self.handle_error(" in source

    def test_server_builds_handlers_from_loop_and_kwargs(self) -> None:
        source = inspect.getsource(web.Server.__call__)
        assert "RequestHandler(self, loop=self._loop, **self._kwargs)" in source

    async def test_every_runner_gets_the_envelope_handler(self, tmp_path: Path) -> None:
        runner = web.AppRunner(create_app(make_config(tmp_path / "keys.json")))
        await runner.setup()
        try:
            assert runner.server is not None
            handler = runner.server()
            assert type(handler) is EnvelopeRequestHandler
            handler.connection_lost(None)
        finally:
            await runner.cleanup()


async def _crash(request: web.Request) -> web.Response:
    raise RuntimeError("an internal detail")


async def _stall(request: web.Request) -> web.Response:
    raise TimeoutError


class TestEscapedErrors:
    """handle_error also answers what escapes every middleware (in create_app's, nothing
    should): a bare app, with the hook and no middlewares, shows those answers."""

    @pytest.fixture
    async def bare_port(self) -> AsyncIterator[int]:
        app = web.Application()
        app.router.add_get("/crash", _crash)
        app.router.add_get("/stall", _stall)
        answer_protocol_errors_in_envelope(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            yield runner.addresses[0][1]
        finally:
            await runner.cleanup()

    @pytest.mark.parametrize(
        ("path", "status", "code"), [("/crash", 500, "INTERNAL_ERROR"), ("/stall", 504, "TIMEOUT")]
    )
    async def test_answered_in_the_envelope(
        self, bare_port: int, path: str, status: int, code: str
    ) -> None:
        response = await raw_exchange(bare_port, request_bytes("GET", path, []))
        assert response.status == status
        body: Any = orjson.loads(response.body)
        assert_error(body, code, {})
        assert "internal detail" not in response.body.decode()
        assert REQUEST_ID.fullmatch(response.headers["x-request-id"])
