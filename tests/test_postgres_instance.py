"""A Dagster instance on PostgreSQL (dagster-postgres, as the Helm values configure it), on a
throw-away local server: it stores a run, its events and its asset materializations."""

from __future__ import annotations

import dagster as dg
import pytest

pytest_plugins = ("tests.postgres",)  # the postgres_url fixture


@dg.asset
def numbers() -> list[int]:
    return [1, 2, 3]


@dg.asset
def total(numbers: list[int]) -> int:
    return sum(numbers)


def _postgres_db(url: str) -> dict:
    """The ``postgres_db`` block the Helm chart renders, for the server behind ``url``."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return {"username": parts.username, "password": "", "hostname": parts.hostname,
            "port": parts.port, "db_name": parts.path.lstrip("/"), "scheme": parts.scheme}


@pytest.mark.parametrize("form", ["postgres_db", "postgres_url"])
def test_a_postgres_backed_instance_stores_a_run(postgres_url, tmp_path, form):
    import psycopg2
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    config = ({"postgres_db": _postgres_db(postgres_url)} if form == "postgres_db"
              else {"postgres_url": postgres_url})
    overrides = {"storage": {"postgres": config}}
    with dg.instance_for_test(overrides=overrides, temp_dir=str(tmp_path)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        job = dg.define_asset_job("sum_job", [numbers, total])
        defs = dg.Definitions(assets=[numbers, total], jobs=[job])
        result = defs.resolve_job_def("sum_job").execute_in_process(instance=instance)
        assert result.success
        run_id = result.run_id
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
        latest = instance.get_latest_materialization_event(dg.AssetKey("total"))
        assert latest is not None and latest.run_id == run_id

    dsn = postgres_url.replace("+psycopg2", "")
    with psycopg2.connect(dsn) as con, con.cursor() as cur:  # it is in Postgres
        cur.execute("select status from runs where run_id = %s", (run_id,))
        assert cur.fetchone() == ("SUCCESS",)
        cur.execute("select count(*) from event_logs where run_id = %s", (run_id,))
        assert cur.fetchone()[0] > 5
