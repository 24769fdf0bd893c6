"""The guards as pure DuckDB steps (pricing.guards) and their settings in the channels config."""

from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest

from pricing.guards import hold_large_changes, large_drops, published_prices
from pricing.money import install_money_macros
from seller.config import ChannelConfigError, Pricing, parse_channels

D = Decimal
PRICED = pa.schema(
    [
        ("sku", pa.string()),
        ("asin", pa.string()),
        ("price_minor", pa.int64()),
        ("min_minor", pa.int64()),
        ("max_minor", pa.int64()),
        ("outcome", pa.string()),
    ]
)
PUBLISHED = pa.schema([("sku", pa.string()), ("price_minor", pa.int64())])


def connect(priced: list[tuple], published: list[tuple], chain: bool = False) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    install_money_macros(con)
    names = PRICED.names
    table = pa.Table.from_pylist([dict(zip(names, row, strict=True)) for row in priced], schema=PRICED)
    if chain:
        table = table.append_column("rule_chain", pa.array([f"default:{row[2]}" for row in priced], pa.string()))
    con.register("priced", table)
    con.register("published", pa.Table.from_pylist([{"sku": s, "price_minor": p} for s, p in published], PUBLISHED))
    return con


def guard(priced, published, decimals=2, chain=False, **settings) -> dict[str, dict]:
    con = connect(priced, published, chain)
    pricing = Pricing(**{k: D(str(v)) for k, v in settings.items()})
    rel = hold_large_changes(con, "priced", "published", pricing=pricing, decimals=decimals)
    return {row["sku"]: row for row in rel.to_arrow_table().to_pylist()}


# sku, asin, new price, floor, ceiling, pricing's outcome
ROWS = [
    ("DOWN", "B1", 1000, 500, 3000, "undercut"),  # published 20.00: -50 %
    ("UP", "B2", 2300, 500, 3000, "at_ceiling"),  # published 20.00: +15 %
    ("EDGE", "B3", 1800, 500, 3000, "undercut"),  # published 20.00: exactly -10 %
    ("NEAR", "B4", 1950, 500, 3000, "undercut"),  # published 20.00: -2.5 %
    ("NEW", "B5", 100, 50, 3000, "no_competitor"),  # never published
]
PUBLISHED_20 = [("DOWN", 2000), ("UP", 2000), ("EDGE", 2000), ("NEAR", 2000)]


def test_a_sku_moving_further_than_max_change_percent_is_held_at_its_published_price():
    rows = guard(ROWS, PUBLISHED_20, max_change_percent=10)
    assert {sku: (r["price_minor"], r["outcome"]) for sku, r in rows.items()} == {
        "DOWN": (2000, "guard_held"),
        "UP": (2000, "guard_held"),
        "EDGE": (1800, "undercut"),  # exactly the limit is allowed
        "NEAR": (1950, "undercut"),
        "NEW": (100, "no_competitor"),  # never published: no guard
    }
    assert rows["DOWN"]["guard"] == (
        "held at 20.00 instead of 10.00 (-50.00 % from the published 20.00, max_change_percent 10)"
    )
    assert rows["UP"]["guard"] == (
        "held at 20.00 instead of 23.00 (15.00 % from the published 20.00, max_change_percent 10)"
    )
    assert [rows[s]["guard"] for s in ("EDGE", "NEAR", "NEW")] == [None, None, None]
    assert {sku: r["published_minor"] for sku, r in rows.items()} == {
        "DOWN": 2000,
        "UP": 2000,
        "EDGE": 2000,
        "NEAR": 2000,
        "NEW": None,
    }


def test_the_guard_compares_exactly_with_a_fractional_percent():
    # 2.5 % of 19.99 is 0.49975: a move of 0.49 stays, 0.50 is held.
    rows = guard(
        [("IN", "B1", 1950, 100, 3000, "undercut"), ("OUT", "B2", 1949, 100, 3000, "undercut")],
        [("IN", 1999), ("OUT", 1999)],
        max_change_percent="2.5",
    )
    assert (rows["IN"]["outcome"], rows["OUT"]["outcome"], rows["OUT"]["price_minor"]) == (
        "undercut",
        "guard_held",
        1999,
    )


def test_a_published_price_outside_the_limits_now_is_clamped_and_said_so():
    rows = guard(
        [("LOW", "B1", 3000, 2500, 4000, "undercut"), ("HIGH", "B2", 1000, 500, 1500, "at_floor")],
        [("LOW", 2000), ("HIGH", 2000)],
        max_change_percent=10,
    )
    assert (rows["LOW"]["price_minor"], rows["LOW"]["outcome"]) == (2500, "guard_held")
    assert rows["LOW"]["guard"].endswith("; the published price is below min_price now: clamped")
    assert rows["LOW"]["guard"].startswith("held at 25.00 instead of 30.00 (50.00 % from the published 20.00")
    assert (rows["HIGH"]["price_minor"], rows["HIGH"]["outcome"]) == (1500, "guard_held")
    assert rows["HIGH"]["guard"].endswith("; the published price is above max_price now: clamped")


def test_the_rule_chain_records_the_guard_and_its_clamp():
    rows = guard(
        [("HELD", "B1", 1000, 500, 3000, "undercut"), ("CLAMP", "B2", 3000, 2500, 4000, "undercut")],
        [("HELD", 2000), ("CLAMP", 2000)],
        chain=True,
        max_change_percent=10,
    )
    assert rows["HELD"]["rule_chain"] == "default:1000 > guard:20.00"
    assert rows["CLAMP"]["rule_chain"] == "default:3000 > guard:20.00 > clamp:25.00"


def test_jpy_has_no_minor_unit():
    rows = guard([("Y", "B1", 1500, 100, 9000, "undercut")], [("Y", 2000)], decimals=0, max_change_percent=10)
    assert rows["Y"]["price_minor"] == 2000
    assert (
        rows["Y"]["guard"] == "held at 2000 instead of 1500 (-25.00 % from the published 2000, max_change_percent 10)"
    )


def test_the_defaults_change_no_price_and_no_outcome():
    rows = guard(ROWS, PUBLISHED_20)
    assert {sku: (r["price_minor"], r["outcome"], r["guard"]) for sku, r in rows.items()} == {
        sku: (price, outcome, None) for sku, _, price, _, _, outcome in ROWS
    }


def test_before_the_first_push_nothing_is_published():
    con = duckdb.connect()
    assert published_prices(con, set()).fetchall() == []
    con.execute("CREATE TABLE published_state (sku VARCHAR, price_minor BIGINT)")
    con.execute("INSERT INTO published_state VALUES ('A', 1999), ('B', NULL)")
    assert published_prices(con, {"published_state"}).fetchall() == [("A", 1999)]


def drops(priced, published, **settings):
    con = connect(priced, published)
    pricing = Pricing(**{k: D(str(v)) for k, v in settings.items()})
    rel = hold_large_changes(con, "priced", "published", pricing=pricing, decimals=2)
    con.register("prices", rel)
    return large_drops(con, "prices", pricing=pricing, decimals=2)


def test_large_drops_count_against_the_published_price_largest_first():
    found = drops(ROWS, [*PUBLISHED_20, ("NEW", 2000)])  # NEW: -95 %
    assert (found.priced, found.dropped, found.share) == (5, 2, D("0.4"))
    assert found.examples == [("NEW", D("20.00"), D("1.00")), ("DOWN", D("20.00"), D("10.00"))]
    assert found.too_many
    assert drops(ROWS, PUBLISHED_20, large_move_share="0.4").too_many is False  # 2 of 5 is not more than 0.4
    # A SKU held by max_change_percent does not drop.
    held = drops(ROWS, [*PUBLISHED_20, ("NEW", 2000)], max_change_percent=50)
    assert (held.dropped, held.examples) == (1, [("DOWN", D("20.00"), D("10.00"))])


def test_a_drop_of_exactly_large_move_percent_is_not_large():
    found = drops([("A", "B1", 800, 1, 3000, "undercut")], [("A", 1000)], large_move_percent=20)
    assert (found.dropped, found.too_many) == (0, False)
    found = drops([("A", "B1", 799, 1, 3000, "undercut")], [("A", 1000)], large_move_percent=20)
    assert (found.dropped, found.too_many) == (1, True)


def entry(**pricing):
    base = {"name": "us", "seller_id": "A3DEMOSELLER01", "marketplace_id": "ATVPDKIKX0DER", "region": "na"}
    return {**base, "pricing": pricing}


def test_guard_settings_default_and_parse():
    default = parse_channels({"channels": [entry()]})["us"].pricing
    assert (default.max_change_percent, default.large_move_percent, default.large_move_share) == (None, 20, D("0.2"))
    pricing = parse_channels(
        {"channels": [entry(max_change_percent=12.5, large_move_percent=30, large_move_share="0.05")]}
    )["us"].pricing
    assert (pricing.max_change_percent, pricing.large_move_percent, pricing.large_move_share) == (
        D("12.5"),
        D(30),
        D("0.05"),
    )
    assert parse_channels({"channels": [entry(max_change_percent=None)]})["us"].pricing.max_change_percent is None


@pytest.mark.parametrize(
    ("pricing", "message"),
    [
        ({"max_change_percent": 0}, "pricing.max_change_percent must be > 0"),
        ({"max_change_percent": "ten"}, "pricing.max_change_percent must be a number with ≤ 4 decimals, not 'ten'"),
        ({"max_change_percent": 1.23456}, "pricing.max_change_percent must be a number with ≤ 4 decimals"),
        ({"large_move_percent": 0}, "pricing.large_move_percent must be a percent in (0, 100]"),
        ({"large_move_percent": 150}, "pricing.large_move_percent must be a percent in (0, 100]"),
        ({"large_move_percent": None}, "pricing.large_move_percent must be a number"),
        ({"large_move_share": 1.5}, "pricing.large_move_share must be a fraction of the priced SKUs in [0, 1]"),
        ({"large_move_share": True}, "pricing.large_move_share must be a number"),
    ],
)
def test_invalid_guard_settings_name_the_channel_and_the_field(pricing, message):
    with pytest.raises(ChannelConfigError) as err:
        parse_channels({"channels": [entry(**pricing)]}, source="channels.yaml")
    assert str(err.value).startswith("channels.yaml: channel entry 1 ('us'): ")
    assert message in str(err.value)
