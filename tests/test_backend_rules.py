"""Rules every backend obeys, written once in the core: the refusal of a vector made for a
text the memory no longer has, and the cursor and cut of a listing's pages."""

from __future__ import annotations

import pytest

from batchsvc.errors import TextChanged
from batchsvc.models import new_memory_id
from batchsvc.paging import cut_page, read_cursor
from batchsvc.storage import refuse_changed_text
from batchsvc.testing import make_memory


class TestRefuseChangedText:
    def test_the_text_the_vector_was_made_from_passes(self) -> None:
        memory = make_memory("body", title="Title")
        refuse_changed_text(memory, (1.0,), "Title\nbody")
        refuse_changed_text(make_memory("body"), b"\x00\x00\x80?", "body")  # any form

    def test_another_text_is_refused_naming_the_memory(self) -> None:
        memory = make_memory("body now", title="Title")
        with pytest.raises(TextChanged, match=memory.id):
            refuse_changed_text(memory, (1.0,), "Title\nbody then")

    def test_nothing_to_check_without_a_vector_or_its_text(self) -> None:
        memory = make_memory("body")
        refuse_changed_text(memory, None, "another text")
        refuse_changed_text(memory, (1.0,), None)


class TestPaging:
    def test_a_cursor_is_an_id_or_nothing(self) -> None:
        memory_id = new_memory_id()
        assert read_cursor(memory_id) == memory_id
        assert read_cursor(None) is None

    @pytest.mark.parametrize("cursor", ["", "not-a-cursor", "mem_0", "-1", "🙂"])
    def test_anything_else_is_a_value_error(self, cursor: str) -> None:
        with pytest.raises(ValueError, match="invalid cursor"):
            read_cursor(cursor)

    def test_one_more_than_asked_means_another_page(self) -> None:
        memories = [make_memory(str(n)) for n in range(4)]
        page = cut_page(memories, 3)
        assert (page.items, page.next_cursor) == (memories[:3], memories[2].id)
        assert cut_page(memories[:3], 3).next_cursor is None
        assert cut_page([], 3).items == []
