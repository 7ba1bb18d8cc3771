"""Request bodies with a `Content-Encoding`, sent as raw bytes to a real `batchsvc serve`: a
false or corrupt coding is the client's error (400 INVALID_JSON), never a crash; a coding the
service cannot undo is 415 before the body is read; the 10 MiB limit holds on the decoded
body, and a compression bomb is never inflated into memory."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from batchsvc.http.encoding import (
    DecodedTooLarge,
    UndecodableBody,
    UnsupportedEncoding,
    content_coding,
    decode,
)
from tests.helpers.processes import Server
from tests.helpers.raw_http import exchange, request_bytes
from tests.helpers.responses import REQUEST_ID, assert_error
from tests.helpers.service import Service

MAX_BODY = 10 * 1024 * 1024  # the default limit, which the served process keeps
ONE_CREATE = orjson.dumps({"operations": [{"type": "create", "data": {"content": "packed"}}]})


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def zeros_gzip(size: int) -> bytes:
    """`size` zero bytes, gzipped (about a thousandth of the size), made in pieces."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    parts = [packer.compress(block) for _ in range(size // len(block))]
    return b"".join(parts) + packer.flush()


def post(served: Server, body: bytes, encoding: str | None, *, length: int | None = None) -> Any:
    headers = [served.auth(), ("Content-Type", "application/json")]
    if encoding is not None:
        headers.append(("Content-Encoding", encoding))
    headers.append(("Content-Length", str(len(body) if length is None else length)))
    return exchange(served.port, request_bytes("POST", "/api/v1/batch", headers, body))


def assert_nothing_logged_as_error(served: Server, request_id: str) -> None:
    lines = [line for line in served.log_lines() if line.get("request_id") == request_id]
    assert lines, "the request was not logged"
    assert all(line["level"] not in ("error", "critical") for line in lines), lines
    assert "Traceback" not in served.unstructured_log()


class TestFalseEncoding:
    """Fault 6: a body that claims gzip or deflate and is not answered 500 and logged a
    traceback. It is the client's error: 400 INVALID_JSON in the envelope."""

    @pytest.mark.parametrize(
        ("encoding", "body"),
        [
            ("gzip", b'{"operations": []}'),
            ("deflate", b"not deflate at all"),
            ("x-gzip", b"\x1f\x8b but no more"),
            ("gzip", gzip.compress(ONE_CREATE)[:-6]),  # truncated: no end, no checksum
            ("gzip", gzip.compress(ONE_CREATE) + b"trailing junk"),
            ("deflate", zlib.compress(ONE_CREATE) + b"trailing junk"),
        ],
        ids=["gzip-plain-json", "deflate-text", "x-gzip-magic-only", "truncated", "junk", "junk2"],
    )
    def test_is_400_invalid_json(self, served: Server, encoding: str, body: bytes) -> None:
        response = post(served, body, encoding)
        assert response.status == 400, response
        assert response.headers["content-type"].startswith("application/json")
        details = assert_error(response.json(), "INVALID_JSON")
        assert set(details) == {"reason"}
        assert REQUEST_ID.fullmatch(response.headers["x-request-id"])
        assert_nothing_logged_as_error(served, response.headers["x-request-id"])

    @pytest.mark.parametrize(
        ("encoding", "body"),
        [
            ("gzip", gzip.compress(ONE_CREATE)),
            ("GZip", gzip.compress(ONE_CREATE)),
            ("x-gzip", gzip.compress(ONE_CREATE)),
            ("gzip", gzip.compress(ONE_CREATE[:20]) + gzip.compress(ONE_CREATE[20:])),
            ("deflate", zlib.compress(ONE_CREATE)),
            ("deflate", raw_deflate(ONE_CREATE)),
            ("identity", ONE_CREATE),
        ],
        ids=["gzip", "case", "x-gzip", "two-members", "zlib", "raw-deflate", "identity"],
    )
    def test_valid_encodings_still_work(self, served: Server, encoding: str, body: bytes) -> None:
        response = post(served, body, encoding)
        assert response.status == 200, response
        assert response.json()["data"]["processed"] == 1

    async def test_in_a_runner_built_from_create_app(self, service: Service) -> None:
        """The fix lives in the app: the test client's own AppRunner gets it too."""
        response = await service.client.post(
            "/api/v1/batch",
            data=b"not gzip",
            headers={
                **service.auth(),
                "Content-Type": "application/json",
                "Content-Encoding": "gzip",
            },
        )
        assert response.status == 400
        assert_error(await response.json(), "INVALID_JSON")


class TestDecodedLimit:
    """The 10 MiB limit holds on the decoded body, and decoding stops just past it."""

    def test_a_gzip_bomb_is_refused_without_being_inflated(self, served: Server) -> None:
        bomb = zeros_gzip(256 * 1024 * 1024)  # 256 MiB of zeros in about 250 KiB
        assert len(bomb) < 1024 * 1024
        peak_before = peak_memory(served)
        response = post(served, bomb, "gzip")
        assert response.status == 413
        assert_error(response.json(), "PAYLOAD_TOO_LARGE", {"max_bytes": MAX_BODY})
        # Bounded, the decoded body costs about two copies of the limit (about 23 MB measured);
        # aiohttp's own decoder (before the fix) let the peak grow by about 76 MB.
        peak_after = peak_memory(served)
        if peak_before is not None and peak_after is not None:
            grown = peak_after - peak_before
            assert grown < 48 * 1024 * 1024, f"peak memory grew {grown} bytes"

    @pytest.mark.parametrize(("size", "status"), [(MAX_BODY, 207), (MAX_BODY + 1, 413)])
    def test_the_limit_is_on_decoded_bytes(self, served: Server, size: int, status: int) -> None:
        # One create whose content is too long for an operation (207, failed), but a body
        # within the limit; one byte more and the request is refused whole (413).
        base = len(orjson.dumps({"operations": [{"type": "create", "data": {"content": ""}}]}))
        body = orjson.dumps(
            {"operations": [{"type": "create", "data": {"content": "x" * (size - base)}}]}
        )
        assert len(body) == size
        response = post(served, gzip.compress(body), "gzip")
        assert response.status == status, response.body[:300]
        if status == 413:
            assert_error(response.json(), "PAYLOAD_TOO_LARGE", {"max_bytes": MAX_BODY})


def peak_memory(served: Server) -> int | None:
    """The server process's peak resident memory (Linux), in bytes."""
    status = Path(f"/proc/{served.process.pid}/status")
    if not status.exists():
        return None
    for line in status.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


class TestUnsupportedEncoding:
    """Fault 8 (second half): br or zstd answered aiohttp's plain-text "Please install
    Brotli". A coding the service cannot undo is 415 in the envelope, naming it, decided
    before the body is read."""

    @pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, br", "gzip, gzip"])
    def test_is_415_naming_the_encoding(self, served: Server, encoding: str) -> None:
        response = post(served, b"\x00\x01\x02", encoding)
        assert response.status == 415, response
        assert_error(response.json(), "UNSUPPORTED_MEDIA_TYPE", {"content_encoding": encoding})
        assert REQUEST_ID.fullmatch(response.headers["x-request-id"])
        assert_nothing_logged_as_error(served, response.headers["x-request-id"])

    def test_before_the_body_is_read(self, served: Server) -> None:
        # 100,000 bytes announced, none sent: the answer cannot have waited for them.
        response = post(served, b"", "br", length=100_000)
        assert response.status == 415
        assert "Brotli" not in response.body.decode()


class TestDecode:
    """`batchsvc.http.encoding` alone: what it accepts, and its memory bound."""

    @pytest.mark.parametrize(
        ("header", "coding"),
        [(None, None), ("", None), ("identity", None), (" GZIP ", "gzip"), ("x-gzip", "gzip")],
    )
    def test_content_coding(self, header: str | None, coding: str | None) -> None:
        assert content_coding(header) == coding

    @pytest.mark.parametrize("header", ["br", "zstd", "gzip, deflate", "*"])
    def test_unsupported(self, header: str) -> None:
        with pytest.raises(UnsupportedEncoding):
            content_coding(header)

    def test_exactly_the_limit_and_one_more(self) -> None:
        data = b"y" * 1000
        assert decode(gzip.compress(data), "gzip", 1000) == data
        with pytest.raises(DecodedTooLarge):
            decode(gzip.compress(data + b"y"), "gzip", 1000)
        with pytest.raises(DecodedTooLarge):  # the limit spans gzip members
            decode(gzip.compress(data) + gzip.compress(b"y"), "gzip", 1000)

    def test_empty_body_is_undecodable(self) -> None:
        with pytest.raises(UndecodableBody):
            decode(b"", "gzip", 1000)

    def test_a_bomb_is_decoded_only_to_the_limit(self) -> None:
        bomb = zeros_gzip(64 * 1024 * 1024)
        tracemalloc.start()
        try:
            with pytest.raises(DecodedTooLarge):
                decode(bomb, "gzip", 1024 * 1024)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 4 * 1024 * 1024, peak
