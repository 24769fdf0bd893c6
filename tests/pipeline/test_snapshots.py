"""The seller-level input snapshots: each input file parsed once per file version, whatever the number of channels."""

import hashlib
from collections import Counter
from datetime import UTC, datetime

import dagster as dg
import pytest
from dagster_aws.s3 import S3Resource

import seller.inputs
import seller.snapshots
from pipelines.definitions import ALL_ASSETS, defs
from resources.warehouse import Warehouse
from seller.inputs import INPUTS
from seller.snapshots import SNAPSHOT_INPUTS
from tests.pipeline.test_dagster import OFFLINE, materialize, offline_spapi, query


@pytest.fixture
def parses(monkeypatch) -> Counter:
    """How many times each input file was parsed and validated, by any caller: every validation of a file that exists
    goes through seller.inputs._validate."""
    counted: Counter = Counter()
    real = seller.inputs._validate

    def counting(con, spec, *args, **kwargs):
        counted[spec.name] += 1
        return real(con, spec, *args, **kwargs)

    monkeypatch.setattr(seller.inputs, "_validate", counting)
    return counted


def snapshot_metadata(result: dg.ExecuteInProcessResult) -> dict:
    events = result.asset_materializations_for_node("input_snapshots")
    assert len(events) == 1
    return {key: value.value for key, value in events[0].metadata.items()}


def test_each_file_is_parsed_once_for_every_channel_and_again_only_when_it_changes(small_seller, parses):
    # Every input file the seller can have, the fees and shipments files (read by their own assets) included.
    (small_seller / "pricing_rules.csv").write_text(
        "rule_id,channel,scope,scope_value,type,value,priority,active\nR1,,all,,floor,1.00,1,true\n"
    )
    (small_seller / "fees.csv").write_text(
        "channel,sku,referral_rate,fixed_fee\nus,FBM-1,0.15,1.00\nuk,FBM-1,0.15,1.00\n"
    )
    (small_seller / "shipments.csv").write_text(
        "channel,order_id,carrier_code,carrier_name,tracking_number,ship_date,shipping_method\n"
    )
    first = materialize(small_seller, "us")
    assert first.success
    assert parses == Counter(dict.fromkeys(SNAPSHOT_INPUTS, 1))
    meta = snapshot_metadata(first)
    master = small_seller / "master_inventory.csv"
    assert meta["master_inventory_sha256"] == hashlib.sha256(master.read_bytes()).hexdigest()
    assert meta["master_inventory_parsed"] is True

    # Another channel, and the same channel again: the snapshots are reused, no file is parsed.
    second = materialize(small_seller, "uk")
    assert second.success and materialize(small_seller, "us").success
    assert parses == Counter(dict.fromkeys(SNAPSHOT_INPUTS, 1))
    assert snapshot_metadata(second)["master_inventory_parsed"] is False
    assert query(small_seller, "uk", "SELECT count(*) FROM buybox_prices") == [(1,)]

    # A changed file is validated once more, for every channel; the unchanged ones are not.
    mappings = small_seller / "channel_mappings.csv"
    mappings.write_text(mappings.read_text().replace("15.00,30.00", "15.00,31.00", 1))
    assert materialize(small_seller, "uk").success and materialize(small_seller, "us").success
    assert parses == Counter({**dict.fromkeys(SNAPSHOT_INPUTS, 1), "channel_mappings": 2})


def test_a_channel_run_without_the_snapshot_asset_builds_it_on_demand(small_seller, parses):
    # Prices and inventory runs do not select input_snapshots: their input assets build the snapshot they need
    # (under the lock), as a run of the input assets alone does here.
    for job in ("prices_job", "inventory_job"):
        assert dg.AssetKey("input_snapshots") not in defs.resolve_job_def(job).asset_layer.selected_asset_keys
    selection = [dg.AssetKey(name) for name in sorted(INPUTS)]
    result = dg.materialize(
        ALL_ASSETS,
        selection=selection,
        partition_key="us",
        resources={
            "warehouse": Warehouse(data_dir=str(small_seller)),
            "spapi": offline_spapi(small_seller),
            "s3": S3Resource(),
        },
        run_config={"ops": {name: OFFLINE[name] for name in ("fba_inventory", "competitor_prices")}},
    )
    assert result.success
    assert parses == Counter({name: 1 for name in INPUTS if (small_seller / f"{name}.csv").exists()})
    assert query(small_seller, "us", "SELECT count(*) FROM competitor_prices")[0][0] > 0
    meta = result.asset_materializations_for_node("competitor_prices")[0].metadata
    prices_file = small_seller / "competitor_prices.csv"
    assert meta["source_sha256"].value == hashlib.sha256(prices_file.read_bytes()).hexdigest()


def test_old_versions_are_pruned_and_the_newest_two_kept(small_seller, channels):
    path = small_seller / "master_inventory.csv"
    text = path.read_text()
    keys = []
    for price in ("19.99", "18.99", "17.99"):
        path.write_text(text.replace("19.99", price, 1))
        keys.append(seller.snapshots.ensure_snapshot("master_inventory", small_seller, channels).key)
    stored = {p.name for p in (small_seller / "warehouse" / "_inputs").glob("master_inventory-*.json")}
    assert stored == {f"master_inventory-{key[:24]}.json" for key in keys[1:]}


def test_a_competitor_file_version_already_appended_is_not_read_again():
    import duckdb

    from sync import offers

    con = duckdb.connect()
    con.execute(
        "CREATE TABLE file_rows AS SELECT 'B000000001' AS asin, 'S1' AS seller_id, 10.00::DECIMAL(18,2) AS price, "
        "0::DECIMAL(18,2) AS shipping, 'FBA' AS fulfillment, TIMESTAMPTZ '2026-11-29 09:00:00+00' AS observed_at"
    )
    offers.ensure_tables(con)
    now = datetime(2026, 11, 29, 10, tzinfo=UTC)
    assert offers.append_file(con, "file_rows", now, 30, version="v1") == 1
    con.execute("DELETE FROM offer_observations")  # were it read again, the row would come back
    assert offers.append_file(con, "file_rows", now, 30, version="v1") == 0
    assert con.execute("SELECT count(*) FROM offer_observations").fetchall() == [(0,)]
    assert offers.append_file(con, "file_rows", now, 30, version="v2") == 1
