"""Allocation (safety_buffer, allocation_percent, max_quantity) on a seller's files: the feed documents against golden
files, the per-SKU overrides' validation and the unified-region rule (one figure per SKU per seller and region)."""

import shutil
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from assets.inputs import input_assets
from assets.inventory import reconciled_inventory
from pipelines.partitions import CHANNELS
from resources.spapi_resource import SpApiResource
from resources.warehouse import Warehouse
from seller.config import load_channels
from seller.inputs import load_input, validated_input
from tests.pipeline.engine import channel_engine, documents

ALLOCATION = Path(__file__).parent.parent / "data" / "allocation"
GOLDEN = Path(__file__).parent.parent / "golden" / "allocation"
NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)

# us: safety_buffer 1, 50 %, at most 4. uk and de (one EU account): safety_buffer 2, 75 %, no cap.
EXPECTED = {
    "us": {
        "FBM-1": 3,  # (7 - 1) x 50 % = 3
        "FBM-ODD": 4,  # (10 - 1) x 50 % = 4.5, rounded down
        "FBM-BIG": 4,  # (100 - 1) x 50 % = 49, capped at 4
        "FBM-LOW": 0,  # the buffer takes the only unit
        "FBM-OVR": 6,  # the row's own settings: buffer 0, 33.33 %, at most 10: 20 x 33.33 % = 6.666
        "FBM-ZERO": 0,  # the row's allocation_percent 0
    },
    "uk": {"FBM-1": 3, "FBM-BIG": 73, "FBM-LOW": 0, "FBM-OVR": 20},  # 5 x 75 % = 3.75; 98 x 75 % = 73.5; 100 %
    "de": {"FBM-1": 3, "FBM-ODD": 4, "FBM-BIG": 73, "FBM-LOW": 0, "FBM-OVR": 20},  # FBM-ODD on de only: 8 x 50 %
}


@pytest.fixture
def allocation_channels():
    return load_channels(ALLOCATION / "channels.yaml")


@pytest.fixture
def allocation_seller(tmp_path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(ALLOCATION, data, ignore=shutil.ignore_patterns("*.yaml"))
    return data


def rewrite(path, old, new):
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


@pytest.mark.parametrize("channel", ["us", "uk", "de"])
def test_allocated_fbm_quantities(allocation_seller, allocation_channels, channel):
    con = channel_engine(allocation_seller, allocation_channels, channel, NOW)
    rows = dict(con.execute("SELECT sku, quantity FROM updates").fetchall())
    assert rows.pop("FBA-1") is None  # FBA: Amazon's figure, never sent, never allocated
    assert rows == EXPECTED[channel]


@pytest.mark.parametrize("channel", ["us", "uk", "de"])
def test_allocation_feeds_match_golden_files_byte_for_byte(allocation_seller, allocation_channels, channel):
    produced = documents(
        channel_engine(allocation_seller, allocation_channels, channel, NOW), allocation_channels[channel]
    )
    golden = {p.name.removeprefix(f"{channel}-"): p.read_bytes() for p in GOLDEN.glob(f"{channel}-*")}
    assert sorted(produced) == sorted(golden)
    for name, data in produced.items():
        assert data == golden[name], name


def test_reconciled_inventory_asset_applies_the_channels_allocation(
    allocation_seller, allocation_channels, monkeypatch
):
    """The Dagster asset reads the partition's channel from the config: us with its allocation."""
    monkeypatch.setitem(CHANNELS, "us", allocation_channels["us"])
    spapi = SpApiResource(
        client_id="offline",
        client_secret="offline",
        refresh_token="offline",
        state_dir=str(allocation_seller / "spapi"),
    )
    result = dg.materialize(
        [*input_assets, reconciled_inventory],
        partition_key="us",
        resources={"warehouse": Warehouse(data_dir=str(allocation_seller)), "spapi": spapi},
        run_config={"ops": {n: {"config": {"offline": True}} for n in ("fba_inventory", "competitor_prices")}},
    )
    assert result.success
    con = duckdb.connect(str(allocation_seller / "warehouse" / "us.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT sku, available_quantity, quantity FROM reconciled_inventory WHERE publish_quantity")
        got = {sku: (available, quantity) for sku, available, quantity in rows.fetchall()}
    finally:
        con.close()
    assert {sku: quantity for sku, (_, quantity) in got.items()} == EXPECTED["us"]
    assert got["FBM-BIG"] == (100, 4)
    (materialization,) = result.asset_materializations_for_node("reconciled_inventory")
    assert materialization.metadata["allocation"].value == "safety_buffer 1, allocation_percent 50, max_quantity 4"
    # 4 + 6 + 96 + 1 + 14 + 9 units available but not shown on us
    assert materialization.metadata["units_held_back_by_allocation"].value == 130


def test_the_channels_of_a_unified_account_publish_one_figure_per_sku(allocation_seller, allocation_channels):
    """uk and de are one EU account: the SKUs both list carry the same quantity in every document (the last
    quantity sent wins on Amazon, so two figures would flip each other)."""

    def quantities(channel):
        con = channel_engine(allocation_seller, allocation_channels, channel, NOW)
        return dict(con.execute("SELECT sku, quantity FROM updates WHERE quantity IS NOT NULL").fetchall())

    uk, de = quantities("uk"), quantities("de")
    assert {sku: de[sku] for sku in uk} == uk


def test_blank_override_columns_change_nothing(small_seller, channels):
    """The small seller with the three override columns present but blank: the existing golden files, byte for
    byte (a blank cell is the channel's setting; the repository's channels have none)."""
    path = small_seller / "channel_mappings.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines = [lines[0] + ",safety_buffer,max_quantity,allocation_percent", *(line + ",,," for line in lines[1:])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    golden_dir = GOLDEN.parent
    for channel in ("us", "uk"):
        produced = documents(channel_engine(small_seller, channels, channel, NOW), channels[channel])
        golden = {p.name.removeprefix(f"{channel}-"): p.read_bytes() for p in golden_dir.glob(f"{channel}-*")}
        assert produced == golden


@pytest.mark.parametrize(
    ("new", "column", "message"),
    [
        ("-1,10,33.33", "safety_buffer", "negative quantity (must be ≥ 0)"),
        ("0,1.5,33.33", "max_quantity", "not a whole number"),
        ("0,10,33.333", "allocation_percent", "not a percentage in [0, 100] with at most 2 decimals"),
        ("0,10,100.01", "allocation_percent", "not a percentage in [0, 100] with at most 2 decimals"),
        ("0,10,-5", "allocation_percent", "not a percentage in [0, 100] with at most 2 decimals"),
    ],
)
def test_bad_override_is_reported_with_file_row_column(allocation_seller, allocation_channels, new, column, message):
    rewrite(allocation_seller / "channel_mappings.csv", "0,10,33.33", new)
    errors = load_input("channel_mappings", allocation_seller, allocation_channels).errors.to_pylist()
    assert [(e["file"], e["row"], e["column"], e["message"], e["channel"]) for e in errors] == [
        ("channel_mappings.csv", 7, column, message, "us")
    ]


REASON = (
    " (a blank cell is the channel's setting); channels of one seller in one region publish one quantity per SKU on "
    "Amazon (a unified account: the last quantity sent wins), so their allocation for a SKU must be equal"
)


def test_different_overrides_in_one_unified_account_are_refused_on_both_rows(allocation_seller, allocation_channels):
    rewrite(
        allocation_seller / "channel_mappings.csv",
        "de,FBM-OVR,B000000006,FBM,,5.00,10.00,,,0,,100.00",
        "de,FBM-OVR,B000000006,FBM,,5.00,10.00,,,0,,90",
    )
    errors = load_input("channel_mappings", allocation_seller, allocation_channels).errors.to_pylist()
    assert errors == [
        {
            "file": "channel_mappings.csv",
            "row": 13,
            "column": "allocation_percent",
            "value": "100",
            "message": "differs from row 19 (channel de): 100.00 here, 90.00 there" + REASON,
            "channel": "uk",
            "severity": "error",
        },
        {
            "file": "channel_mappings.csv",
            "row": 19,
            "column": "allocation_percent",
            "value": "90",
            "message": "differs from row 13 (channel uk): 90.00 here, 100.00 there" + REASON,
            "channel": "de",
            "severity": "error",
        },
    ]


def test_a_blank_cell_is_compared_as_the_channels_setting(allocation_seller, allocation_channels):
    """uk's FBM-1 has a blank safety_buffer (uk's setting: 2); de's row says 3. Validating only uk's rows (what the
    channel's asset does) still sees de's row, and blocks uk."""
    rewrite(
        allocation_seller / "channel_mappings.csv",
        "de,FBM-1,B000000002,FBM,,10.00,25.00,,,2,,",
        "de,FBM-1,B000000002,FBM,,10.00,25.00,,,3,,",
    )
    con = duckdb.connect()
    with validated_input(con, "channel_mappings", allocation_seller, allocation_channels, channel="uk") as loaded:
        errors = loaded.errors_for("uk").to_pylist()
        skus = [r[0] for r in con.execute("SELECT sku FROM channel_mappings ORDER BY _row").fetchall()]
    assert [(e["row"], e["column"], e["value"], e["message"], e["channel"]) for e in errors] == [
        (10, "safety_buffer", "", "differs from row 15 (channel de): 2 here, 3 there" + REASON, "uk")
    ]
    assert "FBM-1" not in skus


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # another region (us is alone in na): its own figure
        ("us,FBM-1,B000000002,FBM,,10.00,25.00,1.50,,,,", "us,FBM-1,B000000002,FBM,,10.00,25.00,1.50,,7,,"),
        # de's row is FBA / channel_wins: no quantity is sent from it, nothing to disagree with
        ("de,FBM-1,B000000002,FBM,,10.00,25.00,,,2,,", "de,FBM-1,B000000002,FBA,,10.00,25.00,,,3,,"),
        ("de,FBM-1,B000000002,FBM,,10.00,25.00,,,2,,", "de,FBM-1,B000000002,FBM,channel_wins,10.00,25.00,,,3,,"),
        # de's row has no ASIN: not listed there
        ("de,FBM-1,B000000002,FBM,,10.00,25.00,,,2,,", "de,FBM-1,,FBM,,10.00,25.00,,,3,,"),
    ],
)
def test_overrides_that_publish_nothing_shared_may_differ(allocation_seller, allocation_channels, old, new):
    rewrite(allocation_seller / "channel_mappings.csv", old, new)
    assert load_input("channel_mappings", allocation_seller, allocation_channels).errors.to_pylist() == []
