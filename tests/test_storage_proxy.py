"""The forwarding base of the storage wrappers (`batchsvc.storage_proxy`): every method of
every protocol of the contract reaches the wrapped object through the one hook, in each wrapper
(the metrics timing, the fault injection, the memory backend's tenant lock) and in the ops of
its transactions; an optional protocol is offered exactly where the wrapped object has it."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
from batchsvc_backends.memory import MemoryStore, _TenantLocked

from batchsvc import storage
from batchsvc.metered_storage import MeteredStorage
from batchsvc.metrics import Metrics
from batchsvc.storage import ChangesMany, CreatesMany, DurableVectors, MemoryOps, Storage
from batchsvc.storage_proxy import (
    NOT_FORWARDED,
    OpsProxy,
    StorageProxy,
    contract_methods,
    forwarded_methods,
)
from tests.helpers.faults import FaultyStorage

T = TypeVar("T")
TENANT = "acme"
OPS_PROTOCOLS = (MemoryOps, CreatesMany, ChangesMany)


class Recorder:
    """Has every method of the protocols it is made with; each call is recorded with its
    arguments (and what `probe` says during it) and returns an object of its own (or None,
    where the contract says so)."""

    supports_transactions = True
    supports_vectors = True

    def __init__(self, protocols: tuple[type, ...], probe: Callable[[], Any] = lambda: None):
        self.calls: list[tuple[str, tuple[Any, ...], Any]] = []
        self.results: dict[str, object] = {}
        self.transactions: list[Recorder] = []
        self.entered = 0
        for protocol in protocols:
            for name in contract_methods(protocol):
                if name not in NOT_FORWARDED and name != "transaction":
                    setattr(self, name, self._method(protocol, name, probe))
        if Storage in protocols:
            self.transaction = self._transaction
        #: Its transactions' ops have the operations, and the bulk ones if it has them.
        self._ops = (MemoryOps, *(p for p in protocols if p in (CreatesMany, ChangesMany)))

    def _method(
        self, protocol: type, name: str, probe: Callable[[], Any]
    ) -> Callable[..., Awaitable[object]]:
        gives = inspect.signature(getattr(protocol, name)).return_annotation != "None"
        result = self.results[name] = object() if gives else None

        async def method(*args: Any, **kwargs: Any) -> object:
            self.calls.append((name, (*args, *kwargs.values()), probe()))
            return result

        return method

    @asynccontextmanager
    async def _transaction(self, tenant: str) -> AsyncIterator[Recorder]:
        ops = Recorder(self._ops)
        self.transactions.append(ops)
        yield ops

    async def __aenter__(self) -> Recorder:
        self.entered += 1
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.entered -= 1


def spied(kind: type[T]) -> type[T]:
    """`kind`, its hook recording each call it is given before doing its own work."""

    class Spied(kind):  # type: ignore[valid-type,misc]
        async def _forward(
            self, method: str, tenant: str | None, call: Callable[[], Awaitable[Any]]
        ) -> Any:
            self.hooked = [*getattr(self, "hooked", []), (method, tenant)]
            return await super()._forward(method, tenant, call)

    return Spied


def arguments(protocol: type, name: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Arguments for a call: the tenant, then an object of its own for each other required
    argument (`True` for keyword-only flags)."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for parameter in list(inspect.signature(getattr(protocol, name)).parameters.values())[1:]:
        if parameter.default is not inspect.Parameter.empty:
            continue
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY:
            kwargs[parameter.name] = True
        else:
            args.append(TENANT if parameter.name == "tenant" else object())
    return tuple(args), kwargs


async def assert_forwards(
    proxy: Any, inner: Recorder, protocols: dict[type, tuple[str, ...]], spy: Any = None
) -> None:
    """Each method of `proxy` reaches the hook of `spy` (`proxy` itself unless given) with
    its name and tenant, then `inner` with the very arguments given, and returns what `inner`
    returned."""
    spy = proxy if spy is None else spy
    for protocol, names in protocols.items():
        for name in names:
            if name == "transaction":
                continue
            args, kwargs = arguments(protocol, name)
            assert await getattr(proxy, name)(*args, **kwargs) is inner.results[name], name
            called, given, _ = inner.calls[-1]
            assert called == name
            assert all(any(a is g for g in given) for a in (*args, *kwargs.values())), name
            tenant = TENANT if args and args[0] == TENANT else None
            assert spy.hooked[-1] == (name, tenant)


ALL_PROTOCOLS = tuple(forwarded_methods(StorageProxy))
OPS_ONLY = forwarded_methods(OpsProxy)

#: Each wrapper around a `Recorder`, which has the contract's methods only at run time.
WRAPPERS: dict[str, Callable[[Any], Any]] = {
    "the base": lambda inner: spied(StorageProxy)(inner),
    "metrics timing": lambda inner: spied(MeteredStorage)(inner, Metrics()),
    "fault injection": lambda inner: spied(FaultyStorage)(inner, bulk=True),
}


def test_the_base_forwards_every_protocol_of_the_contract() -> None:
    # A protocol added to `batchsvc.storage` is forwarded, or this fails: every one is the
    # operations, the backend, or an optional one that proxies offer where the backend has it.
    protocols = {
        value
        for value in vars(storage).values()
        if inspect.isclass(value) and getattr(value, "_is_runtime_protocol", False)
    }
    protocols |= {MemoryOps}
    assert protocols == {MemoryOps, *ALL_PROTOCOLS}
    assert set(OpsProxy.OPTIONAL) == {CreatesMany, ChangesMany}
    for protocol, names in forwarded_methods(StorageProxy).items():
        assert set(names) == set(contract_methods(protocol)) - NOT_FORWARDED


@pytest.mark.parametrize("kind", [MeteredStorage, FaultyStorage, _TenantLocked, MemoryStore])
def test_each_wrapper_overrides_the_hook_and_no_forwarding_method(kind: type) -> None:
    """So that whatever the base forwards, now or later, reaches the wrapper's hook."""
    base = StorageProxy if issubclass(kind, StorageProxy) else OpsProxy
    assert issubclass(kind, base)
    forwarded = {name for names in forwarded_methods(base).values() for name in names}
    for klass in kind.__mro__[: kind.__mro__.index(base)]:
        assert not forwarded & set(vars(klass)), klass
    assert kind._forward is not base._forward


@pytest.mark.parametrize("wrap", WRAPPERS.values(), ids=list(WRAPPERS))
async def test_every_method_goes_through_the_hook(wrap: Callable[[Recorder], Any]) -> None:
    inner = Recorder(ALL_PROTOCOLS)
    proxy = wrap(inner)
    for protocol in ALL_PROTOCOLS:
        assert isinstance(proxy, protocol), protocol
    async with proxy as entered:
        assert entered is proxy and inner.entered == 1
        await assert_forwards(proxy, inner, forwarded_methods(StorageProxy))
        async with proxy.transaction(TENANT) as tx:
            assert proxy.hooked[-1] == ("transaction", TENANT)
            assert isinstance(tx, CreatesMany) and isinstance(tx, ChangesMany)
            # Its calls go through the hook of the proxy that opened it.
            await assert_forwards(tx, inner.transactions[-1], OPS_ONLY, spy=proxy)
    assert inner.entered == 0


@pytest.mark.parametrize("wrap", WRAPPERS.values(), ids=list(WRAPPERS))
async def test_an_optional_protocol_only_where_the_backend_has_it(
    wrap: Callable[[Recorder], Any],
) -> None:
    proxy = wrap(Recorder((Storage,)))
    for protocol in ALL_PROTOCOLS[1:]:
        assert not isinstance(proxy, protocol), protocol
    async with proxy, proxy.transaction(TENANT) as tx:
        assert not isinstance(tx, CreatesMany) and not isinstance(tx, ChangesMany)


async def test_the_wrappers_do_their_own_work_in_the_hook() -> None:
    inner: Any = Recorder(ALL_PROTOCOLS)
    metrics = Metrics()
    async with MeteredStorage(inner, metrics) as metered:
        assert isinstance(metered, DurableVectors)
        await metered.vector_sizes()
        async with metered.transaction(TENANT) as tx:
            assert isinstance(tx, ChangesMany)
            await tx.get_many(TENANT, ["x"])
    exposition = metrics.exposition().decode()
    for method in ("vector_sizes", "get_many"):
        assert f'method="{method}",outcome="ok"' in exposition
    assert 'method="transaction"' not in exposition  # a wait for a lock, not timed

    recorder: Any = Recorder(ALL_PROTOCOLS)
    faulty = FaultyStorage(recorder, bulk=True)
    async with faulty:
        assert isinstance(faulty, DurableVectors)
        await faulty.vector_sizes()
        async with faulty.transaction(TENANT) as tx:
            assert isinstance(tx, CreatesMany)
            await tx.create_many(TENANT, [])
    assert (faulty.calls["vector_sizes"], faulty.calls["create_many"]) == (1, 1)
    assert faulty.calls["transaction"] == 1


async def test_the_memory_backend_holds_the_tenants_lock_in_every_operation() -> None:
    lock = asyncio.Lock()
    inner: Any = Recorder(OPS_PROTOCOLS, probe=lock.locked)
    locked = spied(_TenantLocked)(inner, lambda tenant: lock)
    await assert_forwards(locked, inner, OPS_ONLY)
    assert [held for _, _, held in inner.calls] == [True] * len(inner.calls)
    assert not lock.locked()
