"""The front door's errors: one line naming what was tried and what to do, exit code 1, no
traceback (a wrong corpus uri, an unreachable object store, no DAGSTER_HOME, no catalog)."""

from __future__ import annotations

import socket

import pytest

from orchestration.cli import main


def _config(tmp_path, lake: str, uri: str) -> str:
    path = tmp_path / "pipeline.yaml"
    path.write_text(f"lake: {lake}\ncorpora:\n  - name: mine\n    uri: {uri}\n"
                    "    roles: [root, pool]\n")
    return str(path)


def _one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_a_corpus_uri_that_matches_nothing(tmp_path, capsys, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    cfg = _config(tmp_path, "lake", "no/such/folder")
    for command in ("partitions", "register"):
        err = _one_line_error(capsys, ["--config", cfg, command])
        assert err.startswith(f"elong {command}: no shard files found")
        assert "no/such/folder" in err and "uri" in err


def test_an_unreachable_object_store(tmp_path, capsys, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    cfg = _config(tmp_path, "s3://lake-bucket/lake", "s3://corpus-bucket/shards")
    err = _one_line_error(capsys, ["--config", cfg, "partitions"])
    assert "cannot reach the storage" in err and f"127.0.0.1:{port}" in err
    assert "AWS_ENDPOINT_URL" in err


@pytest.mark.parametrize("home", [None, "empty"])
def test_no_dagster_home(tmp_path, capsys, monkeypatch, home):
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "a.jsonl").write_text('{"id": "1", "text": "hello"}\n')
    cfg = _config(tmp_path, "lake", str(tmp_path / "shards"))
    if home is None:
        monkeypatch.delenv("DAGSTER_HOME", raising=False)
    else:
        (tmp_path / home).mkdir()
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / home))
    err = _one_line_error(capsys, ["--config", cfg, "register"])
    assert "DAGSTER_HOME" in err and "dagster.yaml" in err


def test_a_catalog_that_does_not_exist_yet(tmp_path, capsys):
    cfg = _config(tmp_path, str(tmp_path / "lake"), str(tmp_path))
    err = _one_line_error(capsys, ["--config", cfg, "queries"])
    assert "does not exist yet" in err and "stats_catalog" in err
