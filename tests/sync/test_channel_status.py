"""channel_status and the freshness checks after real runs against the emulator, on a real Dagster instance: what the
asset shows after a good sync, the checks turning red once the push is older than its interval (without failing the
run), and a revoked grant shown as the channel's error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from assets.offers import offer_observations
from assets.order_poll import order_assets
from assets.status import FRESHNESS_CHECKS, channel_status
from pipelines.jobs import channel_status_job
from pipelines.resources import EMULATOR_DEFAULTS
from resources.spapi_resource import SpApiResource
from resources.warehouse import Warehouse
from tests.sync.helpers import ALL_ASSETS, control, materialization, query, run, seller_dir, spapi_for, start_emulator

CHECK_OPS = [check.node_def.name for check in FRESHNESS_CHECKS]


@pytest.fixture
def synced(emulator_factory, tmp_path):
    """A seller whose `us` channel had one real run against the emulator, on a test instance."""
    data = seller_dir(tmp_path)
    server = start_emulator(emulator_factory, data)
    spapi = spapi_for(server, tmp_path)
    with dg.instance_for_test() as instance:
        assert run(data, "us", spapi, instance=instance).success
        # and one order poll, as its schedule runs it beside the sync runs
        resources = {"warehouse": Warehouse(data_dir=str(data)), "spapi": spapi}
        assert dg.materialize([order_assets], partition_key="us", instance=instance, resources=resources).success
        yield data, server, spapi, instance


def take_status(data: Path, instance: dg.DagsterInstance) -> dict:
    result = dg.materialize(
        [channel_status], partition_key="us", instance=instance, resources={"warehouse": Warehouse(data_dir=str(data))}
    )
    assert result.success
    return materialization(result, "channel_status")


def status_job(data: Path, spapi: SpApiResource, instance: dg.DagsterInstance, as_of: datetime | None = None):
    """channel_status_job as the schedule runs it (the asset and the freshness checks), optionally at `as_of`."""
    defs = dg.Definitions(
        assets=[*ALL_ASSETS, order_assets, channel_status],
        asset_checks=FRESHNESS_CHECKS,
        jobs=[channel_status_job],
        resources={"warehouse": Warehouse(data_dir=str(data)), "spapi": spapi},
        executor=dg.in_process_executor,
    )
    config = {"config": {"as_of": as_of.isoformat()}} if as_of else {}
    ops = {name: config for name in ("channel_status", *CHECK_OPS)}
    return defs.resolve_job_def("channel_status_job").execute_in_process(
        partition_key="us", instance=instance, run_config={"ops": ops}
    )


def test_after_a_real_sync_the_status_reads_ok_with_every_figure(synced):
    data, _, _, instance = synced
    meta = take_status(data, instance)
    assert list(meta)[:2] == ["status", "connection"]  # the verdict first, then the connection
    errors = query(
        data,
        "us",
        "SELECT coalesce(code, status), count(*) FROM sync_history WHERE operation = 'submit' "
        "AND status IN ('error', 'category_restricted', 'not_applied') GROUP BY ALL",
    )
    in_error = sum(count for _, count in errors)
    expected = "OK: prices pushed 0 min ago, stock 0 min ago" + (f", {in_error} SKU(s) in error" if in_error else "")
    assert meta["status"] == expected
    assert meta["connection"].startswith("ok (") and meta["connection"].endswith(", 0 min ago)")
    for step in ("last_fba_pull", "last_offers_pull", "last_price_push", "last_quantity_push"):
        assert meta[step].endswith(" UTC (0 min ago)"), (step, meta[step])
    assert meta["last_order_poll"].endswith("(0 min ago)")  # the fixture's poll
    assert meta["notification_coverage"] == "n/a (the poll found no order)"
    assert meta["open_feeds"] == 0 and meta["open_feeds_detail"] == "none"
    assert meta["skus_in_error"] == in_error
    for code, count in errors:
        assert f"| {code} | {count} |" in meta["errors_by_code"]
    # the pull asked Amazon about every mapped ASIN a moment ago
    assert 0 <= meta["offer_age_p50_minutes"] <= meta["offer_age_p95_minutes"] < 5
    overview = meta["seller_overview"].splitlines()
    assert overview[0].startswith("| channel | marketplace | status | connection | prices pushed")
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in overview[2:]}
    assert set(rows) == {"us", "uk", "de"}  # every channel of the seller
    assert f"| {expected} | ok |" in rows["us"]
    assert "| NO DATA: the channel has never synced | - | never | never |" in rows["uk"]


def test_the_freshness_checks_fail_once_the_push_is_older_than_the_interval(synced, monkeypatch):
    data, _, spapi, instance = synced
    now = status_job(data, spapi, instance)
    assert now.success
    checks = {e.check_name: e for e in now.get_asset_check_evaluations()}
    assert set(checks) == {"prices_pushed_recently", "stock_pushed_recently", "offers_pulled_recently"}
    assert all(e.passed for e in checks.values())
    assert "not enabled" in checks["offers_pulled_recently"].description

    later = datetime.now(UTC) + timedelta(minutes=31)
    stale = status_job(data, spapi, instance, as_of=later)
    assert stale.success, "a failed freshness check blocks nothing"
    checks = {e.check_name: e for e in stale.get_asset_check_evaluations()}
    prices = checks["prices_pushed_recently"]
    assert not prices.passed and prices.severity == dg.AssetCheckSeverity.ERROR
    assert prices.description.startswith("us: prices pushed 3") and "(expected within 30 min)" in prices.description
    assert prices.metadata["max_minutes"].value == 30.0 and prices.metadata["age_minutes"].value > 30
    assert checks["stock_pushed_recently"].passed  # 31 minutes is within the 2 h of stock
    line = materialization(stale, "channel_status")["status"]
    assert line.startswith("STALE: prices not pushed for 3") and "stock" not in line

    monkeypatch.setenv("SALES_CHANNEL_STALE_PRICES_MINUTES", "60")  # the interval is configurable
    monkeypatch.setenv("SALES_CHANNEL_STALE_ORDERS_MINUTES", "60")  # (the order poll is 31 min old too)
    relaxed = status_job(data, spapi, instance, as_of=later)
    assert all(e.passed for e in relaxed.get_asset_check_evaluations())
    assert materialization(relaxed, "channel_status")["status"].startswith("OK: prices pushed 3")


def test_a_revoked_grant_is_the_channels_error_until_a_run_succeeds_again(synced):
    data, server, _, instance = synced
    revoke = {"refresh_token": EMULATOR_DEFAULTS["refresh_token"], "access_tokens": True}
    control(server, "POST", "/tokens/revoke", json=revoke)
    failed = run(data, "us", spapi_for(server, data.parent), instance=instance, raise_on_error=False)
    assert not failed.success
    meta = take_status(data, instance)
    assert meta["status"].startswith("ERROR: grant revoked (ReauthorizationRequired)"), meta["status"]
    # the first SP-API steps (the FBA and the offers pulls) both failed on it
    assert meta["connection"].startswith("ReauthorizationRequired (")
    assert "0 min ago): Unauthorized in lwa" in meta["connection"] and "LWA refused the refresh" in meta["connection"]
    assert "Atzr|" not in meta["connection"]  # no token in the metadata

    control(server, "POST", "/tokens/restore", json={})
    assert run(data, "us", spapi_for(server, data.parent), instance=instance).success
    assert take_status(data, instance)["status"].startswith("OK: prices pushed 0 min ago")


def test_a_throttled_pull_and_skus_in_error_show_in_the_status(synced):
    data, server, spapi, instance = synced
    # Amazon answers 429 to every offers request of the next pull: it stops early, keeping what it got.
    control(server, "POST", "/faults", json={"kind": "status", "operation": "getItemOffersBatch", "status": 429})
    control(server, "POST", "/faults", json={"kind": "status", "operation": "getItemOffersBatch", "status": 429})
    resources = {"warehouse": Warehouse(data_dir=str(data)), "spapi": spapi}
    pull = dg.materialize([offer_observations], partition_key="us", instance=instance, resources=resources)
    assert materialization(pull, "offer_observations")["pull_stopped"].startswith("error: QuotaExceeded")
    # and Amazon rejected one SKU after the push (as a later run records it): its latest outcome is an error
    later = datetime.now(UTC) + timedelta(seconds=1)
    with Warehouse(data_dir=str(data)).connect("us") as con:
        con.execute(
            "INSERT INTO sync_history VALUES ('us', 'FBM-1', 'B000000002', 'submit', 'error', 'InvalidInput', "
            "'[8560] bad value', 'r2', $at)",
            {"at": later},
        )
    meta = take_status(data, instance)
    assert meta["status"] == "THROTTLED: throttled by Amazon in offer_observations"
    assert meta["connection"].startswith("throttled (offer_observations, 0 min ago): QuotaExceeded in getItemOffers")
    assert meta["skus_in_error"] == 1 and "| InvalidInput | 1 |" in meta["errors_by_code"]
    assert meta["last_offers_pull"].endswith("(0 min ago)")  # the earlier, complete pull
