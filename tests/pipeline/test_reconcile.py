"""FBA is channel_wins, FBM is master_wins, an explicit strategy overrides."""

import duckdb
import pyarrow as pa

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


def test_unmapped_and_unknown_skus_are_left_out():
    rows = run(
        [mapping("NO-ASIN", "FBM", asin=None), mapping("NOT-IN-MASTER", "FBM")],
        [stock("NO-ASIN", 1)],
        [],
    )
    assert rows == {}
