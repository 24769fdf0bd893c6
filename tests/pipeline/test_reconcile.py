"""FBA is channel_wins, FBM is master_wins, an explicit strategy overrides."""

from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest

from seller.config import Allocation
from seller.inputs import unknown_skus
from seller.reconcile import reconcile


def run(mappings, master, fba):
    con = duckdb.connect()
    con.register("m", pa.Table.from_pylist(mappings))
    con.register("inv", pa.Table.from_pylist(master))
    con.register(
        "f", pa.Table.from_pylist(fba, schema=pa.schema([("sku", pa.string()), ("fulfillable_quantity", pa.int64())]))
    )
    rows = reconcile(con, "m", "inv", "f").to_arrow_table().to_pylist()
    return {r["sku"]: r for r in rows}


def mapping(sku, fulfillment, strategy=None, asin="B000000001"):
    return {"channel": "us", "sku": sku, "asin": asin, "fulfillment": fulfillment, "conflict_strategy": strategy}


def stock(sku, quantity, handling=2):
    return {"sku": sku, "quantity": quantity, "handling_time_days": handling}


def test_defaults_and_overrides():
    rows = run(
        [
            mapping("FBA", "FBA"),
            mapping("FBM", "FBM"),
            mapping("FBA-MASTER", "FBA", "master_wins"),
            mapping("FBM-CHANNEL", "FBM", "channel_wins"),
            mapping("FBA-UNKNOWN", "FBA"),
        ],
        [stock("FBA", 10), stock("FBM", 7), stock("FBA-MASTER", 3), stock("FBM-CHANNEL", 4), stock("FBA-UNKNOWN", 6)],
        [
            {"sku": "FBA", "fulfillable_quantity": 42},
            {"sku": "FBA-MASTER", "fulfillable_quantity": 9},
            {"sku": "FBM-CHANNEL", "fulfillable_quantity": 2},
        ],
    )
    got = {
        sku: (r["conflict_strategy"], r["quantity"], r["quantity_source"], r["master_updated"], r["publish_quantity"])
        for sku, r in rows.items()
    }
    assert got == {
        "FBA": ("channel_wins", 42, "channel", True, False),  # Amazon's figure becomes the master's
        "FBM": ("master_wins", 7, "master", False, True),
        "FBA-MASTER": ("master_wins", 3, "master", False, False),  # FBA stock is never pushed
        "FBM-CHANNEL": ("channel_wins", 2, "channel", True, False),
        "FBA-UNKNOWN": ("channel_wins", 6, "master", False, False),  # no Amazon figure yet: keep the master's
    }


def test_unmapped_skus_are_left_out_and_unknown_skus_are_reported_not_dropped():
    """Neither has a quantity to publish. A mapping whose SKU the master lacks used to vanish here without a trace;
    it is now a WARNING on its own row of channel_mappings (and `master_missing` in sync_history)."""
    mappings = [{**mapping("NO-ASIN", "FBM", asin=None), "_row": 2}, {**mapping("NOT-IN-MASTER", "FBM"), "_row": 3}]
    rows = run(mappings, [stock("NO-ASIN", 1)], [])
    assert rows == {}
    con = duckdb.connect()
    con.register("m", pa.Table.from_pylist(mappings))
    con.register("inv", pa.Table.from_pylist([stock("NO-ASIN", 1)]))
    assert unknown_skus(con, "m", "inv", "channel_mappings.csv").to_pylist() == [
        {
            "file": "channel_mappings.csv",
            "row": 3,
            "column": "sku",
            "value": "NOT-IN-MASTER",
            "message": "not in master_inventory",
            "channel": "us",
            "severity": "warning",
        }
    ]


def run_with_reservations(mappings, master, fba, held):
    con = duckdb.connect()
    con.register("m", pa.Table.from_pylist(mappings))
    con.register("inv", pa.Table.from_pylist(master))
    con.register(
        "f", pa.Table.from_pylist(fba, schema=pa.schema([("sku", pa.string()), ("fulfillable_quantity", pa.int64())]))
    )
    con.register(
        "r", pa.Table.from_pylist(held, schema=pa.schema([("sku", pa.string()), ("reserved_quantity", pa.int64())]))
    )
    return {r["sku"]: r for r in reconcile(con, "m", "inv", "f", "r").to_arrow_table().to_pylist()}


def test_open_reservations_reduce_fbm_quantities_never_below_zero():
    rows = run_with_reservations(
        [mapping("FBM", "FBM"), mapping("FBM-OVER", "FBM"), mapping("FBM-FREE", "FBM"), mapping("FBA", "FBA")],
        [stock("FBM", 7), stock("FBM-OVER", 2), stock("FBM-FREE", 4), stock("FBA", 10)],
        [{"sku": "FBA", "fulfillable_quantity": 42}],
        [
            {"sku": "FBM", "reserved_quantity": 2},
            {"sku": "FBM", "reserved_quantity": 1},  # summed per SKU
            {"sku": "FBM-OVER", "reserved_quantity": 5},
            {"sku": "FBA", "reserved_quantity": 3},
        ],
    )
    got = {sku: (r["quantity"], r["reserved_quantity"], r["publish_quantity"]) for sku, r in rows.items()}
    assert got == {
        "FBM": (4, 3, True),
        "FBM-OVER": (0, 5, True),  # over-reserved: 0, never negative
        "FBM-FREE": (4, 0, True),
        "FBA": (42, 0, False),  # Amazon's figure already counts its own orders
    }


def test_without_reservations_nothing_is_reserved():
    rows = run([mapping("FBM", "FBM")], [stock("FBM", 7)], [])
    assert (rows["FBM"]["quantity"], rows["FBM"]["reserved_quantity"]) == (7, 0)


def allocate(available, allocation=None, held=0, overrides=None, fulfillment="FBM", strategy=None):
    """The quantity reconcile gives one SKU with `available` master units, `held` reserved."""
    row = {**mapping("SKU", fulfillment, strategy), **(overrides or {})}
    con = duckdb.connect()
    con.register("m", pa.Table.from_pylist([row]))
    con.register("inv", pa.Table.from_pylist([stock("SKU", available)]))
    con.register(
        "f", pa.Table.from_pylist([], schema=pa.schema([("sku", pa.string()), ("fulfillable_quantity", pa.int64())]))
    )
    con.register("r", pa.Table.from_pylist([{"sku": "SKU", "reserved_quantity": held}]))
    (got,) = reconcile(con, "m", "inv", "f", "r", allocation=allocation).to_arrow_table().to_pylist()
    return got


@pytest.mark.parametrize(
    ("available", "allocation", "quantity"),
    [
        (7, Allocation(), 7),  # the defaults show everything
        (7, Allocation(allocation_percent=Decimal(50)), 3),  # 3.5 rounded down
        (3, Allocation(allocation_percent=Decimal("33.33")), 0),  # 0.9999 rounded down
        (100, Allocation(allocation_percent=Decimal(57)), 57),  # 100 x 0.57 is 56.99999999999999 as binary floats
        (100, Allocation(allocation_percent=Decimal(29)), 29),  # 28.999999999999996 as binary floats
        (10**12, Allocation(allocation_percent=Decimal("99.99")), 999_900_000_000),  # no overflow, exact
        (5, Allocation(safety_buffer=2), 3),
        (5, Allocation(safety_buffer=9), 0),  # buffer larger than the stock: 0, never negative
        (5, Allocation(safety_buffer=5), 0),
        (50, Allocation(max_quantity=10), 10),
        (5, Allocation(max_quantity=10), 5),
        (50, Allocation(max_quantity=0), 0),
        (50, Allocation(allocation_percent=Decimal(0)), 0),
        (0, Allocation(allocation_percent=Decimal(0)), 0),
        # buffer first, then the share of what is left, then the cap: (20 - 4) x 75 % = 12, capped at 10
        (20, Allocation(safety_buffer=4, allocation_percent=Decimal(75), max_quantity=10), 10),
        (20, Allocation(safety_buffer=4, allocation_percent=Decimal(75), max_quantity=13), 12),
    ],
)
def test_allocation_arithmetic(available, allocation, quantity):
    got = allocate(available, allocation)
    assert (got["quantity"], got["available_quantity"]) == (quantity, available)
    assert not isinstance(got["quantity"], float)


def test_allocation_applies_after_the_sellers_reservations():
    # (10 - 3 reserved) = 7 available; - 1 buffer = 6; x 50 % = 3
    got = allocate(10, Allocation(safety_buffer=1, allocation_percent=Decimal(50)), held=3)
    assert (got["available_quantity"], got["reserved_quantity"], got["quantity"]) == (7, 3, 3)
    # over-reserved: 0 available, the buffer cannot make it negative
    assert allocate(2, Allocation(safety_buffer=1), held=5)["quantity"] == 0


@pytest.mark.parametrize(
    ("overrides", "quantity"),
    [
        ({"safety_buffer": None, "max_quantity": None, "allocation_percent": None}, 4),  # NULL: the channel's
        ({"safety_buffer": 0, "max_quantity": None, "allocation_percent": None}, 5),  # 10 x 50 %
        ({"safety_buffer": None, "max_quantity": 2, "allocation_percent": None}, 2),
        ({"safety_buffer": None, "max_quantity": None, "allocation_percent": Decimal("12.50")}, 1),  # 9 x 12.5 %
        ({"safety_buffer": 0, "max_quantity": 100, "allocation_percent": Decimal(100)}, 10),
        ({"allocation_percent": Decimal(0)}, 0),  # only one column in the relation
    ],
)
def test_a_mappings_own_settings_override_the_channels(overrides, quantity):
    channel = Allocation(safety_buffer=1, allocation_percent=Decimal(50))
    assert allocate(10, channel, overrides=overrides)["quantity"] == quantity


@pytest.mark.parametrize(("fulfillment", "strategy"), [("FBA", None), ("FBM", "channel_wins"), ("FBA", "master_wins")])
def test_allocation_leaves_unpublished_quantities_alone(fulfillment, strategy):
    got = allocate(
        10,
        Allocation(safety_buffer=3, allocation_percent=Decimal(10), max_quantity=1),
        fulfillment=fulfillment,
        strategy=strategy,
    )
    assert (got["publish_quantity"], got["quantity"]) == (False, 10)
