"""KB articles' sentence vectors, remembered in Redis for every run worker: an article is encoded once.

The relevance judge (``relevance.py``) encodes the KB's ten answers for every ticket, and answers recur (a few
thousand articles, ten per ticket): on a warm run worker that encoding was most of a run's CPU (py-spy). Each
worker process keeps its own last vectors (``history.embeddings._VectorCache``); this shares them between
processes and machines, and across restarts. A vector is stored under the model's name and a digest of the text
encoded (so a changed article, or another model, is a miss), as base64 float32, for ``TTL_S``. Redis away: every
text is a miss and is encoded, as without this.
"""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING

from enhancement_pipeline.storage.cache import RedisCacheResource

if TYPE_CHECKING:
    import numpy as np

    from enhancement_pipeline.history.embeddings import Encoder

TTL_S = 30 * 86400
"""How long a vector is kept after it was last computed (a text's vector never changes: this bounds memory)."""


class SharedArticleVectors:
    """``__call__(texts) -> (len(texts), DIMENSIONS) float32``: each text's vector from Redis, the rest encoded
    by ``encoder`` (and stored). ``hits`` and ``misses`` count texts."""

    def __init__(self, encoder: Encoder, cache: RedisCacheResource):
        self.encoder, self.cache = encoder, cache
        self.hits = self.misses = 0

    def key(self, text: str) -> str:
        return f"kbvec:{self.encoder.model_name}:{hashlib.sha256(text.encode()).hexdigest()[:32]}"

    def __call__(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        from enhancement_pipeline.history.embeddings import DIMENSIONS

        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        keys = [self.key(t) for t in texts]
        stored = self.cache.get_many(keys)
        missing = []
        for i, value in enumerate(stored):
            vector = _decode(value)
            if vector is None:
                missing.append(i)
            else:
                out[i] = vector
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        if missing:
            encoded = self.encoder.encode([texts[i] for i in missing])
            out[missing] = encoded
            self.cache.set_many({keys[i]: base64.b64encode(encoded[row].tobytes()).decode()
                                 for row, i in enumerate(missing)}, TTL_S)
        return out


def _decode(value: str | None) -> np.ndarray | None:
    """A stored vector, or None for a miss or anything that is not one (a foreign or damaged value)."""
    import numpy as np

    from enhancement_pipeline.history.embeddings import DIMENSIONS

    if not value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        return None
    if len(raw) != DIMENSIONS * 4:
        return None
    return np.frombuffer(raw, dtype=np.float32)
