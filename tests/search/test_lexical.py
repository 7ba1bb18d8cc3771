"""The BM25 index: bounded scores, sensible ranking, and postings kept consistent by writes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from batchsvc.search.lexical import LexicalIndex, tokenize

DOCS = {
    "mat": "the cat sat on the mat",
    "dog": "the dog chased the cat",
    "quokka": "the quokka smiled",
    "sofa": "a cat and a dog share the sofa, the end",
}


def index_of(docs: dict[str, str]) -> LexicalIndex:
    index = LexicalIndex()
    for doc_id, text in docs.items():
        index.add(doc_id, text)
    return index


class TestTokenize:
    def test_lowercases_and_splits_on_non_words(self) -> None:
        assert tokenize("Hello, WORLD! café_au-lait 42") == [
            "hello",
            "world",
            "café_au",
            "lait",
            "42",
        ]


class TestScores:
    """Scores are normalised BM25: in [0, 1], higher for rarer and more frequent terms."""

    def test_scores_are_in_the_unit_range(self) -> None:
        index = index_of(DOCS)
        for query in ("the", "cat dog", "quokka the cat sofa end", "the the the"):
            assert all(0.0 <= score <= 1.0 for score in index.scores(query).values())

    def test_only_documents_sharing_a_term_score(self) -> None:
        assert set(index_of(DOCS).scores("quokka")) == {"quokka"}
        assert set(index_of(DOCS).scores("cat")) == {"mat", "dog", "sofa"}

    def test_a_rare_term_outranks_a_common_one(self) -> None:
        scores = index_of(DOCS).scores("quokka the")
        assert max(scores, key=scores.__getitem__) == "quokka"

    def test_more_occurrences_score_higher(self) -> None:
        scores = index_of({"once": "owl tree rock", "twice": "owl owl rock", "x": "rock"}).scores(
            "owl"
        )
        assert scores["twice"] > scores["once"]

    def test_case_is_ignored(self) -> None:
        assert index_of(DOCS).scores("QUOKKA") == index_of(DOCS).scores("quokka")

    def test_an_empty_query_scores_nothing(self) -> None:
        assert index_of(DOCS).scores("") == {}
        assert index_of(DOCS).scores("  ,.!? ") == {}

    def test_no_matching_term_scores_nothing(self) -> None:
        assert index_of(DOCS).scores("xylophone") == {}

    def test_an_empty_index_scores_nothing(self) -> None:
        assert LexicalIndex().scores("cat") == {}


class TestWrites:
    """add, remove and re-add leave the index as if built from the final documents."""

    def test_remove_forgets_a_document(self) -> None:
        index = index_of(DOCS)
        index.remove("quokka")
        assert len(index) == 3
        assert index.scores("quokka") == {}
        assert index.scores("cat the") == index_of(
            {k: v for k, v in DOCS.items() if k != "quokka"}
        ).scores("cat the")

    def test_re_adding_replaces_the_text(self) -> None:
        index = index_of(DOCS)
        index.add("quokka", "the wombat dozed")
        assert len(index) == 4
        assert index.scores("quokka") == {}
        assert index.scores("wombat the") == index_of(
            {**DOCS, "quokka": "the wombat dozed"}
        ).scores("wombat the")

    def test_remove_then_add_again(self) -> None:
        index = index_of(DOCS)
        index.remove("mat")
        index.add("mat", DOCS["mat"])
        assert index.scores("cat mat the") == index_of(DOCS).scores("cat mat the")

    def test_removing_an_unknown_document_is_a_no_op(self) -> None:
        index = index_of(DOCS)
        index.remove("nope")
        index.remove("mat")
        index.remove("mat")
        assert len(index) == 3
        assert index.scores("cat") == index_of(
            {k: v for k, v in DOCS.items() if k != "mat"}
        ).scores("cat")

    def test_an_empty_document_is_counted_but_never_found(self) -> None:
        index = index_of({"empty": "", "full": "owl"})
        assert len(index) == 2
        assert set(index.scores("owl")) == {"full"}


words = st.sampled_from(["owl", "cat", "the", "rock", "Émile", "x1"])
texts = st.lists(words, max_size=6).map(" ".join)
steps = st.lists(st.tuples(st.sampled_from("abcd"), st.none() | texts), max_size=20)


@given(steps, st.lists(words, min_size=1, max_size=3).map(" ".join))
def test_any_write_sequence_matches_a_fresh_build(
    writes: list[tuple[str, str | None]], query: str
) -> None:
    """After any adds and removes, scores equal those of an index built from the survivors."""
    index = LexicalIndex()
    final: dict[str, str] = {}
    for doc_id, text in writes:
        if text is None:
            index.remove(doc_id)
            final.pop(doc_id, None)
        else:
            index.add(doc_id, text)
            final[doc_id] = text
    assert len(index) == len(final)
    expected = index_of(final).scores(query)
    got = index.scores(query)
    assert got.keys() == expected.keys()
    assert all(abs(got[k] - expected[k]) < 1e-9 for k in got)
    assert all(0.0 <= score <= 1.0 for score in got.values())
