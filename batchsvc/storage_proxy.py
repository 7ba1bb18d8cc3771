"""Forwarding wrappers of a backend, whose every call goes through one hook: `OpsProxy` (the
operations) and `StorageProxy` (a whole backend).

A wrapper that does something around each storage call (times it: `batchsvc.metered_storage`;
takes the tenant's lock: the memory backend; injects faults: the tests' `FaultyStorage`)
subclasses one of them and overrides `_forward` alone, as structlog's bound loggers funnel every
logging method through `_proxy_to_logger`. Each forwarding method is written once, here, so a
method added to the contract reaches every wrapper at once.

What is forwarded, and how:

- The operations of `MemoryOps`, each through `_forward(method, tenant, call)`.
- The methods of the optional protocols (`OpsProxy.OPTIONAL`: `CreatesMany`, `ChangesMany`;
  for a `StorageProxy` also `ChecksReadiness` and `DurableVectors`), found from the protocols
  themselves (`contract_methods`), through `_forward` too. They are offered only where the
  wrapped object has the protocol, as attributes of the proxy: the proxy is an instance of a
  protocol (`isinstance`, which is how the core looks for them) exactly when what it wraps is,
  unless the wrapper holds the protocol back (`hide`).
- `StorageProxy` adds `ping`, and `transaction`, whose opening goes through `_forward` as the
  method "transaction" and whose ops are wrapped in turn: their calls reach the same hook.
  Entering and leaving the backend (and the transaction's commit or rollback, on leaving) pass
  straight on, as do the flags; `from_options` is not forwarded (`NOT_FORWARDED`): a proxy
  wraps a backend already built.

Arguments, return values, exceptions (the very objects) and cancellation pass through as they
are, unless the hook changes them.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

from batchsvc.models import Memory, MemoryPatch, SearchHit, SearchQuery
from batchsvc.storage import (
    ChangesMany,
    ChecksReadiness,
    CreatesMany,
    DurableVectors,
    MemoryOps,
    Page,
    Storage,
    Vector,
)

T = TypeVar("T")

#: The methods of `Storage` that are not calls to forward: its lifecycle passes straight on,
#: and a proxy is not built from options.
NOT_FORWARDED = frozenset({"from_options", "__aenter__", "__aexit__"})
_LIFECYCLE = ("__aenter__", "__aexit__")


def contract_methods(protocol: type) -> tuple[str, ...]:
    """The methods a protocol of the storage contract declares, its own and those of the
    protocols it extends, in the order they are written."""
    names: dict[str, None] = {}
    for klass in reversed(protocol.__mro__):
        if klass in (object, Protocol, Generic) or not getattr(klass, "_is_protocol", False):
            continue
        for name, value in vars(klass).items():
            method = callable(value) or isinstance(value, classmethod | staticmethod)
            if method and (not name.startswith("_") or name in _LIFECYCLE):
                names[name] = None
    return tuple(names)


def _takes_tenant(protocol: type, name: str) -> bool:
    """Whether the method's first argument is a tenant (those of the whole store have none)."""
    parameters = list(inspect.signature(getattr(protocol, name)).parameters)
    return parameters[1:2] == ["tenant"]


class OpsProxy:
    """Any `MemoryOps`, each call through `_forward`; with the optional protocols of
    `OPTIONAL` that the wrapped ops have and `hide` does not name."""

    #: The optional protocols forwarded where the wrapped object has them.
    OPTIONAL: ClassVar[tuple[type, ...]] = (CreatesMany, ChangesMany)

    def __init__(self, inner: MemoryOps, *, hide: Collection[type] = ()) -> None:
        self._inner = inner
        self._hidden = frozenset(hide)
        for protocol in self.OPTIONAL:
            if protocol not in self._hidden and isinstance(inner, protocol):
                for name in contract_methods(protocol):
                    setattr(self, name, self._forwarder(protocol, name))

    async def _forward(
        self, method: str, tenant: str | None, call: Callable[[], Awaitable[T]]
    ) -> T:
        """The hook every forwarded call goes through: `method` is its name in the contract,
        `tenant` the tenant it names (None for calls on the whole store: `ping`, `readiness`,
        `DurableVectors`), and `call()` makes it on the wrapped object (never called: the
        wrapped object never saw the call). Override it to act around every call."""
        return await call()

    def _forwarder(self, protocol: type, name: str) -> Callable[..., Awaitable[Any]]:
        """A method of an optional protocol, forwarded through `_forward`."""
        method = getattr(self._inner, name)
        scoped = _takes_tenant(protocol, name)

        async def forwarded(*args: Any, **kwargs: Any) -> Any:
            tenant = (args[0] if args else kwargs["tenant"]) if scoped else None
            return await self._forward(name, tenant, lambda: method(*args, **kwargs))

        forwarded.__name__ = forwarded.__qualname__ = name
        return forwarded

    async def create(self, tenant: str, memory: Memory, vector: Vector | None = None) -> None:
        await self._forward("create", tenant, lambda: self._inner.create(tenant, memory, vector))

    async def get(self, tenant: str, memory_id: str) -> Memory | None:
        return await self._forward("get", tenant, lambda: self._inner.get(tenant, memory_id))

    async def update(
        self,
        tenant: str,
        memory_id: str,
        patch: MemoryPatch,
        now: str,
        vector: Vector | None = None,
        vector_text: str | None = None,
    ) -> Memory | None:
        return await self._forward(
            "update",
            tenant,
            lambda: self._inner.update(tenant, memory_id, patch, now, vector, vector_text),
        )

    async def delete(self, tenant: str, memory_id: str) -> bool:
        return await self._forward("delete", tenant, lambda: self._inner.delete(tenant, memory_id))

    async def search(self, tenant: str, query: SearchQuery) -> list[SearchHit]:
        return await self._forward("search", tenant, lambda: self._inner.search(tenant, query))

    async def list(
        self,
        tenant: str,
        *,
        tags: tuple[str, ...] = (),
        memory_type: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        return await self._forward(
            "list",
            tenant,
            lambda: self._inner.list(
                tenant, tags=tags, memory_type=memory_type, limit=limit, cursor=cursor
            ),
        )


class StorageProxy(OpsProxy):
    """Any `Storage`: its operations as `OpsProxy` forwards them, `ping` and opening a
    transaction through `_forward` too, and the ops of each transaction wrapped, their calls
    through the same `_forward`."""

    OPTIONAL: ClassVar[tuple[type, ...]] = (*OpsProxy.OPTIONAL, ChecksReadiness, DurableVectors)

    def __init__(self, inner: Storage, *, hide: Collection[type] = ()) -> None:
        super().__init__(inner, hide=hide)
        self._storage = inner
        # Copied, not looked up per use: the protocol declares them plain attributes, and a
        # backend's capabilities do not change while it runs.
        self.supports_transactions = inner.supports_transactions
        self.supports_vectors = inner.supports_vectors

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        """Not a backend of its own: a proxy wraps one already built."""
        raise TypeError(f"{cls.__name__} wraps a backend; it is not configured from options")

    async def __aenter__(self) -> Self:
        await self._storage.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._storage.__aexit__(exc_type, exc, tb)

    async def ping(self) -> None:
        await self._forward("ping", None, self._storage.ping)

    def transaction(self, tenant: str) -> AbstractAsyncContextManager[MemoryOps]:
        # Asked of the backend now, not on entry, so a backend that refuses at call time
        # still does.
        return _Transaction(self, tenant, self._storage.transaction(tenant))


class _Transaction:
    """A backend's transaction, opened through the proxy's hook and yielding its ops wrapped;
    leaving it (the commit or rollback) is the backend's own, and whatever its `__aexit__`
    returns (whether it suppresses an exception) is returned unchanged."""

    def __init__(
        self, owner: OpsProxy, tenant: str, inner: AbstractAsyncContextManager[MemoryOps]
    ) -> None:
        self._owner = owner
        self._tenant = tenant
        self._inner = inner

    async def __aenter__(self) -> MemoryOps:
        ops = await self._owner._forward("transaction", self._tenant, self._inner.__aenter__)
        return _TransactionOps(ops, self._owner)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return await self._inner.__aexit__(exc_type, exc, tb)


class _TransactionOps(OpsProxy):
    """The ops of a transaction, each call through the hook of the proxy that opened it."""

    def __init__(self, inner: MemoryOps, owner: OpsProxy) -> None:
        self._owner = owner
        super().__init__(inner, hide=owner._hidden)

    async def _forward(
        self, method: str, tenant: str | None, call: Callable[[], Awaitable[T]]
    ) -> T:
        return await self._owner._forward(method, tenant, call)


def forwarded_methods(proxy: type[OpsProxy]) -> dict[type, tuple[str, ...]]:
    """The methods `proxy` forwards through `_forward`, by protocol: those of `MemoryOps`, of
    each optional protocol, and for a `StorageProxy` those of `Storage` but `NOT_FORWARDED`."""
    protocols: Sequence[type] = (MemoryOps, *proxy.OPTIONAL)
    if issubclass(proxy, StorageProxy):
        protocols = (Storage, *proxy.OPTIONAL)
    return {
        protocol: tuple(m for m in contract_methods(protocol) if m not in NOT_FORWARDED)
        for protocol in protocols
    }


__all__ = [
    "NOT_FORWARDED",
    "OpsProxy",
    "StorageProxy",
    "contract_methods",
    "forwarded_methods",
]
