"""One module per stage; importing the package registers every lake asset."""

from assets import (  # noqa: F401
    catalog,
    chunks,
    distance_check,
    entropy,
    ingest,
    packing,
    recurring,
    retrieval,
    token_weights,
    tokenize,
    training,
    verification,
)
