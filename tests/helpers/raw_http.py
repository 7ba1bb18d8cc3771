"""HTTP as bytes on a socket, for requests a normal client refuses to send (conflicting
framing, oversized headers, false encodings, bodies cut short), to a `batchsvc serve` process
(`tests.helpers.processes.serving`) or any other server on a loopback port."""

from __future__ import annotations

import json
import socket
from typing import Any

from attrs import define


@define
class RawResponse:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request_bytes(
    method: str, path: str, headers: list[tuple[str, str]], body: bytes = b""
) -> bytes:
    """A request as sent; headers exactly as given (no Content-Length is added)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{n}: {v}" for n, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def exchange(port: int, data: bytes, *, timeout: float = 10) -> RawResponse:
    """Send `data` on a new connection and read one response (by Content-Length, or to the
    end of the connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while True:
            head, found, body = received.partition(b"\r\n\r\n")
            if found:
                response = _parse(head, body)
                length = response.headers.get("content-length")
                if length is not None and len(body) >= int(length):
                    response.body = body[: int(length)]
                    return response
            chunk = sock.recv(65536)
            if not chunk:
                if not found:
                    raise AssertionError(f"connection closed without a response: {received!r}")
                return _parse(head, body)
            received += chunk


def _parse(head: bytes, body: bytes) -> RawResponse:
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(int(status_line.split()[1]), headers, body)
