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


# -- the demo's screen: one line per run, the full log in a file ----------------------------

def test_the_progress_line():
    from orchestration.progress import progress_line

    line = progress_line("verify_roots", "planted/shard-00000", "ok", 72.4,
                         {"candidates": 45, "rows verified": (8, 52), "tok/s": 1234.6},
                         9, 14, 151, 72)
    assert line == ("[ 9/14 2m31s ~1m12s left] verify_roots planted/shard-00000 ok 1m12s: "
                    "45 candidates, 8/52 rows verified, 1,235 tok/s")
    last = progress_line("pack", None, "ok", 3, {"sequences": 12, "fill": 0.934}, 14, 14,
                         3725, 0)
    assert last == "[14/14 1h02m done] pack ok 3s: 12 sequences, 0.93 fill"
    assert "~? left" in progress_line("ingest_shard", "a/b", "ok", 1, {}, 1, 3, 2, None)
    assert "[1/3 2s stopped] ingest_shard a/b FAILED 1s" == progress_line(
        "ingest_shard", "a/b", "FAILED", 1, {}, 1, 3, 2, 50)
    long = progress_line("ingest_shard", "x" * 200, "ok", 1, {"docs": 10 ** 8}, 1, 2, 1, 1)
    assert len(long) == 119 and long.endswith("…")


def test_the_time_left_estimate():
    from orchestration.progress import estimate_left

    # nothing known yet: no estimate, unless the instance remembers an earlier demo
    assert estimate_left(["ingest_shard", "pack"], {}) is None
    assert estimate_left(["ingest_shard", "pack"], {}, {"ingest_shard": 4, "pack": 6}) == 10
    # a job's own runs so far beat history; a job never seen takes the mean of all runs
    done = {"ingest_shard": [2.0, 4.0], "score_roots": [9.0]}
    assert estimate_left(["ingest_shard", "score_roots", "verify_roots"], done,
                         {"ingest_shard": 100.0}) == 3 + 9 + 5
    assert estimate_left(["verify_roots"], done, {"verify_roots": 70.0}) == 70
    assert estimate_left([], done) == 0


def _tiny_defs():
    import logging
    import os
    import sys
    import warnings

    import dagster as dg

    parts = dg.StaticPartitionsDefinition(["mine/shard-0"])

    @dg.asset(partitions_def=parts)
    def tokenized_docs(context):
        context.log.info("tokenized three docs")
        context.log.debug("a debug line")
        warnings.warn("a library warning", stacklevel=1)
        logging.getLogger("lancedb").warning("a lancedb warning")
        print("written to sys.stderr", file=sys.stderr)
        os.write(2, b"written to file descriptor 2\n")
        return dg.MaterializeResult(metadata={"docs": 3, "tokens": 1234})

    @dg.asset(partitions_def=parts, deps=[tokenized_docs])
    def verified_dependencies():
        return dg.MaterializeResult(metadata={"rows": 10, "verified": 2,
                                              "forward_tokens": 5000})

    @dg.asset
    def broken():
        raise ValueError("the shard is corrupt")

    return dg.Definitions(assets=[tokenized_docs, verified_dependencies, broken], jobs=[
        dg.define_asset_job("tiny", selection=["tokenized_docs", "verified_dependencies"]),
        dg.define_asset_job("tiny_broken", selection=["broken"])])


def test_the_log_goes_to_the_file_and_nothing_to_the_screen(tmp_path, capfd):
    import dagster as dg

    from orchestration.progress import log_to_file, run_all

    log = tmp_path / "logs" / "demo.log"
    lines: list[str] = []
    with dg.instance_for_test() as instance, log_to_file(log) as handler:
        outcomes = run_all(_tiny_defs(), instance, [("tiny", "mine/shard-0")], handler,
                           out=lines.append)
    assert capfd.readouterr() == ("", "")
    assert [o.success for o in outcomes] == [True]
    assert outcomes[0].counts["tokens"] == 1234
    assert outcomes[0].counts["rows verified"] == (2, 10)
    assert len(lines) == 1 and lines[0].startswith("[1/1 ")
    assert " done] tiny mine/shard-0 ok" in lines[0]
    assert "1,234 tokens, 2/10 rows verified, " in lines[0] and "tok/s" in lines[0]
    text = log.read_text()
    for expected in ("RUN_START", "STEP_SUCCESS", "ASSET_MATERIALIZATION", "RUN_SUCCESS",
                     "tokenized three docs", "DEBUG - tiny - ", "a debug line",
                     "UserWarning: a library warning", "lancedb - WARNING - a lancedb warning",
                     "written to sys.stderr", "written to file descriptor 2"):
        assert expected in text, expected
    import sys

    print("after", file=sys.stderr)  # the screen is back
    assert capfd.readouterr().err == "after\n"


def test_a_failed_run_stops_with_its_error(tmp_path, capfd):
    import dagster as dg

    from orchestration.progress import log_to_file, run_all

    log = tmp_path / "demo.log"
    lines: list[str] = []
    with dg.instance_for_test() as instance, log_to_file(log) as handler:
        outcomes = run_all(_tiny_defs(), instance,
                           [("tiny_broken", None), ("tiny", "mine/shard-0")], handler,
                           out=lines.append)
    assert capfd.readouterr() == ("", "")
    assert len(outcomes) == 1 and not outcomes[0].success
    assert " tiny_broken FAILED " in lines[0] and " stopped] " in lines[0]
    assert outcomes[0].errors[0] == "step broken: ValueError: the shard is corrupt"
    assert "STEP_FAILURE" in log.read_text()


def test_the_demo_reports_a_failed_run(tmp_path, capsys, monkeypatch):
    """`elong demo` end to end up to its first run, which fails (the lake is empty: no
    unit counts to count): the run's line, its error and the log path, exit code 1."""
    import orchestration.cli as cli

    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "a.jsonl").write_text('{"id": "1", "text": "hello"}\n')
    cfg = _config(tmp_path, str(tmp_path / "lake"), str(tmp_path / "shards"))
    with open(cfg, "a") as f:
        f.write("    format: jsonl\n")
    monkeypatch.setattr(cli, "DATA_STAGES", ("count_recurring", "pack"))
    assert main(["--config", cfg, "demo"]) == 1
    out, err = capsys.readouterr()
    first = out.splitlines()[0]
    assert first.startswith("elong demo: the full Dagster log") and "home/logs/demo-" in first
    assert "2 Dagster runs: count_recurring, pack" in out
    assert "[1/2 " in out and "count_recurring FAILED" in out and "pack" not in out.split(
        "count_recurring FAILED")[1]
    assert "dagster" not in out.lower().replace("dagster log", "").replace("dagster runs", "")
    assert err.startswith("elong demo: count_recurring failed (run ")
    assert "step recurring_text: " in err and "the full log: home/logs/demo-" in err
    logs = list((home / "logs").glob("demo-*.log"))
    assert len(logs) == 1 and "STEP_FAILURE" in logs[0].read_text()
