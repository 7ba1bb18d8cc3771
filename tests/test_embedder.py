"""The embedder plugin: the wordllama default works offline, and config picks embedders by name."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from batchsvc_backends.wordllama_embedder import WordLlamaEmbedder
from support import make_config

from batchsvc.config import ConfigError, load_config
from batchsvc.embedding import Embedder
from batchsvc.http.app import create_app
from batchsvc.plugins import installed_embedders, load_embedder

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def wordllama() -> AsyncIterator[WordLlamaEmbedder]:
    # Function-scoped yet cheap: the model itself is loaded once per process (functools.cache).
    async with WordLlamaEmbedder.from_options({}) as embedder:
        yield embedder


class TestWordLlama:
    """The default embedder: offline, unit vectors of its dimension, one call for many texts."""

    def test_loads_and_embeds_with_the_network_cut_off(self) -> None:
        # A fresh interpreter whose sockets cannot connect: any download attempt would fail.
        script = textwrap.dedent(
            """
            import asyncio, socket
            def refuse(*args, **kwargs):
                raise OSError("network disabled by the test")
            socket.socket.connect = refuse
            socket.create_connection = refuse
            from batchsvc.plugins import load_embedder
            async def main():
                async with load_embedder("wordllama", {}) as embedder:
                    [vector] = await embedder.embed(["offline works"])
                    print(len(vector))
            asyncio.run(main())
            """
        )
        env = {"HF_HUB_OFFLINE": "0", "PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "256"

    async def test_vectors_are_unit_length_of_its_dimension(
        self, wordllama: WordLlamaEmbedder
    ) -> None:
        texts = ["a cat on a mat", "Quarterly revenue grew", "ünïcode ✓ 世界", "x" * 5000]
        vectors = await wordllama.embed(texts)
        assert isinstance(wordllama, Embedder)
        assert len(vectors) == len(texts)
        for vector in vectors:
            assert len(vector) == wordllama.dimensions == 256
            assert math.sqrt(sum(c * c for c in vector)) == pytest.approx(1.0, abs=1e-6)

    async def test_one_call_equals_many(self, wordllama: WordLlamaEmbedder) -> None:
        texts = ["first text", "second, longer text about something else"]
        together = await wordllama.embed(texts)
        alone = [(await wordllama.embed([text]))[0] for text in texts]
        for a, b in zip(together, alone, strict=True):
            assert a == pytest.approx(b, abs=1e-5)

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

    async def test_embedding_an_empty_list_is_free(self, wordllama: WordLlamaEmbedder) -> None:
        assert await wordllama.embed([]) == []


class TestEmbedderConfig:
    """`[embedder] name` is an entry point of `batchsvc.embedders`, or `none`."""

    def test_the_default_is_wordllama(self, tmp_path: Path) -> None:
        assert load_config(env={}).embedder.name == "wordllama"
        default = load_config(ROOT / "config" / "default.toml", env={})
        assert (default.embedder.name, default.embedder.options) == ("wordllama", {})

    def test_none_means_no_embedder(self) -> None:
        assert load_embedder("none", {}) is None
        with pytest.raises(ConfigError, match="none"):
            load_embedder("none", {"dimensions": 64})

    def test_wordllama_is_installed(self) -> None:
        assert "wordllama" in installed_embedders()
        assert isinstance(load_embedder("wordllama", {}), WordLlamaEmbedder)

    def test_an_unknown_name_fails_at_start_listing_the_installed(self, tmp_path: Path) -> None:
        config = make_config(tmp_path / "keys.json", embedder={"name": "word2vec"})
        with pytest.raises(ConfigError) as error:
            create_app(config)
        assert str(error.value) == (
            "$.embedder.name: unknown embedder 'word2vec'; installed: wordllama, none"
        )

    def test_a_bad_option_fails_at_start_with_its_path(self, tmp_path: Path) -> None:
        config = make_config(
            tmp_path / "keys.json", embedder={"name": "wordllama", "options": {"dims": 3}}
        )
        with pytest.raises(ConfigError, match=r"\$\.embedder\.options: .*dims"):
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
        assert "unknown embedder 'word2vec'; installed: wordllama, none" in done.stderr
