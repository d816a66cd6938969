"""Pytest fixtures for a real S3 endpoint: moto's standalone server on 127.0.0.1.

``s3_server`` (session) starts ``python -m moto.server`` on a free loopback port and stops
it at the end; ``s3_bucket`` creates a fresh bucket for one test and points the standard AWS
variables (``AWS_ENDPOINT_URL``, keys, region) at the server, so code that goes through
fsspec/s3fs, LanceDB or boto3 without any test-only settings reaches it. Import both into a
conftest (``from tests.object_store import s3_server, s3_bucket``) or a test module.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

KEY, SECRET, REGION = "testing-key", "testing-secret", "us-east-1"


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:<port>
    key: str
    secret: str
    region: str

    def env(self) -> dict[str, str]:
        """The environment a process needs to use this server as its S3."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.key,
                "AWS_SECRET_ACCESS_KEY": self.secret, "AWS_DEFAULT_REGION": self.region,
                "AWS_REGION": self.region, "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.key,
                            aws_secret_access_key=self.secret, region_name=self.region)


@dataclass(frozen=True)
class S3Bucket:
    name: str
    server: S3Server

    @property
    def url(self) -> str:
        return f"s3://{self.name}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(endpoint: str, process: subprocess.Popen, log: Path,
                   timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited ({process.returncode}): "
                               f"{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"moto server not up after {timeout:.0f} s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server on 127.0.0.1:<free port>, for the whole test session."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = S3Server(f"http://127.0.0.1:{port}", KEY, SECRET, REGION)
    try:
        _wait_until_up(server.endpoint, process, log)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def s3_bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Bucket]:
    """A new, empty bucket; the AWS variables of this process point at the server."""
    import s3fs

    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    bucket = S3Bucket(f"lake-{uuid.uuid4().hex[:12]}", s3_server)
    s3_server.client().create_bucket(Bucket=bucket.name)
    s3fs.S3FileSystem.clear_instance_cache()  # an instance made for another endpoint
    yield bucket
    s3fs.S3FileSystem.clear_instance_cache()
