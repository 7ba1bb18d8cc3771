"""API keys: each belongs to one tenant and is stored only as a SHA-256 hash.

Keys are 256 random bits, so a plain hash is enough (no salt or slow hash needed: nothing
can be guessed). The file is rewritten atomically; the server re-reads it when it changes, so
a key made with `batchsvc keys create` works at once, and a revoked one stops at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import structlog
from attrs import define, frozen

from batchsvc.models import utc_now

KEY_PREFIX = "bsk_"
TENANT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


log = structlog.get_logger("batchsvc.api_keys")


class KeyFileError(Exception):
    """The keys file exists but cannot be read as one; nothing rewrites it then."""


@frozen
class ApiKey:
    key_id: str
    tenant: str
    key_hash: str
    created_at: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def valid_tenant(name: str) -> bool:
    return 1 <= len(name) <= 64 and set(name) <= TENANT_CHARS


@define
class KeyStore:
    """The keys file, cached and re-read when its modification time changes."""

    path: Path
    _keys: dict[str, ApiKey] | None = None
    _stamp: tuple[int, int] | None = None
    #: The version (stamp) of a file whose content is not a keys file, and why: not parsed
    #: again until the file changes. A file that cannot be read (an OSError) is not
    #: remembered: the next request tries again, since a chmod or a free file descriptor
    #: can mend it without changing the file.
    _damaged: tuple[tuple[int, int], str] | None = None
    #: The fault last logged: each is logged once, not once per request.
    _reported: str | None = None

    def _load(self) -> dict[str, ApiKey]:
        """The keys; KeyFileError if the file exists and cannot be read as a keys file."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            if self.path.is_symlink():
                # A link to nothing (a secrets volume not mounted, say) is not "no keys yet".
                raise KeyFileError(f"{self.path}: a link to a file that does not exist") from None
            self._keys, self._stamp = {}, None
            return self._keys
        except OSError as error:  # a link loop, a folder on the path that is a file...
            raise KeyFileError(f"{self.path}: cannot be read ({error})") from error
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._keys is not None and stamp == self._stamp:
            return self._keys
        if self._damaged is not None and self._damaged[0] == stamp:
            raise KeyFileError(self._damaged[1])
        try:
            raw = self.path.read_bytes()
        except OSError as error:
            raise KeyFileError(f"{self.path}: cannot be read ({error})") from error
        try:
            records = orjson.loads(raw)["keys"]
            keys = {r["key_hash"]: ApiKey(**r) for r in records}
        except (ValueError, KeyError, TypeError) as error:
            reason = f"{self.path}: not a keys file this release wrote ({type(error).__name__})"
            self._damaged = (stamp, reason)
            raise KeyFileError(reason) from error
        self._keys, self._stamp, self._damaged = keys, stamp, None
        return keys

    def check(self) -> None:
        """Raise KeyFileError if the file exists and cannot be read: `serve` refuses to start."""
        self._load()

    def authenticate(self, key: str) -> ApiKey | None:
        """The active key with this secret, or None. KeyFileError when the keys file is
        damaged: that is the server's fault, not the key's, so the caller answers 503."""
        # Keys are ASCII; a header with other bytes (aiohttp keeps them as surrogates) is
        # simply not a key, never a crash while hashing it.
        if not key.startswith(KEY_PREFIX) or not key.isascii():
            return None
        try:
            found = self._load().get(hash_key(key))
        except KeyFileError as error:
            # Fail closed, and say so once per fault (not per request): an operator must fix
            # or restore the file; it is read again as soon as it can be.
            if self._reported != str(error):
                self._reported = str(error)
                log.error("keys_file_unreadable", path=str(self.path), error=str(error))
            raise
        self._reported = None
        # The dict lookup already matched the hash; compare again in constant time anyway so
        # that a future change to the lookup cannot open a timing side channel.
        if found is None or not hmac.compare_digest(found.key_hash, hash_key(key)):
            return None
        return found if found.active else None

    def all_keys(self) -> list[ApiKey]:
        return sorted(self._load().values(), key=lambda k: (k.created_at, k.key_id))

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Serialise writers across processes, so two `keys create` never lose one another."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._keys = None
            yield

    def create(self, tenant: str) -> tuple[ApiKey, str]:
        """Make a key for `tenant`; returns the record and the secret, which is never stored."""
        if not valid_tenant(tenant):
            raise ValueError("a tenant is 1-64 characters of A-Z a-z 0-9 . _ -")
        with self._exclusive():
            return self._create(tenant)

    def _create(self, tenant: str) -> tuple[ApiKey, str]:
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        record = ApiKey(
            key_id="key_" + secrets.token_hex(6),
            tenant=tenant,
            key_hash=hash_key(secret),
            created_at=utc_now(),
        )
        self._save([*self.all_keys(), record])
        return record, secret

    def revoke(self, key_id: str) -> ApiKey:
        with self._exclusive():
            return self._revoke(key_id)

    def _revoke(self, key_id: str) -> ApiKey:
        keys = self.all_keys()
        for i, record in enumerate(keys):
            if record.key_id == key_id:
                if record.active:
                    keys[i] = ApiKey(**{**_record(record), "revoked_at": utc_now()})
                    self._save(keys)
                return keys[i]
        raise KeyError(key_id)

    def _save(self, keys: list[ApiKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = orjson.dumps({"keys": [_record(k) for k in keys]}, option=orjson.OPT_INDENT_2)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keys-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._keys = None


def _record(key: ApiKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "tenant": key.tenant,
        "key_hash": key.key_hash,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }
