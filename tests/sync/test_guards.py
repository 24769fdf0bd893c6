"""The price guards in real Dagster runs against the emulator: max_change_percent holds a SKU at its published price,
and the blocking large-drop check on buybox_prices stops the push unless the run accepts the moves."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from emulator.server import EmulatorServer
from pipelines.partitions import CHANNELS
from resources.spapi_resource import SpApiResource
from resources.warehouse import Warehouse
from tests.sync.helpers import (
    ALL_ASSETS,
    MARKETPLACE,
    control,
    listing,
    materialization,
    query,
    run,
    seller_dir,
    spapi_for,
    start_emulator,
    submit_rows,
)

CHEAP = "A9CHEAPSELLER1"


@pytest.fixture
def seller(tmp_path: Path) -> Path:
    return seller_dir(tmp_path)


def guarded(monkeypatch: pytest.MonkeyPatch, **guards: Any) -> None:
    channel = CHANNELS["us"]
    pricing = dataclasses.replace(channel.pricing, **{k: Decimal(str(v)) for k, v in guards.items()})
    monkeypatch.setitem(CHANNELS, "us", dataclasses.replace(channel, pricing=pricing))


def compete(server: EmulatorServer, asin: str, price: str) -> None:
    offer = {"marketplaceId": MARKETPLACE["us"], "asin": asin, "sellerId": CHEAP, "price": price, "shipping": "0.00"}
    control(server, "POST", "/competitors", json=offer)


def calls(server: EmulatorServer) -> dict[str, int]:
    """What the seller asked the emulator, per operation."""
    return control(server, "GET", "/market")["requests"]["A3DEMOSELLER01"]


def sends(server: EmulatorServer) -> dict[str, int]:
    """How often the seller sent offers to the emulator: patches and feeds (their documents included)."""
    return {op: calls(server).get(op, 0) for op in ("patchListingsItem", "createFeedDocument", "createFeed")}


def prices_run(
    data: Path, spapi: SpApiResource, *, accept: bool = False, push: dict[str, Any] | None = None
) -> dg.ExecuteInProcessResult:
    ops = {
        "buybox_prices": {"config": {"accept_large_moves": accept}},
        "listings_submission": {"config": {"poll_initial_seconds": 0.05, **(push or {})}},
    }
    return dg.materialize(
        ALL_ASSETS,
        partition_key="us",
        resources={"warehouse": Warehouse(data_dir=str(data)), "spapi": spapi},
        run_config={"ops": ops},
        raise_on_error=False,
    )


def large_drops_check(result: dg.ExecuteInProcessResult) -> Any:
    (check,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "no_large_price_drops"]
    return check


def test_a_sku_moving_further_than_max_change_percent_is_held_at_its_published_price(
    seller, tmp_path, emulator_factory, monkeypatch
):
    guarded(monkeypatch, max_change_percent=10)
    server = start_emulator(emulator_factory, seller)
    spapi = spapi_for(server, tmp_path)
    first = run(seller, "us", spapi)
    assert first.success
    assert listing(server, "FBM-1")["price"] == "14.42"  # never published before: no guard
    assert sends(server)["patchListingsItem"] == 5

    compete(server, "B000000002", "5.00")  # FBM-1 would fall to its floor, 10.00: -30.65 %
    compete(server, "B000000007", "19.50")  # SKU ü-7 from 19.99 to 19.40: -2.95 %, within the guard
    second = run(seller, "us", spapi)
    assert second.success
    rows = query(seller, "us", "SELECT sku, price, outcome, published_minor, guard FROM buybox_prices ORDER BY sku")
    by_sku = {sku: rest for sku, *rest in rows}
    assert by_sku["FBM-1"] == [
        Decimal("14.42"),
        "guard_held",
        1442,
        "held at 14.42 instead of 10.00 (-30.65 % from the published 14.42, max_change_percent 10)",
    ]
    assert by_sku["SKU ü-7"][:2] == [Decimal("19.40"), "undercut"] and by_sku["SKU ü-7"][3] is None
    assert materialization(second, "buybox_prices")["outcome_guard_held"] == 1
    # The push never sent FBM-1's new price: Amazon keeps the published one; the SKU within the guard went out.
    assert sends(server) == {"patchListingsItem": 6, "createFeedDocument": 0, "createFeed": 0}
    assert listing(server, "FBM-1")["price"] == "14.42"
    assert listing(server, "SKU ü-7")["price"] == "19.40"
    submits = submit_rows(seller, "us", second.run_id)
    assert submits["FBM-1"] == ("unchanged", None, None) and submits["SKU ü-7"][0] == "accepted"
    held = query(
        seller,
        "us",
        "SELECT sku, status, code, message FROM sync_history WHERE run_id = ? AND operation = 'price'",
        [second.run_id],
    )
    assert held == [("FBM-1", "guard_held", "max_change_percent", by_sku["FBM-1"][3])]
    history = materialization(second, "sync_history")
    assert history["status_guard_held"] == 1 and "| price | guard_held | 1 |" in history["outcomes"]
    assert query(seller, "us", "SELECT price_minor FROM published_state WHERE sku = 'FBM-1'") == [(1442,)]


def test_a_large_drop_blocks_the_push_until_the_run_accepts_it(seller, tmp_path, emulator_factory):
    server = start_emulator(emulator_factory, seller)
    spapi = spapi_for(server, tmp_path)
    assert run(seller, "us", spapi).success
    assert sends(server) == {"patchListingsItem": 5, "createFeedDocument": 0, "createFeed": 0}

    # Three of the five priced SKUs would drop by more than 20 % (the default large_move_share is 0.2).
    for asin in ("B000000002", "B000000004", "B000000007"):
        compete(server, asin, "5.00")
    blocked = prices_run(seller, spapi, push={"feed_threshold": 0})
    assert not blocked.success
    check = large_drops_check(blocked)
    assert not check.passed
    assert "3 of 5 priced SKU(s) would drop by more than 20 % (share 0.6000)" in check.description
    meta = {k: v.value for k, v in check.metadata.items()}
    assert (meta["large_drops"], meta["priced"], meta["share"], meta["accept_large_moves"]) == (3, 5, 0.6, False)
    assert (meta["large_move_percent"], meta["large_move_share"]) == ("20", "0.2")
    assert "| SKU ü-7 | 19.99 | 10.00 |" in meta["examples"] and "| FBM-1 | 14.42 | 10.00 |" in meta["examples"]
    # Nothing ran after the prices: no feed written, nothing submitted, Amazon still shows the published prices.
    done = {e.asset_key.to_user_string() for e in blocked.get_asset_materialization_events()}
    assert "buybox_prices" in done and not done & {"listings_feed", "listings_submission", "price_quantity_feed"}
    assert sends(server) == {"patchListingsItem": 5, "createFeedDocument": 0, "createFeed": 0}
    assert listing(server, "FBM-1")["price"] == "14.42"
    assert query(seller, "us", "SELECT count(*) FROM sync_history WHERE run_id = ?", [blocked.run_id]) == [(0,)]

    accepted = prices_run(seller, spapi, accept=True, push={"feed_threshold": 0})
    assert accepted.success
    check = large_drops_check(accepted)
    assert check.passed and check.metadata["accept_large_moves"].value is True
    assert check.metadata["large_drops"].value == 3
    assert "accepted for this run (accept_large_moves: true)" in check.description
    assert sends(server) == {"patchListingsItem": 5, "createFeedDocument": 1, "createFeed": 1}
    assert listing(server, "FBM-1")["price"] == "10.00" and listing(server, "SKU ü-7")["price"] == "10.00"


def test_the_default_share_lets_one_large_drop_of_five_through(seller, tmp_path, emulator_factory):
    server = start_emulator(emulator_factory, seller)
    spapi = spapi_for(server, tmp_path)
    assert run(seller, "us", spapi).success
    compete(server, "B000000002", "5.00")  # one SKU of five: a share of 0.2 is not more than 0.2
    result = prices_run(seller, spapi)
    assert result.success
    check = large_drops_check(result)
    assert check.passed and check.metadata["large_drops"].value == 1
    assert listing(server, "FBM-1")["price"] == "10.00"
