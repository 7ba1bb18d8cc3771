"""Listing pages, as every backend gives them out: the cursor, and the cut of a page. Public:
a third-party backend cuts its pages with it.

`MemoryOps.list` is newest first, by id. A page's cursor is the id of the last memory it gave
out, and the next page holds the memories with smaller ids: ids sort by creation (see
`batchsvc.models.new_memory_id`), so paging survives creates, updates and deletes between
pages, and reads alike on every backend. A backend reads the cursor with `read_cursor`, finds
up to `limit + 1` memories after it, and cuts the page with `cut_page`: the one more than asked
tells whether another page exists.
"""

from __future__ import annotations

from collections.abc import Sequence

from batchsvc.models import MEMORY_ID, Memory
from batchsvc.storage import Page


def read_cursor(cursor: str | None) -> str | None:
    """The id a listing goes on below; None for the first page. A cursor this service never
    gave out raises ValueError, as `MemoryOps.list` does for a cursor it cannot read. (One
    given out to another tenant reads as any id: it pages this tenant's own memories.)"""
    if cursor is None:
        return None
    if not MEMORY_ID.fullmatch(cursor):
        raise ValueError("invalid cursor")
    return cursor


def cut_page(found: Sequence[Memory], limit: int) -> Page:
    """The page of a listing asked for `limit` memories, from those after its cursor, newest
    first (the first `limit + 1` are enough); its cursor is None on the last page."""
    items = list(found[:limit])
    return Page(items, items[-1].id if len(found) > limit else None)


__all__ = ["cut_page", "read_cursor"]
