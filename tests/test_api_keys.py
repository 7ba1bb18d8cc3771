"""API keys (`batchsvc.api_keys`). The keys file when it is not a plain readable file: every
fault fails closed with 503 (the server's fault, never the key's, never a 500), and a mended file
is read again at once. A bearer token that is not even UTF-8 is no key: 401, not a crash."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from batchsvc.api_keys import KeyFileError, KeyStore
from tests.helpers.service import Service


async def _status(service: Service) -> tuple[int, Any]:
    response = await service.client.get("/api/v1/memories", headers=service.auth())
    return response.status, await response.json()


async def _refused(service: Service) -> None:
    status, body = await _status(service)
    assert status == 503, body
    assert body["error"]["code"] == "BACKEND_UNAVAILABLE"
    assert body["error"]["details"] == {"reason": "keys_file_unreadable"}


def _break(keys_file: Path, fault: str) -> Path:
    """Put `fault` where the keys file was; where the good file went."""
    good = keys_file.with_name("good.json")
    os.replace(keys_file, good)
    if fault == "link_loop":
        keys_file.symlink_to(keys_file)
    elif fault == "dangling_link":  # a secrets volume that is not mounted, say
        keys_file.symlink_to(keys_file.with_name("missing.json"))
    else:
        keys_file.mkdir()
    return good


def _mend(keys_file: Path, good: Path) -> None:
    if keys_file.is_dir() and not keys_file.is_symlink():
        keys_file.rmdir()
    else:
        keys_file.unlink()
    os.replace(good, keys_file)


@pytest.mark.parametrize("fault", ["link_loop", "dangling_link", "folder"])
async def test_a_file_that_cannot_be_read_fails_closed_then_mends(
    service: Service, keys_file: Path, fault: str
) -> None:
    good = _break(keys_file, fault)
    await _refused(service)
    await _refused(service)
    _mend(keys_file, good)
    status, _ = await _status(service)
    assert status == 200


def test_a_failed_read_is_tried_again_though_the_file_did_not_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A chmod, or a file descriptor freed, mends a read without changing the file's size or
    # modification time: such a failure must not be remembered against the file.
    store = KeyStore(tmp_path / "keys.json")
    _, secret = store.create("acme")
    reader = KeyStore(tmp_path / "keys.json")
    real_read = Path.read_bytes
    failures = iter([PermissionError(13, "Permission denied")])

    def read_bytes(path: Path) -> bytes:
        error = next(failures, None)
        if error is not None:
            raise error
        return real_read(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    with pytest.raises(KeyFileError, match="cannot be read"):
        reader.authenticate(secret)
    found = reader.authenticate(secret)
    assert found is not None and found.tenant == "acme"


def test_a_damaged_content_is_not_parsed_again_until_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keys.json"
    path.write_text('{"keys": "broken"}', encoding="utf-8")
    store = KeyStore(path)
    reads = 0
    real_read = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        nonlocal reads
        reads += 1
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    for _ in range(5):
        with pytest.raises(KeyFileError, match="not a keys file"):
            store.authenticate("bsk_" + "x" * 43)
    assert reads == 1


class TestOddInput:
    """Odd bytes are client errors with the right code, never a 500."""

    async def test_bearer_token_with_invalid_utf8_is_unauthorized(self, service: Service) -> None:
        server = service.client.server
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(
            b"POST /api/v1/batch HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Authorization: Bearer bsk_\xff\xfe\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2\r\n\r\n{}"
        )
        await writer.drain()
        answer = await reader.read()
        writer.close()
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert b'"UNAUTHORIZED"' in answer
