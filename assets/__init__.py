"""One module per stage; importing the package registers every lake asset."""

from assets import (  # noqa: F401
    catalog,
    chunks,
    entropy,
    ingest,
    packing,
    retrieval,
    token_weights,
    tokenize,
    training,
    verification,
)
