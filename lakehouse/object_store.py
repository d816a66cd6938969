"""What the lake's other readers need to reach an object store the way fsspec does.

The lake's files go through fsspec (lakehouse.storage), configured the usual ways: the AWS
variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_REGION``), fsspec's own configuration (``FSSPEC_S3_ENDPOINT_URL``, ...) or a credentials
chain (instance roles, web identity). LanceDB has its own object-store client and DuckDB
would need its httpfs extension (which cannot be installed everywhere); these functions hand
them the same endpoint and credentials, so one configuration serves all three.
"""

from __future__ import annotations

import os

from lakehouse.storage import filesystem, is_url


def _env(*names: str) -> str | None:
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return None


def lance_storage_options(location: str) -> dict[str, str]:
    """LanceDB ``storage_options`` for a table at ``location`` ({} for a local path).

    For s3:// the endpoint, region and keys come from the lake's s3fs filesystem (its
    fsspec configuration) or else the AWS variables; ``allow_http`` is set for an http://
    endpoint (a local or in-cluster S3 such as MinIO). Keys are passed only when configured
    explicitly, so an instance role or web identity token is left to Lance's own chain.
    """
    if not is_url(location) or not location.startswith(("s3://", "s3a://")):
        return {}
    fs, _ = filesystem(location)
    client_kwargs = getattr(fs, "client_kwargs", None) or {}
    endpoint = (getattr(fs, "endpoint_url", None) or client_kwargs.get("endpoint_url")
                or _env("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"))
    region = client_kwargs.get("region_name") or _env("AWS_REGION", "AWS_DEFAULT_REGION")
    key = getattr(fs, "key", None) or _env("AWS_ACCESS_KEY_ID")
    secret = getattr(fs, "secret", None) or _env("AWS_SECRET_ACCESS_KEY")
    token = getattr(fs, "token", None) or _env("AWS_SESSION_TOKEN")
    options: dict[str, str] = {}
    if endpoint:
        options["aws_endpoint"] = endpoint
        if endpoint.startswith("http://"):
            options["allow_http"] = "true"
    if region:
        options["aws_region"] = region
    if key and secret:
        options["aws_access_key_id"] = key
        options["aws_secret_access_key"] = secret
        if token:
            options["aws_session_token"] = token
    return options


def register_duckdb_filesystem(con, location: str) -> bool:
    """Let ``con`` read ``location``'s files (``read_parquet('s3://...')``) through the
    lake's fsspec filesystem instead of httpfs. Returns whether anything was registered
    (nothing for a local path, or when that filesystem is registered already)."""
    if not is_url(location):
        return False
    fs, _ = filesystem(location)
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    if set(protocols) & set(con.list_filesystems()):
        return False
    con.register_filesystem(fs)
    return True
