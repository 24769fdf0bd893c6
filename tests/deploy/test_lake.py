"""The channel data in the DuckLake (deployed mode): the channel pipeline against the emulator writes the lake (a
fresh process reads it; no channel file on disk), published_state carries the next run, which sends nothing; a real
commit conflict between two connections is run again; the maintenance job expires, merges and deletes files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from pipelines.maintenance import lake_maintenance_job
from resources import lake
from resources.state import state_from_env
from resources.transaction import transaction
from resources.warehouse import Warehouse, channel_tables
from tests.deploy.conftest import LAKE_BUCKET
from tests.sync.helpers import materialization, run, seller_dir, spapi_for, start_emulator

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]

_READER = """
import json, sys
from resources.warehouse import Warehouse, channel_tables
with Warehouse(data_dir=sys.argv[1]).connect("us", read_only=True) as con:
    print(json.dumps({
        "tables": sorted(channel_tables(con)),
        "published": con.execute("SELECT count(*) FROM published_state").fetchall()[0][0],
        "database": con.execute("SELECT current_database(), current_schema()").fetchall()[0],
    }))
"""


def _lake_objects(s3_url: str) -> list[str]:
    client = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=LAKE_BUCKET, Prefix="sales-channel/lake/")
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def test_the_channel_pipeline_writes_the_lake_and_a_second_run_sends_nothing(
    lake_env, s3_url, emulator_factory, tmp_path, monkeypatch
):
    monkeypatch.setenv("SALES_CHANNEL_CONFIG", str(REPO / "channels.yaml"))
    monkeypatch.chdir(tmp_path)  # like a pod: nothing of the repository's working directory
    data = seller_dir(tmp_path)
    server = start_emulator(emulator_factory, data)
    spapi = spapi_for(server, tmp_path)

    first = run(data, "us", spapi)
    assert first.success
    pushed = materialization(first, "listings_submission")
    assert pushed["changed"] > 0

    # Nothing of the channel on local disk: its tables are in the lake, read by a fresh process.
    assert not list((data / "warehouse").glob("us.duckdb*")) if (data / "warehouse").exists() else True
    assert any(key.endswith(".parquet") for key in _lake_objects(s3_url))
    env = {**os.environ, **lake_env, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _READER, str(data)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["database"] == ["lake", "us"]
    assert {"master_inventory", "buybox_prices", "published_state", "submissions", "sync_history"} <= set(
        seen["tables"]
    )
    assert seen["published"] == pushed["changed"]

    # The next run finds what Amazon confirmed and sends nothing.
    second = run(data, "us", spapi)
    assert second.success
    again = materialization(second, "listings_submission")
    assert again["changed"] == 0 and again["path"] == "none"
    with Warehouse(data_dir=str(data)).connect("us", read_only=True) as con:
        statuses = con.execute(
            "SELECT DISTINCT status FROM sync_history WHERE run_id = ? AND operation = 'submit'", [second.run_id]
        ).fetchall()
        assert statuses == [("unchanged",)]
        assert con.execute("SELECT count(*), count(DISTINCT sku) FROM published_state").fetchall() == [
            (seen["published"], seen["published"])
        ]


def test_another_channel_has_its_own_schema(lake_env, tmp_path):
    warehouse = Warehouse(data_dir=str(tmp_path))
    assert not warehouse.has_data("uk")
    with warehouse.connect("us") as con:
        con.execute("CREATE TABLE marks (n BIGINT)")
    assert warehouse.has_data("us") and not warehouse.has_data("uk")
    with warehouse.connect("uk", read_only=True) as con:
        assert channel_tables(con) == set()
        assert con.execute("SELECT to_minor(12.345, 2)").fetchall() == [(1234,)]  # TEMP money macros, read-only too


def test_a_commit_conflict_between_two_connections_is_run_again(lake_env, tmp_path):
    warehouse = Warehouse(data_dir=str(tmp_path))
    with warehouse.connect("us") as other, warehouse.connect("us") as con:
        other.execute("CREATE TABLE marks (source VARCHAR, n BIGINT)")
        other.execute("INSERT INTO marks VALUES ('notification', 1)")
        runs = 0
        for attempt in transaction(con):
            with attempt:
                runs += 1
                con.execute("UPDATE marks SET n = n + 1")
                if runs == 1:  # another run changes the same table and commits first
                    other.execute("UPDATE marks SET n = n + 10")
        assert runs == 2
        assert con.execute("SELECT n FROM marks").fetchall() == [(12,)]  # both changes, none lost

        # One attempt only: the conflict is raised (and nothing of the block is kept).
        with pytest.raises(Exception, match="Failed to commit DuckLake transaction"):
            for attempt in transaction(con, attempts=1):
                with attempt:
                    con.execute("UPDATE marks SET n = n + 100")
                    other.execute("UPDATE marks SET n = n + 1000")
        assert con.execute("SELECT n FROM marks").fetchall() == [(1012,)]


def test_the_maintenance_job_expires_merges_and_deletes_files(lake_env, s3_url, tmp_path):
    warehouse = Warehouse(data_dir=str(tmp_path))
    with warehouse.connect("us") as con:
        con.execute("CREATE TABLE marks (n BIGINT)")
        for n in range(12):  # one small file per commit
            con.execute("INSERT INTO marks SELECT range FROM range($n * 1000, ($n + 1) * 1000)", {"n": n})
        con.execute("CREATE TABLE scratch AS SELECT range AS n FROM range(100)")
        con.execute("DELETE FROM scratch WHERE n % 2 = 0")
        con.execute("DROP TABLE scratch")
    before = _lake_objects(s3_url)

    result = lake_maintenance_job.execute_in_process(
        run_config={"ops": {"lake_maintenance": {"config": {"expire_older_than_days": 0}}}}
    )
    assert result.success
    summary = result.output_for_node("lake_maintenance")
    assert summary["expired_snapshots"] > 0
    assert summary["merged_files"] > 0
    assert summary["deleted_files"] > 0
    after = _lake_objects(s3_url)
    assert len(after) < len(before)
    with warehouse.connect("us", read_only=True) as con:
        assert con.execute("SELECT count(*), sum(n) FROM marks").fetchall() == [(12000, sum(range(12000)))]
    con = lake.connect(state_from_env(), read_only=True)
    try:
        snapshots = con.execute(f"SELECT count(*) FROM ducklake_snapshots('{lake.ALIAS}')").fetchall()[0][0]
    finally:
        con.close()
    assert snapshots == 1  # only the current one
