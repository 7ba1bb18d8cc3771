"""The storage contract: what a backend must do, and nothing about how.

Public: what `__all__` names is the stable surface for third-party backends, and a change to it
is recorded in CHANGELOG.md ("Contract changes"). A third party writes a backend from this
module alone (it re-exports every type its signatures name: `Memory`, `MemoryPatch`,
`SearchQuery`, `SearchHit`, the filter nodes and `matches`, the errors; and `MEMORY_ID`, to
read a cursor), then proves it with `batchsvc.testing.StorageConformance`;
docs/writing-a-backend.md walks through it. Rules that hold for every method:

- Tenants are walls. Every call names its tenant; a memory is visible only to its own tenant,
  and to any other it does not exist.
- Absent is `None` (or `False`), never an exception.
- The core builds every `Memory` (id, timestamps, version): a backend stores what it is given.
  Metadata holds JSON values only (finite numbers; no NaN or infinities), as parsed requests do.
- A fault that is not the caller's raises `BackendError`; one that may pass if the call is
  repeated (busy, briefly unreachable) raises `TransientBackendError`. The executor retries only
  the latter, so never raise it once a change has taken effect. Stored data found damaged
  raises `CorruptBackendError`: no retry can succeed, so clients get `INTERNAL_ERROR`, not the
  `BACKEND_UNAVAILABLE` of the other faults (which an operator can clear: disk full, say).
- Cancellation is truthful: a cancelled call either raises `CancelledError` having changed
  nothing, or finishes its change and returns normally. The executor reports what it sees.
- A write that returns has taken effect, and on a durable backend is durable.
- Lifecycle is `async with backend:`; `ping()` answers whether the backend answers. Entering
  raises `BackendError` with a message an operator can act on (what is wrong, what to do)
  when the store cannot open, and then leaves nothing running (no thread, no connection):
  the service prints the message and exits.

`Storage` is required. The other protocols are optional, found by `isinstance` at run time:
`CreatesMany` (all-or-none bulk creates, which the executor then uses for runs of creates),
`ChangesMany` (the same for updates and deletes), `DurableVectors` (for vectors that outlive
the process: which model made them, and `reembed`) and `ChecksReadiness` (`/readyz` asks it
whether writes can be served; without it, `ping()` answers). The conformance suite tests each
where the backend has it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from attrs import frozen

from batchsvc.errors import (
    BackendError,
    CorruptBackendError,
    FieldError,
    TextChanged,
    TransientBackendError,
)
from batchsvc.filters import And, Compare, Filter, Member, Or, Scalar, matches
from batchsvc.limits import Limits
from batchsvc.models import MEMORY_ID, Memory, MemoryPatch, SearchHit, SearchMode, SearchQuery

Vector = tuple[float, ...]


@frozen
class Page:
    """One page of a listing. `next_cursor` is opaque to clients; None on the last page."""

    items: list[Memory]
    next_cursor: str | None


class MemoryOps(Protocol):
    """The operations, offered by a backend and by each of its transactions."""

    async def create(self, tenant: str, memory: Memory, vector: Vector | None = None) -> None:
        """Store a new memory. `vector` is the unit-length embedding of its text
        (`batchsvc.embedding.embedding_text`), when an embedder runs; a memory stored without
        one is found by lexical search only (and by hybrid search through its words)."""

    async def get(self, tenant: str, memory_id: str) -> Memory | None:
        """The memory, or None if this tenant has no memory with that id."""

    async def update(
        self,
        tenant: str,
        memory_id: str,
        patch: MemoryPatch,
        now: str,
        vector: Vector | None = None,
        vector_text: str | None = None,
    ) -> Memory | None:
        """Apply `patch.apply(current, now)` atomically and return the new memory, or None.

        Read, patch and write happen under the backend's own write lock or transaction, so two
        concurrent updates of one memory never lose each other's change. A FieldError from
        `apply` (merged metadata too large) propagates and nothing changes. Content or title
        changes re-index the memory for search; `vector`, when given, replaces its embedding.
        A content or title change without a `vector` drops the old embedding (it describes
        text the memory no longer has); other changes keep it.

        `vector_text`, given with `vector`, is the text the vector was made from. If the
        patched memory's text (`batchsvc.embedding.embedding_text` of its title and content)
        is another, raise `TextChanged` and change nothing: the caller embeds the memory's
        text as it now is and tries again, so no memory keeps a vector of a text it never had.
        `refuse_changed_text` is that check, for a backend to call before it writes.
        """

    async def delete(self, tenant: str, memory_id: str) -> bool:
        """Remove the memory; False if there was none."""

    async def search(self, tenant: str, query: SearchQuery) -> list[SearchHit]:
        """Ranked hits, best first, at most `query.limit`.

        A hit must pass `query.filter` (semantics in `batchsvc.filters`), carry every tag of
        `query.tags`, match `query.memory_type` when set, and score at least `query.threshold`.
        Scores are in [0, 1], higher is better; equal scores rank by id, descending (newest
        first). `query.mode` says how to rank: `lexical` on the text (title and content),
        normalised BM25 as `batchsvc.search.lexical` defines it; `semantic` by `query.vector`, the
        score max(0, cosine), over every memory with a vector (the nearest, whatever their
        score: `threshold` drops the far ones); `hybrid` over both sets,
        `batchsvc.search.vectors.fuse` of the two scores. The core sets `query.vector` for the
        semantic and hybrid modes.
        """

    async def list(
        self,
        tenant: str,
        *,
        tags: tuple[str, ...] = (),
        memory_type: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Memories newest first, filtered like search, `limit` at a time.

        Newest first means by id, descending: the core's ids increase with creation (see
        `batchsvc.models.new_memory_id`), so one order holds on every backend.

        A cursor this backend cannot read raises ValueError; a cursor given out to another
        tenant must reveal nothing of that tenant (raising ValueError, or paging this tenant's
        own memories, are both fine).
        """


#: A new memory and its vector, as `MemoryOps.create` takes them.
ToCreate = tuple[Memory, Vector | None]


@runtime_checkable
class CreatesMany(Protocol):
    """Optional, for a backend (or a transaction's ops) that stores many new memories in one
    call more cheaply than one by one. The executor gives it each run of consecutive creates
    of a batch; without it, or when it raises, the creates are made one at a time."""

    async def create_many(self, tenant: str, items: Sequence[ToCreate]) -> None:
        """Store every item as `create` would, all or none: when it raises (any exception,
        or CancelledError) nothing of it was stored; when it returns, all of it was (and on a
        durable backend, durably). Other callers see none of the items before all of them."""


@frozen
class PlannedUpdate:
    """`MemoryOps.update`'s arguments, for `ChangesMany`."""

    memory_id: str
    patch: MemoryPatch
    now: str
    vector: Vector | None = None
    vector_text: str | None = None


@frozen
class PlannedDelete:
    """`MemoryOps.delete`'s argument, for `ChangesMany`."""

    memory_id: str


PlannedChange = PlannedUpdate | PlannedDelete
#: What a change's own method would give: `update`'s memory or None, `delete`'s bool, or the
#: exception it would raise (FieldError, TextChanged, ValueError: the change's own faults).
Outcome = Memory | bool | None | Exception


@runtime_checkable
class ChangesMany(Protocol):
    """Optional, like `CreatesMany`, for updates and deletes: the executor gives it each run
    of consecutive updates and deletes of a batch."""

    async def change_many(
        self, tenant: str, changes: Sequence[PlannedChange], *, stop_at_miss: bool
    ) -> list[Outcome]:
        """Apply the changes in order, each exactly as its own method would, and return their
        outcomes: applied ones commit together, after the last, and are durable when this
        returns. A change whose method would raise its own fault (FieldError, TextChanged,
        ValueError) changes nothing, and the list ends with that exception: the changes after
        it were not applied. With `stop_at_miss` the list also ends at the first that found no
        memory (None or False). If the call itself raises (a BackendError, say) or is
        cancelled before its end, none of the changes was applied."""

    async def get_many(self, tenant: str, memory_ids: Sequence[str]) -> dict[str, Memory]:
        """The tenant's memories with these ids, by id (those it has not are left out), as
        `get` would give each. The executor reads a run's memories with it, to embed the
        texts the run's updates will leave."""


@frozen
class Readiness:
    """What `ChecksReadiness.readiness` found. `reason` is a stable snake_case word when not
    ready (`read_only`, `disk_full`, `corrupt`, `io_error`, `busy`, ...), for `/readyz`'s
    `details.reason`; `message` says it for a person, naming the store, never its content."""

    ready: bool
    reason: str | None = None
    message: str = ""


@runtime_checkable
class ChecksReadiness(Protocol):
    """Optional: readiness that means "can serve writes now", which `ping()` cannot tell (a
    read-only or full disk answers every read). `/readyz` calls it on every request, so it
    must be cheap: a real write at most every second or so, its answer reused meanwhile."""

    async def readiness(self) -> Readiness:
        """Whether a write would succeed now, and why not. Never raises for the backend's own
        faults: they are its answer."""


#: Embeds texts for `DurableVectors.reembed`: one unit vector per text, in order.
EmbedTexts = Callable[[list[str]], Awaitable[list[Vector]]]


@runtime_checkable
class DurableVectors(Protocol):
    """Optional, for a backend whose vectors outlive the process. Vectors of two models do not
    compare, so such a backend remembers which model made them (a stamp the service sets), and
    the service refuses to start with another embedder until `reembed` has run."""

    async def vectors_stamp(self) -> str | None:
        """The stamp last set; None if none ever was (a new store, or one from before stamps)."""

    async def set_vectors_stamp(self, stamp: str) -> None:
        """Remember `stamp` as the maker of the vectors stored (and to be stored)."""

    async def vector_sizes(self) -> set[int]:
        """The distinct lengths of the vectors stored, over every tenant; empty if none."""

    async def reembed(self, embed: EmbedTexts, stamp: str) -> int:
        """Give every memory of every tenant the vector `embed` makes of its text
        (`batchsvc.embedding.embedding_text`), set `stamp`, and return how many memories it
        embedded. Run while the service is stopped. From its first change to its end the
        stamp is `unfinished_reembed(stamp)`, which no embedder matches: stopped part way, it
        leaves vectors of two models, and running it again finishes the work. What `embed`
        raises (`EmbeddingFailed`) goes out as it is, once the chunk it stopped is undone."""


def unfinished_reembed(stamp: str) -> str:
    """The stamp of a store whose re-embedding to `stamp` has begun and not finished."""
    return f"{UNFINISHED_REEMBED}{stamp}"


UNFINISHED_REEMBED = "unfinished reembed to: "


@runtime_checkable
class Storage(MemoryOps, Protocol):
    """A backend: the operations, a lifecycle, and transactions where it can."""

    #: Whether `transaction()` works. The service rejects `atomic` batches when it does not.
    supports_transactions: bool
    #: Whether search can rank by vectors (semantic and hybrid modes).
    supports_vectors: bool

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        """Build the backend from its config table; raise ValueError naming a bad option
        (`batchsvc.plugins.options.read_options` checks a table, in the service's words)."""

    async def __aenter__(self) -> Self:
        """Open connections, create or migrate the schema."""

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close everything; after this no call is made."""

    async def ping(self) -> None:
        """Return if the backend answers; raise BackendError if not."""

    def transaction(self, tenant: str) -> AbstractAsyncContextManager[MemoryOps]:
        """All or nothing: changes made through the yielded ops commit when the block exits
        cleanly and are rolled back when it raises. Other callers never see them before the
        commit. Raises NotImplementedError where `supports_transactions` is False. The yielded
        ops serve only `tenant` (`refuse_other_tenant`)."""


#: A change's own faults: an `Outcome`, not a failure of `change_many` as a whole.
OWN_FAULTS: tuple[type[Exception], ...] = (FieldError, TextChanged, ValueError)


def refuse_changed_text(updated: Memory, vector: object, vector_text: str | None) -> None:
    """The check of `MemoryOps.update` given `vector_text`: raise `TextChanged` if `updated`
    (the memory once patched) has another text than the one its new `vector` was made from.
    Call it before writing anything. It passes when either is None; `vector` may be in the
    backend's own form (bytes for a column, say): only whether there is one counts."""
    # Imported here: `batchsvc.embedding` imports this module.
    from batchsvc.embedding import embedding_text

    if vector is None or vector_text is None:
        return
    if embedding_text(updated.title, updated.content) != vector_text:
        raise TextChanged(updated.id)


def refuse_other_tenant(opened: str, tenant: str) -> None:
    """The check of every operation of a transaction's ops: a transaction opened for `opened`
    serves no other tenant (ValueError, a fault of the caller: nothing is written)."""
    if tenant != opened:
        raise ValueError("a transaction serves only the tenant it was opened for")


def missed(outcome: Outcome) -> bool:
    """Whether a change found no memory to update or delete."""
    return outcome is None or outcome is False


async def apply_in_order(
    changes: Sequence[PlannedChange],
    apply_one: Callable[[PlannedChange], Awaitable[Outcome]],
    *,
    stop_at_miss: bool,
) -> list[Outcome]:
    """The loop of `ChangesMany.change_many`, for a backend that applies each change with
    `apply_one` (which must leave nothing of a change that raises) inside one transaction."""
    outcomes: list[Outcome] = []
    for change in changes:
        try:
            outcome = await apply_one(change)
        except OWN_FAULTS as error:
            outcomes.append(error)
            break
        outcomes.append(outcome)
        if stop_at_miss and missed(outcome):
            break
    return outcomes


__all__ = [
    "MEMORY_ID",
    "OWN_FAULTS",
    "UNFINISHED_REEMBED",
    "And",
    "BackendError",
    "ChangesMany",
    "ChecksReadiness",
    "Compare",
    "CorruptBackendError",
    "CreatesMany",
    "DurableVectors",
    "EmbedTexts",
    "FieldError",
    "Filter",
    "Limits",
    "Member",
    "Memory",
    "MemoryOps",
    "MemoryPatch",
    "Or",
    "Outcome",
    "Page",
    "PlannedChange",
    "PlannedDelete",
    "PlannedUpdate",
    "Readiness",
    "Scalar",
    "SearchHit",
    "SearchMode",
    "SearchQuery",
    "Storage",
    "TextChanged",
    "ToCreate",
    "TransientBackendError",
    "Vector",
    "apply_in_order",
    "matches",
    "missed",
    "refuse_changed_text",
    "refuse_other_tenant",
    "unfinished_reembed",
]
