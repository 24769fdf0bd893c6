"""The pipeline as Dagster runs it: partitioned materializations, blocking checks, concurrent channels, the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_aws.s3 import S3Resource

from pipelines.definitions import ALL_ASSETS, defs
from resources.spapi_resource import SpApiResource
from resources.warehouse import Warehouse

GOLDEN = Path(__file__).parent.parent / "golden"
AS_OF = "2026-11-29T10:00:00+00:00"
REPO = Path(__file__).resolve().parents[2]
# These tests run the pipeline offline: no SP-API pull (the files are the inputs) and no push.
OFFLINE = {
    name: {"config": {"offline": True}} for name in ("fba_inventory", "competitor_prices", "listings_submission")
}


def materialize(data_dir: Path, channel: str, **kwargs) -> dg.ExecuteInProcessResult:
    spapi = SpApiResource(
        client_id="offline", client_secret="offline", refresh_token="offline", state_dir=str(data_dir / "spapi")
    )
    return dg.materialize(
        ALL_ASSETS,
        partition_key=channel,
        resources={"warehouse": Warehouse(data_dir=str(data_dir)), "spapi": spapi, "s3": S3Resource()},
        run_config={"ops": {"buybox_prices": {"config": {"as_of": AS_OF}}, **OFFLINE}},
        **kwargs,
    )


def query(data_dir: Path, channel: str, sql: str) -> list[tuple]:
    con = duckdb.connect(str(data_dir / "warehouse" / f"{channel}.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_definitions_load_with_every_asset_partitioned():
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {
        "master_inventory",
        "channel_mappings",
        "competitor_prices",
        "fba_inventory",
        "reconciled_inventory",
        "buybox_prices",
        "price_quantity_feed",
        "inventory_loader_feed",
        "listings_feed",
        "sync_history",
        "listings_submission",
        "reservations",
        "shipment_confirmations",
        "feed_archive",
        "notification_subscriptions",
    }
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.partitions_def is not None and node.partitions_def.get_partition_keys() == ["us", "uk", "de"]
        assert node.description, key


def test_partitioned_materialization_writes_golden_feeds_and_history(small_seller):
    result = materialize(small_seller, "us")
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())
    feeds = small_seller / "feeds" / "us"
    for golden in GOLDEN.glob("us-*"):
        name = golden.name.removeprefix("us-")
        path = feeds / "JSON_LISTINGS_FEED" / name if name.endswith(".json") else feeds / name
        assert path.read_bytes() == golden.read_bytes(), name
    history = query(small_seller, "us", "SELECT sku, operation, status, run_id FROM sync_history ORDER BY sku")
    assert [(sku, op, status) for sku, op, status, _ in history] == [
        ("FBA-1", "reconcile", "master_updated"),
        ("NO-ASIN", "publish", "mapping_missing"),
        ("UNMAPPED", "publish", "mapping_missing"),
    ]
    assert {run_id for *_, run_id in history} == {result.run_id}
    prices = result.asset_materializations_for_node("buybox_prices")[0].metadata
    assert (prices["price_up"].value, prices["price_down"].value, prices["at_floor"].value) == (1, 3, 1)
    assert prices["outcome_at_ceiling"].value == 1 and prices["dagster/row_count"].value == 5
    # The unmapped SKUs are in no feed.
    assert b"NO-ASIN" not in (feeds / "POST_FLAT_FILE_INVLOADER_DATA.txt").read_bytes()
    listings = result.asset_materializations_for_node("listings_feed")[0].metadata
    document = feeds / "JSON_LISTINGS_FEED" / "JSON_LISTINGS_FEED-0001.json"
    assert listings["dagster/row_count"].value == 5 and listings["documents"].value == 1
    assert listings["messages_per_document"].value == {"JSON_LISTINGS_FEED-0001.json": 5}
    assert f"- `{document}`: 5 messages" in listings["document_paths"].value
    # The document's first messages as written (prices stay decimals), one per line.
    first = document.read_text().split('"messages":[')[1].split(',{"messageId":2')[0]
    assert "`JSON_LISTINGS_FEED-0001.json` (5 messages)" in listings["preview"].value
    assert f"\n{first},\n" in listings["preview"].value and '"value_with_tax":30.00' in first


def test_bad_input_fails_the_blocking_check_and_writes_no_feed(small_seller):
    path = small_seller / "master_inventory.csv"
    path.write_text(path.read_text().replace("FBM-1,7,15.00", "FBM-1,7,abc"))
    result = materialize(small_seller, "us", raise_on_error=False)
    assert not result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [e.check_name for e in failed] == ["master_inventory_valid"]
    assert "1 problem(s) in master_inventory" in failed[0].description
    assert "master_inventory.csv" in failed[0].metadata["first_problems"].value
    assert not (small_seller / "feeds").exists()
    # what was valid is still there to inspect, and the problem is recorded
    assert query(small_seller, "us", "SELECT count(*) FROM master_inventory") == [(6,)]
    assert query(small_seller, "us", 'SELECT file, row, "column", value FROM input_errors') == [
        ("master_inventory.csv", 3, "price", "abc")
    ]


def test_a_channel_with_bad_rows_does_not_block_another(small_seller):
    path = small_seller / "channel_mappings.csv"
    path.write_text(path.read_text().replace("us,FBM-1,B000000002", "us,FBM-1,B0002"))
    assert not materialize(small_seller, "us", raise_on_error=False).success
    assert materialize(small_seller, "uk").success
    assert (small_seller / "feeds" / "uk" / "POST_FLAT_FILE_INVLOADER_DATA.txt").exists()


def test_two_channels_materialize_concurrently_through_the_cli(small_seller, tmp_path):
    env = {
        **os.environ,
        "SALES_CHANNEL_DATA": str(small_seller),
        "SALES_CHANNEL_CONFIG": str(REPO / "channels.yaml"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    (tmp_path / "dagster_home").mkdir()
    # Create the instance's SQLite storage once: two processes creating it at the same moment race in its migration.
    dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")).dispose()
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "pipelines.definitions", "--select", "*"]
    command += ["--config-json", json.dumps({"ops": OFFLINE})]
    procs = {
        channel: subprocess.Popen(
            [*command, "--partition", channel], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for channel in ("us", "uk")
    }
    for proc in procs.values():
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, out.decode()[-3000:]
    for channel in ("us", "uk"):
        assert (small_seller / "feeds" / channel / "JSON_LISTINGS_FEED" / "JSON_LISTINGS_FEED-0001.json").exists()
        assert query(small_seller, channel, "SELECT count(*) FROM buybox_prices")[0][0] == {"us": 5, "uk": 1}[channel]


@pytest.mark.parametrize("channel", ["us"])
def test_rerun_of_a_partition_is_idempotent(small_seller, channel):
    materialize(small_seller, channel)
    materialize(small_seller, channel)
    assert query(small_seller, channel, "SELECT count(*) FROM buybox_prices") == [(5,)]
    runs = query(small_seller, channel, "SELECT count(DISTINCT run_id), count(*) FROM sync_history")
    assert runs == [(2, 6)]
