"""What of the lake code runs without Postgres or S3: the transaction helper on an embedded DuckDB, the maintenance
job's registration and its no-op in the embedded mode, and an attach that fails without showing a credential."""

from __future__ import annotations

from datetime import datetime

import dagster as dg
import duckdb
import pytest

from pipelines.definitions import defs
from pipelines.maintenance import lake_maintenance_job, lake_maintenance_schedule
from resources import lake
from resources.state import State, postgres_params
from resources.transaction import transaction


def test_a_transaction_commits_its_block_once():
    con = duckdb.connect()
    con.execute("CREATE TABLE marks (n BIGINT)")
    runs = 0
    for attempt in transaction(con):
        with attempt:
            runs += 1
            con.execute("INSERT INTO marks VALUES (1)")
    assert runs == 1
    assert con.execute("SELECT n FROM marks").fetchall() == [(1,)]


def test_a_failing_block_is_rolled_back_and_not_run_again():
    con = duckdb.connect()
    con.execute("CREATE TABLE marks (n BIGINT)")
    runs = 0
    with pytest.raises(ValueError, match="boom"):
        for attempt in transaction(con):
            with attempt:
                runs += 1
                con.execute("INSERT INTO marks VALUES (1)")
                raise ValueError("boom")
    assert runs == 1
    assert con.execute("SELECT count(*) FROM marks").fetchall() == [(0,)]
    con.execute("INSERT INTO marks VALUES (2)")  # no transaction left open


def test_the_money_macros_are_temporary_and_work_read_only(tmp_path):
    from resources.warehouse import Warehouse

    warehouse = Warehouse(data_dir=str(tmp_path))
    with warehouse.connect("us") as con:
        con.execute("CREATE TABLE marks (n BIGINT)")
    with warehouse.connect("us", read_only=True) as con:
        assert con.execute("SELECT to_minor(12.345, 2), money_text(1999, 2)").fetchall() == [(1234, "19.99")]
    con = duckdb.connect(str(warehouse.database_path("us")), read_only=True)
    try:
        stored = con.execute("SELECT count(*) FROM duckdb_functions() WHERE function_name = 'to_minor'").fetchall()
    finally:
        con.close()
    assert stored == [(0,)]  # nothing stored in the file


def test_the_maintenance_job_and_its_daily_schedule_are_registered():
    assert defs.get_job_def("lake_maintenance_job") is not None
    assert defs.get_schedule_def("lake_maintenance_schedule").cron_schedule == "15 4 * * *"
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 12, 6, 4, 15))
    request = lake_maintenance_schedule(context)
    assert request.run_key == "lake_maintenance-2026-12-06"


def test_the_maintenance_job_is_a_logged_no_op_when_embedded(monkeypatch):
    monkeypatch.delenv("SALES_CHANNEL_STATE", raising=False)
    with dg.DagsterInstance.ephemeral() as instance:
        result = lake_maintenance_job.execute_in_process(instance=instance)
        logs = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert result.success
    assert result.output_for_node("lake_maintenance") == {}
    assert any("nothing to do in the embedded mode" in message for message in logs)


def test_the_state_url_becomes_libpq_keywords():
    params = postgres_params("postgresql://sales%40x:p%3Ass@db.internal:6432/state?sslmode=require")
    assert params == {
        "host": "db.internal",
        "port": "6432",
        "dbname": "state",
        "user": "sales@x",
        "password": "p:ss",
        "sslmode": "require",
    }


def test_a_failed_attach_shows_no_credential(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3-secret-value")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    state = State(dsn="postgresql://sales:pg-password-value@127.0.0.1:1/state", lake="s3://bucket/prefix")
    with pytest.raises(lake.LakeError) as caught:
        lake.connect(state)
    message = str(caught.value)
    assert "cannot connect to the coordination database" in message  # the catalog check, before any attach
    assert "pg-password-value" not in message and "s3-secret-value" not in message
