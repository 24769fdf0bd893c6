"""The rules engine against hand-worked golden cases (tests/golden/rules), and against the seed's rule: without a
rules file it prices every SKU exactly as `pricing.buybox.buybox_prices`, so feeds stay byte-identical."""

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow.csv as pacsv
import pytest
import yaml

from pricing.buybox import buybox_prices
from pricing.money import install_money_macros
from pricing.rules import price_with_rules
from seller.config import Channel, Pricing, parse_channels
from seller.inputs import INPUTS, validated_input
from seller.reconcile import reconcile
from seller.synthetic import generate

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
GOLDEN = Path(__file__).parent.parent / "golden" / "rules"
ME = "A3DEMOSELLER01"

_MARKETS = {"us": ("ATVPDKIKX0DER", "na"), "uk": ("A1F83G8C2ARO7P", "eu"), "jp": ("A1VC38T7YXB528", "fe")}

_LISTINGS = """
SELECT sku, asin, fulfillment, CAST(base_price AS DECIMAL(18,2)) AS base_price,
       CAST(min_price AS DECIMAL(18,2)) AS min_price, CAST(max_price AS DECIMAL(18,2)) AS max_price,
       CAST(NULLIF(shipping, '') AS DECIMAL(18,2)) AS shipping,
       CAST(NULLIF(undercut_percent, '') AS DECIMAL(9,4)) AS undercut_percent,
       CAST(NULLIF(cost, '') AS DECIMAL(18,2)) AS cost, NULLIF(brand, '') AS brand,
       NULLIF(product_type, '') AS product_type, CAST(NULLIF(published_price, '') AS DECIMAL(18,2)) AS published_price
FROM read_csv($path, all_varchar = true, header = true)
"""
_OFFERS = """
SELECT asin, seller_id, CAST(price AS DECIMAL(18,2)) AS price, CAST(shipping AS DECIMAL(18,2)) AS shipping,
       fulfillment, $now::TIMESTAMPTZ - to_hours(CAST(age_hours AS BIGINT)) AS observed_at,
       CAST(NULLIF(is_featured_merchant, '') AS BOOLEAN) AS is_featured_merchant,
       CAST(NULLIF(feedback_rating, '') AS DECIMAL(6,2)) AS feedback_rating,
       CAST(NULLIF(feedback_count, '') AS BIGINT) AS feedback_count
FROM read_csv($path, all_varchar = true, header = true)
"""
_FEES = """
SELECT sku, CAST(referral_rate AS DECIMAL(9,6)) AS referral_rate, CAST(fixed_fee_minor AS BIGINT) AS fixed_fee_minor
FROM read_csv($path, all_varchar = true, header = true)
"""
_NO_OFFERS = """
SELECT NULL::VARCHAR AS asin, NULL::VARCHAR AS seller_id, NULL::DECIMAL(18,2) AS price,
       NULL::DECIMAL(18,2) AS shipping, NULL::VARCHAR AS fulfillment, NULL::TIMESTAMPTZ AS observed_at LIMIT 0
"""


def _channels(pricing: dict, channel: str = "us") -> dict[str, Channel]:
    entries = [
        {"name": name, "seller_id": ME, "marketplace_id": market, "region": region}
        | ({"pricing": pricing} if name == channel else {})
        for name, (market, region) in _MARKETS.items()
        # A configured JPY channel makes a blank-channel amount with cents invalid: only where the case needs one.
        if name != "jp" or channel == "jp"
    ]
    return parse_channels({"channels": entries})


def _variants() -> list:
    cases = []
    for folder in sorted(p for p in GOLDEN.iterdir() if p.is_dir()):
        for variant in yaml.safe_load((folder / "variants.yaml").read_text()):
            cases.append(pytest.param(folder, variant, id=f"{folder.name}-{variant['name']}"))
    return cases


def _shown(minor: int | None, decimals: int) -> str:
    if minor is None:
        return ""
    return str(minor) if decimals == 0 else f"{Decimal(minor) / 100:.2f}"


@pytest.mark.parametrize(("folder", "variant"), _variants())
def test_golden_case(folder: Path, variant: dict):
    name = variant.get("channel", "us")
    channels = _channels(variant.get("pricing") or {}, name)
    channel = channels[name]
    con = duckdb.connect()
    install_money_macros(con)
    con.sql(_LISTINGS, params={"path": str(folder / "listings.csv")}).create("listings")
    if (folder / "offers.csv").exists():
        con.sql(_OFFERS, params={"path": str(folder / "offers.csv"), "now": NOW}).create("offers")
    else:
        con.sql(_NO_OFFERS).create("offers")
    rules = None
    if (folder / "pricing_rules.csv").exists():
        # The seller's file through the real validation: the engine gets the validated table.
        with validated_input(con, "pricing_rules", folder, channels, channel=name) as loaded:
            assert loaded.errors.num_rows == 0, loaded.errors.to_pylist()
        rules = "pricing_rules"
    fees = None
    if (folder / "fees.csv").exists():
        con.sql(_FEES, params={"path": str(folder / "fees.csv")}).create("fees")
        fees = "fees"
    priced = price_with_rules(
        con,
        "listings",
        "offers",
        rules,
        fees,
        seller_id=ME,
        channel=name,
        decimals=channel.decimals,
        pricing=channel.pricing,
        now=NOW,
    )
    got = [
        {
            "sku": sku,
            "price": _shown(price, channel.decimals),
            "outcome": outcome,
            "rule_chain": chain,
            "cost_floor": _shown(floor, channel.decimals),
            "competitor": competitor or "",
        }
        for sku, price, outcome, chain, floor, competitor in priced.order("sku")
        .select("sku, price_minor, outcome, rule_chain, cost_floor_minor, competitor_seller_id")
        .fetchall()
    ]
    expected = pacsv.read_csv(
        folder / variant["expected"],
        convert_options=pacsv.ConvertOptions(
            strings_can_be_null=False,
            column_types=dict.fromkeys(("sku", "price", "outcome", "rule_chain", "cost_floor", "competitor"), "string"),
        ),
    ).to_pylist()
    assert got == expected


def _engine(data: Path, channels: dict[str, Channel], name: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    install_money_macros(con)
    for input_name in INPUTS:
        with validated_input(con, input_name, data, channels, channel=name) as loaded:
            assert loaded.errors.num_rows == 0, loaded.errors.to_pylist()[:3]
    reconcile(
        con, "channel_mappings", "master_inventory", "fba_inventory", allocation=channels[name].allocation
    ).create("reconciled_inventory")
    con.execute(
        "CREATE VIEW listings AS SELECT r.sku, r.asin, r.fulfillment, m.price AS base_price, c.min_price, "
        "c.max_price, c.shipping, c.undercut_percent, m.cost, m.brand, m.product_type, "
        "NULL::DECIMAL(18,2) AS published_price FROM reconciled_inventory r JOIN master_inventory m USING (sku) "
        "JOIN channel_mappings c USING (sku)"
    )
    return con


_COLUMNS = (
    "sku, asin, fulfillment, base_minor, min_minor, max_minor, ship_minor, price_minor, outcome, competitor_seller_id, "
    "competitor_fulfillment, competitor_landed_minor, undercut_percent"
)


@pytest.mark.parametrize(
    "pricing",
    [Pricing(), Pricing(compete_with="fba_only", undercut_percent=Decimal("1.25"), freshness_hours=6)],
    ids=["defaults", "fba_only"],
)
def test_without_rules_prices_equal_the_seed_rule_row_for_row(tmp_path, pricing):
    """A generated seller (competitors, stale and own offers, floors above the undercut, FBA and FBM) on a USD and
    a JPY channel: with no rules file, default_rule true and the default filters, every column of the seed's
    `buybox_prices` is equal, row for row."""
    channels = _channels({}, "jp")
    channels = {name: Channel(**{**vars(ch), "pricing": pricing}) for name, ch in channels.items()}
    generate(tmp_path, 20_000, channels, now=NOW)
    for name in ("us", "jp"):
        con = _engine(tmp_path, channels, name)
        ch = channels[name]
        seed = buybox_prices(
            con, "listings", "competitor_prices", seller_id=ME, decimals=ch.decimals, pricing=pricing, now=NOW
        )
        seed.create("seed")
        rules = price_with_rules(
            con,
            "listings",
            "competitor_prices",
            None,
            None,
            seller_id=ME,
            channel=name,
            decimals=ch.decimals,
            pricing=pricing,
            now=NOW,
        )
        rules.create("rules")
        outcomes = dict(con.sql("SELECT outcome, count(*) FROM seed GROUP BY ALL").fetchall())
        assert set(outcomes) == {"undercut", "at_floor", "at_ceiling", "no_competitor", "unchanged"} or name == "jp"
        assert con.sql("SELECT count(*) FROM seed").fetchall() == con.sql("SELECT count(*) FROM rules").fetchall()
        differ = con.sql(
            f"SELECT * FROM (SELECT {_COLUMNS} FROM seed EXCEPT ALL SELECT {_COLUMNS} FROM rules) "
            f"UNION ALL SELECT * FROM (SELECT {_COLUMNS} FROM rules EXCEPT ALL SELECT {_COLUMNS} FROM seed) LIMIT 5"
        ).fetchall()
        assert differ == [], name
        # An empty rules table is no rules file.
        con.execute("CREATE TABLE no_rules AS SELECT * FROM pricing_rules")
        assert con.sql("SELECT count(*) FROM no_rules").fetchall() == [(0,)]
        empty = price_with_rules(
            con,
            "listings",
            "competitor_prices",
            "no_rules",
            None,
            seller_id=ME,
            channel=name,
            decimals=ch.decimals,
            pricing=pricing,
            now=NOW,
        )
        empty.create("empty_rules")
        assert con.sql(
            f"SELECT count(*) FROM (SELECT {_COLUMNS}, rule_chain FROM rules EXCEPT ALL "
            f"SELECT {_COLUMNS}, rule_chain FROM empty_rules)"
        ).fetchall() == [(0,)]


def test_the_rules_file_reprices_and_the_preview_shows_the_chain(small_seller):
    from tests.pipeline.test_dagster import materialize, query

    (small_seller / "pricing_rules.csv").write_text(
        "rule_id,channel,scope,scope_value,type,value,priority,active\n"
        "R1,us,sku,FBM-1,set_price,11.00,5,true\n"
        "R2,,brand,Acme,cost_floor,50,9,\n"
    )
    result = materialize(small_seller, "us")
    assert result.success
    # FBM-1: cost 6.00, no fee estimate: 6.00 / (1 - 0.50) = 12.00 lifts the 11.00 set by R1
    rows = query(
        small_seller, "us", "SELECT sku, price, rule_chain, cost_floor_minor FROM buybox_prices WHERE sku = 'FBM-1'"
    )
    assert rows == [("FBM-1", Decimal("12.00"), "default:14.42 > R1:11.00 > R2:12.00", 1200)]
    meta = result.asset_materializations_for_node("buybox_prices")[0].metadata
    assert "rule_chain" in meta["preview"].value and "R2:" in meta["preview"].value
    feed = (small_seller / "feeds" / "us" / "POST_FLAT_FILE_PRICEANDQUANTITYONLY_UPDATE_DATA.txt").read_text()
    assert "FBM-1\t12.00\t" in feed


def test_a_bad_rules_row_blocks_its_channel_and_nothing_is_priced(small_seller):
    from tests.pipeline.test_dagster import materialize

    (small_seller / "pricing_rules.csv").write_text(
        "rule_id,channel,scope,scope_value,type,value,priority,active\n"
        "R1,us,sku,FBM-1,set_price,11.005,5,true\n"
        "R2,uk,all,,discount_percent,5,1,true\n"
    )
    result = materialize(small_seller, "us", raise_on_error=False)
    assert not result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [e.check_name for e in failed] == ["pricing_rules_valid"]
    cells = [c.strip() for c in failed[0].metadata["first_problems"].value.splitlines()[-1].split("|")]
    assert cells[1:6] == ["pricing_rules.csv", "2", "value", "11.005", "an amount: at most 2 decimals"]
    assert not result.asset_materializations_for_node("buybox_prices")
    assert not (small_seller / "feeds" / "us").exists()
    assert materialize(small_seller, "uk").success  # the other channel's rules are valid


def test_the_prices_and_inventory_runs_validate_the_rules_file_before_pricing():
    import dagster as dg

    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    assert dg.AssetKey("pricing_rules") in graph.get(dg.AssetKey("buybox_prices")).parent_keys
    for job in ("prices_job", "inventory_job", "channel_pipeline_job"):
        layer = defs.resolve_job_def(job).asset_layer
        assert dg.AssetKey("pricing_rules") in layer.selected_asset_keys, job
        assert "pricing_rules_valid" in {key.name for data in layer.data for key in data.assets_def.check_keys}, job
