"""Sentence embeddings for chunks and anchor queries (unit-norm float32)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def embed_texts(model, texts: Sequence[str], batch_size: int = 64,
                progress: bool = False) -> np.ndarray:
    """Embed ``texts`` with a SentenceTransformer; rows are L2-normalised, dtype float32."""
    if not texts:
        dim = model.get_embedding_dimension()
        return np.zeros((0, dim), dtype=np.float32)
    vecs = model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                        convert_to_numpy=True, show_progress_bar=progress)
    return np.ascontiguousarray(vecs, dtype=np.float32)
