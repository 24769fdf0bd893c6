"""`product_fees` against the emulator over HTTP: Amazon's estimates cached per SKU (a second run asks nothing while
they are fresh), asked again once older than `fees_max_age_days`, never-estimated SKUs first within the budget, the
`fees` file winning over Amazon, its bad rows blocking; and the same logic in JPY (whole yen)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from assets.fees import product_fees
from assets.inputs import input_assets
from emulator.fees.models import size_tier
from emulator.testing import JP, TEST_CHANNELS
from pricing.money import install_money_macros
from reliability.wiretap import Wiretap
from resources.spapi import SpApiClient
from resources.warehouse import Warehouse
from seller.inputs import validated_input
from sync import fees
from tests.sync.helpers import materialization, query, spapi_for, start_emulator

SKUS = [f"SKU-{n:02d}" for n in range(25)]  # two requests: 20 and 5
ASSETS = [a for a in input_assets if a.key.path[-1] in ("master_inventory", "channel_mappings")] + [product_fees]


@pytest.fixture
def seller(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    master = ["sku,quantity,price,product_type"] + [f"{s},5,20.00,PRODUCT" for s in SKUS]
    # B000000001: small standard (FBA fee 3.22); the FBM SKUs pay no FBA fee
    mappings = ["channel,sku,asin,fulfillment,min_price,max_price"] + [
        f"us,{s},B000000001,{'FBA' if n % 2 == 0 else 'FBM'},10.00,30.00" for n, s in enumerate(SKUS)
    ]
    (data / "master_inventory.csv").write_text("\n".join(master) + "\n")
    (data / "channel_mappings.csv").write_text("\n".join(mappings) + "\n")
    return data


def asked(tap: Wiretap, since: int) -> list[list[str]]:
    return [[i["IdValue"] for i in json.loads(e.body)] for e in tap.calls("getMyFeesEstimates", since)]


def run(data: Path, server, tmp_path: Path, **config) -> dg.ExecuteInProcessResult:
    resources = {"warehouse": Warehouse(data_dir=str(data)), "spapi": spapi_for(server, tmp_path / "spapi-state")}
    run_config = {"ops": {"product_fees": {"config": config}}} if config else None
    return dg.materialize(ASSETS, partition_key="us", resources=resources, run_config=run_config, raise_on_error=False)


def table(data: Path) -> dict[str, tuple]:
    rows = query(
        data, "us", "SELECT sku, referral_rate, fixed_fee, fixed_fee_minor, source, price_basis_minor FROM product_fees"
    )
    return {r[0]: r[1:] for r in rows}


def age(data: Path, skus: list[str], days: int) -> None:
    """Make these SKUs' estimates (and attempts) `days` older."""
    con = duckdb.connect(str(data / "warehouse" / "us.duckdb"))
    try:
        con.execute(
            "UPDATE fee_estimates SET estimated_at = estimated_at - to_days($d), asked_at = asked_at - to_days($d) "
            "WHERE sku IN (SELECT unnest($skus))",
            {"d": days, "skus": skus},
        )
    finally:
        con.close()


def test_estimates_are_cached_refreshed_when_stale_and_never_estimated_first(seller, tmp_path, emulator_factory):
    server = start_emulator(emulator_factory, seller, rate_scale=0)
    tap = Wiretap(server)
    first = run(seller, server, tmp_path)
    assert first.success
    assert asked(tap, 0) == [SKUS[:20], SKUS[20:]]
    fees_table = table(seller)
    assert set(fees_table) == set(SKUS)
    # 15 % of 20.00 = 3.00 → rate 0.15; FBA: fixed 3.22 (small standard), FBM: nothing fixed; asked at 20.00
    assert fees_table["SKU-00"] == (Decimal("0.150000"), Decimal("3.2200"), 322, "amazon", 2000)
    assert fees_table["SKU-01"] == (Decimal("0.150000"), Decimal("0.0000"), 0, "amazon", 2000)
    meta = materialization(first, "product_fees")
    assert (meta["skus_with_fees"], meta["from_amazon"], meta["from_file"], meta["without_fees"]) == (25, 25, 0, 0)
    assert meta["fees_asked_skus"] == 25 and meta["fees_pull_stopped"] == "complete"

    mark = len(tap.exchanges)
    second = run(seller, server, tmp_path)
    assert second.success and asked(tap, mark) == []  # fresh: Amazon is not asked again
    assert materialization(second, "product_fees")["fees_planned_skus"] == 0
    assert table(seller) == fees_table

    age(seller, SKUS[:3], 6)  # younger than the channel's fees_max_age_days (7): kept
    age(seller, SKUS[3:5], 8)  # older: asked again
    mark = len(tap.exchanges)
    third = run(seller, server, tmp_path)
    assert asked(tap, mark) == [SKUS[3:5]]
    meta = materialization(third, "product_fees")
    assert 5.9 < meta["oldest_estimate_days"] < 6.1  # the 6-day-old ones are now the oldest in use

    # 22 stale SKUs, and 3 never estimated: with one request's budget, the never-estimated ones go first
    age(seller, SKUS, 30)
    con = duckdb.connect(str(seller / "warehouse" / "us.duckdb"))
    con.execute("DELETE FROM fee_estimates WHERE sku IN ('SKU-22', 'SKU-23', 'SKU-24')")
    con.close()
    server_real = start_emulator(emulator_factory, seller, rate_scale=1.0)  # 0.5 requests/s: the 2nd would wait 2 s
    tap_real = Wiretap(server_real)
    fourth = run(seller, server_real, tmp_path / "real", pull_seconds=0.5)
    requests = asked(tap_real, 0)
    assert len(requests) == 1 and requests[0][:3] == ["SKU-22", "SKU-23", "SKU-24"]
    assert materialization(fourth, "product_fees")["fees_pull_stopped"].startswith("budget (20 of 25 SKUs")
    assert len(table(seller)) == 25  # the stale ones not asked keep their old estimate


def test_the_fees_file_wins_and_its_bad_rows_block(seller, tmp_path, emulator_factory):
    server = start_emulator(emulator_factory, seller, rate_scale=0)
    tap = Wiretap(server)
    (seller / "fees.csv").write_text("channel,sku,referral_rate,fixed_fee\nus,SKU-00,0.08,1.25\nuk,SKU-01,0.1,2\n")
    result = run(seller, server, tmp_path)
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())
    assert table(seller)["SKU-00"] == (Decimal("0.080000"), Decimal("1.2500"), 125, "file", None)
    assert "SKU-00" not in [s for request in asked(tap, 0) for s in request]  # the file's SKU is not asked
    assert table(seller)["SKU-01"][3] == "amazon"  # another channel's row does not apply here
    meta = materialization(result, "product_fees")
    assert (meta["from_file"], meta["from_amazon"]) == (1, 24)

    # Amazon's estimate exists, the file still wins
    (seller / "fees.csv").write_text("channel,sku,referral_rate,fixed_fee\nus,SKU-02,0.2,0.50\n")
    assert run(seller, server, tmp_path).success
    assert table(seller)["SKU-02"] == (Decimal("0.200000"), Decimal("0.5000"), 50, "file", None)
    assert table(seller)["SKU-00"][3] == "amazon"  # the file row gone: Amazon's estimate again

    (seller / "fees.csv").write_text("channel,sku,referral_rate,fixed_fee\nus,SKU-02,15,0.50\nus,SKU-03,0.15,1.999\n")
    bad = run(seller, server, tmp_path)
    (check,) = [e for e in bad.get_asset_check_evaluations() if e.check_name == "fees_valid"]
    assert not check.passed
    problems = query(
        seller, "us", "SELECT file, row, \"column\", value FROM input_errors WHERE input = 'fees' ORDER BY row"
    )
    assert problems == [("fees.csv", 2, "referral_rate", "15"), ("fees.csv", 3, "fixed_fee", "1.999")]


def test_jpy_estimates_and_file_fees_in_whole_yen(tmp_path, emulator_factory):
    # The logic the asset runs, on a JPY channel (the pipeline's partitions are channels.yaml's: us, uk, de)
    server = emulator_factory()  # the synthetic seller on the test channels (us, de, jp)
    channel = TEST_CHANNELS["jp"]
    creds = server.state.store.tokens.credentials
    client = SpApiClient(
        seller_id=channel.seller_id,
        client_id=creds.client_id,
        client_secret=creds.client_secret,
        refresh_token=creds.refresh_token,
        endpoint=server.url,
        token_url=server.token_url,
        state_dir=tmp_path / "spapi",
        requests_per_minute=0,
        requests_per_day=0,
    )
    con = duckdb.connect(str(tmp_path / "jp.duckdb"))
    install_money_macros(con)
    listings = [r for r in server.state.store.listings.values() if r.marketplace_id == JP and r.price][:4]
    con.execute("CREATE TABLE listings (sku VARCHAR, price DECIMAL(18,2), fulfillment VARCHAR)")
    con.executemany("INSERT INTO listings VALUES (?, ?, ?)", [[r.sku, r.price, r.fulfillment] for r in listings])
    data = tmp_path / "data"
    data.mkdir()
    (data / "fees.csv").write_text(f"channel,sku,referral_rate,fixed_fee\njp,{listings[0].sku},0.1,150\n")
    with validated_input(con, "fees", data, TEST_CHANNELS, channel="jp", table="fees_file") as loaded:
        assert loaded.errors.num_rows == 0
    fees.ensure_tables(con)
    now = datetime.now(UTC)
    todo = fees.plan(con, "listings", "fees_file", now, channel.pricing.fees_max_age_days)
    assert [q.sku for q in todo] == sorted(r.sku for r in listings[1:])
    for chunk, results in client.iter_fees_estimates(JP, "JPY", todo):
        fees.record(con, fees.estimate_rows(chunk, results, "JPY", 0, now))
    assert fees.write_product_fees(con, "listings", "fees_file", 0) == 4
    rows = {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT sku, referral_rate, fixed_fee_minor, source, price_basis_minor FROM product_fees"
        ).fetchall()
    }
    assert rows[listings[0].sku] == (Decimal("0.100000"), 150, "file", None)
    for listing in listings[1:]:
        rate, fixed_minor, source, basis = rows[listing.sku]
        price = int(listing.price)
        referral = max((Decimal(price) * Decimal("0.15")).to_integral_value(rounding="ROUND_HALF_UP"), Decimal(30))
        fba = int(size_tier(listing.asin)[1] * 100) if listing.fulfillment == "FBA" else 0
        assert (fixed_minor, source, basis) == (fba, "amazon", price)  # whole yen: the minor unit is the yen
        assert rate == (referral / price).quantize(Decimal("0.000001"), rounding="ROUND_HALF_UP")
    # a second pass plans nothing: every SKU is estimated or in the file
    assert fees.plan(con, "listings", "fees_file", now, 7) == []
    con.close()
    client.close()
