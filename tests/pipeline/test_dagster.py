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
    name: {"config": {"offline": True}}
    for name in (
        "fba_inventory",
        "competitor_prices",
        "offer_observations",
        "product_fees",
        "order_assets",
        "listings_submission",
    )
}


def offline_spapi(data_dir: Path) -> SpApiResource:
    return SpApiResource(
        client_id="offline", client_secret="offline", refresh_token="offline", state_dir=str(data_dir / "spapi")
    )


def materialize(data_dir: Path, channel: str, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ALL_ASSETS,
        partition_key=channel,
        resources={
            "warehouse": Warehouse(data_dir=str(data_dir)),
            "spapi": offline_spapi(data_dir),
            "s3": S3Resource(),
        },
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
        "input_snapshots",
        "master_inventory",
        "channel_mappings",
        "pricing_rules",
        "competitor_prices",
        "offer_observations",
        "product_fees",
        "fba_inventory",
        "reconciled_inventory",
        "buybox_prices",
        "price_quantity_feed",
        "inventory_loader_feed",
        "listings_feed",
        "sync_history",
        "listings_submission",
        "orders",
        "order_items",
        "reservations",
        "shipment_confirmations",
        "feed_archive",
        "notification_subscriptions",
        "notification_store",
        "shipments",
        "channel_status",
        "price_backtest",
    }
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, key
        if key.to_user_string() == "input_snapshots":  # seller-level: each file validated once for every channel
            assert node.partitions_def is None
            continue
        if key.to_user_string() == "price_backtest":  # channel x day: a backtest's window is a day
            dims = {d.name: d.partitions_def for d in node.partitions_def.partitions_defs}
            assert dims["channel"].get_partition_keys() == ["us", "uk", "de"]
            assert isinstance(dims["date"], dg.DailyPartitionsDefinition)
            continue
        assert node.partitions_def is not None and node.partitions_def.get_partition_keys() == ["us", "uk", "de"]


def test_lineage_follows_what_each_asset_reads_and_writes():
    graph = defs.resolve_asset_graph()

    def parents(name: str) -> set[str]:
        return {key.to_user_string() for key in graph.get(dg.AssetKey(name)).parent_keys}

    # Every step that writes sync_history runs before it, so its materialization sums up the run.
    assert parents("sync_history") == {
        "master_inventory",
        "channel_mappings",
        "reconciled_inventory",
        "listings_submission",
        "shipment_confirmations",
    }
    # ORDER_CHANGE notifications: subscriptions -> the sensor's store -> reservations -> reconcile; the order poll
    # (`orders`) writes the same store.
    assert parents("notification_store") == {"notification_subscriptions"}
    assert parents("reservations") == {"notification_store", "orders", "master_inventory"}
    assert parents("orders") == parents("order_items") == {"notification_store"}
    assert "reservations" in parents("reconciled_inventory")
    # The shipments and fees files are validated into the seller-level snapshot too.
    assert parents("shipment_confirmations") == {"input_snapshots", "shipments"}
    assert parents("product_fees") == {"input_snapshots", "channel_mappings", "master_inventory"}
    assert {"pricing_rules", "product_fees"} <= parents("buybox_prices")
    assert parents("shipments") == set()
    # ANY_OFFER_CHANGED: the sensor's store -> the observations (plus the pull) -> the offers as they stand.
    assert parents("offer_observations") == {"channel_mappings", "notification_store"}
    assert parents("competitor_prices") == {
        "input_snapshots",
        "channel_mappings",
        "offer_observations",
        "notification_store",
    }
    # Each input file is validated once per version, for every channel: the seller-level snapshot feeds each input.
    assert parents("master_inventory") == {"input_snapshots"}
    assert parents("channel_mappings") == {"input_snapshots", "master_inventory"}
    assert parents("fba_inventory") == {"input_snapshots"}
    # The seller's file and the sensor's store are external: shown, never materialized by a run.
    assert not graph.get(dg.AssetKey("notification_store")).is_executable
    assert not graph.get(dg.AssetKey("shipments")).is_executable

    def job_assets(job: str) -> set[str]:
        return {key.to_user_string() for key in defs.resolve_job_def(job).asset_layer.selected_asset_keys}

    assert {"reservations", "shipment_confirmations", "sync_history"} <= job_assets("inventory_job")
    assert {"listings_submission", "sync_history"} <= job_assets("prices_job")
    assert "reservations" not in job_assets("prices_job")
    assert job_assets("order_poll_job") == {"orders", "order_items"}
    assert "orders" not in job_assets("inventory_job")  # the poll runs on its own schedule, once per seller x region
    # The fees pull runs with the full channel run's other Amazon pulls, never in a stock or prices run.
    assert "product_fees" in job_assets("channel_pipeline_job")
    assert "product_fees" not in job_assets("inventory_job") | job_assets("prices_job")
    pipeline = job_assets("channel_pipeline_job")
    assert "notification_subscriptions" not in pipeline and "sync_history" in pipeline
    assert "input_snapshots" in pipeline
    # The status reads what the pulls, the push and sync_history recorded; it and the freshness checks run in their
    # own job, never inside a sync run.
    assert parents("channel_status") == {
        "fba_inventory",
        "offer_observations",
        "reconciled_inventory",
        "listings_submission",
        "shipment_confirmations",
        "sync_history",
        "orders",
    }

    def job_checks(job: str) -> set[str]:
        layer = defs.resolve_job_def(job).asset_layer
        return {key.name for data in layer.data for key in data.assets_def.check_keys}

    assert job_assets("channel_status_job") == {"channel_status"}
    freshness = {"prices_pushed_recently", "stock_pushed_recently", "offers_pulled_recently"}
    assert job_checks("channel_status_job") == freshness
    for job in ("channel_pipeline_job", "inventory_job", "prices_job", "offers_pull_job"):
        assert "channel_status" not in job_assets(job) and not job_checks(job) & freshness, job
    assert {"master_inventory_valid", "fba_inventory_valid"} <= job_checks("inventory_job")  # the input checks stay


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
    history_meta = result.asset_materializations_for_node("sync_history")[0].metadata
    assert history_meta["dagster/row_count"].value == 3 and history_meta["rows_all_runs"].value == 3
    assert (history_meta["status_mapping_missing"].value, history_meta["status_master_updated"].value) == (2, 1)
    assert "| publish | mapping_missing | 2 |" in history_meta["outcomes"].value
    assert "NO-ASIN" in history_meta["preview"].value and "FBA-1" in history_meta["preview"].value
    # No view is kept in the channel's file: a stored relation view is planned again at every open (every asset).
    assert query(small_seller, "us", "SELECT view_name FROM duckdb_views() WHERE NOT internal AND NOT temporary") == []


def test_a_prices_run_records_no_reconcile_it_did_not_do(small_seller):
    assert materialize(small_seller, "us").success
    prices = dg.materialize(
        ALL_ASSETS,
        selection=sorted(defs.resolve_job_def("prices_job").asset_layer.selected_asset_keys),
        partition_key="us",
        resources={
            "warehouse": Warehouse(data_dir=str(small_seller)),
            "spapi": offline_spapi(small_seller),
            "s3": S3Resource(),
        },
        run_config={
            "ops": {
                "buybox_prices": {"config": {"as_of": AS_OF}},
                **{name: OFFLINE[name] for name in ("competitor_prices", "listings_submission")},
            }
        },
    )
    assert prices.success
    rows = query(small_seller, "us", "SELECT sku, operation, status, run_id FROM sync_history ORDER BY sku")
    rows = [row[:3] for row in rows if row[3] == prices.run_id]
    # FBA-1's master figure was replaced by the first run's reconcile, not by this one.
    assert rows == [("NO-ASIN", "publish", "mapping_missing"), ("UNMAPPED", "publish", "mapping_missing")]


def test_a_mapping_missing_from_the_master_is_a_warning_and_blocks_no_other_sku(small_seller):
    path = small_seller / "channel_mappings.csv"
    path.write_text(path.read_text() + "us,GHOST-1,B000000009,FBM,,5.00,10.00,,\n")  # row 9
    result = materialize(small_seller, "us")
    assert result.success
    assert query(
        small_seller, "us", 'SELECT input, file, row, "column", value, message, severity FROM input_errors'
    ) == [("channel_mappings", "channel_mappings.csv", 9, "sku", "GHOST-1", "not in master_inventory", "warning")]
    ghost = "SELECT asin, operation, status, run_id FROM sync_history WHERE sku = 'GHOST-1'"
    history = query(small_seller, "us", ghost)
    assert history == [("B000000009", "publish", "master_missing", result.run_id)]
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert all(e.passed for e in checks.values())
    assert checks["channel_mappings_valid"].metadata["warnings"].value == 1
    # every other SKU is published exactly as without the row; the unknown one is in no feed
    feeds = small_seller / "feeds" / "us"
    for golden in GOLDEN.glob("us-*"):
        name = golden.name.removeprefix("us-")
        document = feeds / "JSON_LISTINGS_FEED" / name if name.endswith(".json") else feeds / name
        assert document.read_bytes() == golden.read_bytes(), name


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
    assert query(small_seller, "us", 'SELECT file, row, "column", value, severity FROM input_errors') == [
        ("master_inventory.csv", 3, "price", "abc", "error")
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
    # every channel asset: the backtest (channel x day partitions) cannot share a run with them
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "pipelines.definitions"]
    command += ["--select", "* and not group:backtest"]
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
