"""Stock is the seller's, not the channel's (issue 11), end to end: one seller with two channels (us, uk) and one FBM
SKU with 10 units in the master. A buyer orders 4 on us; the ORDER_CHANGE goes from the emulator to a moto SQS queue,
the real `sqs_notifications_sensor` stores it, and the next run of EACH channel publishes 6: the emulator's listing
shows 6 in both marketplaces and no quantity above 6 reached Amazon for the SKU on either channel after the order was
ingested (read from a wiretap of every request that reached the emulator, patches and feed documents alike)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg
import pytest

from assets.orders import reservations
from pipelines.partitions import CHANNELS
from reliability.invariants import sent_to_amazon
from reliability.wiretap import Wiretap
from resources.warehouse import Warehouse
from tests.notifications.helpers import SELLER, enable, run_sensor
from tests.sync.helpers import ALL_ASSETS, MARKETPLACE, control, listing, query, spapi_for, start_emulator

SKU = "FBM-X"


def seller_files(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "master_inventory.csv").write_text(
        f"sku,quantity,price,handling_time_days,brand,title,product_type\n{SKU},10,20.00,2,Acme,Acme Lamp,PRODUCT\n",
        encoding="utf-8",
    )
    (data / "channel_mappings.csv").write_text(
        "channel,sku,asin,fulfillment,conflict_strategy,min_price,max_price,shipping,undercut_percent\n"
        f"us,{SKU},B00000X001,FBM,,10.00,30.00,0,\n"
        f"uk,{SKU},B00000X001,FBM,,10.00,30.00,0,\n",
        encoding="utf-8",
    )
    # The seller wrote the master file two hours ago: an order placed now is not in its figure yet.
    written = time.time() - 7200
    os.utime(data / "master_inventory.csv", (written, written))
    return data


def run(data: Path, channel: str, spapi) -> dg.ExecuteInProcessResult:
    config = {"poll_initial_seconds": 0.05}
    return dg.materialize(
        [reservations, *ALL_ASSETS],
        partition_key=channel,
        resources={"warehouse": Warehouse(data_dir=str(data)), "spapi": spapi},
        run_config={"ops": {"listings_submission": {"config": config}}},
    )


def quantities_sent(tap: Wiretap, channel: str, since: int) -> list[int]:
    return [int(o["quantity"]) for o in sent_to_amazon(tap, MARKETPLACE[channel], since) if o["sku"] == SKU]


@pytest.mark.parametrize(
    "uk_published_before", [True, False], ids=["uk-published-before-the-order", "uk-first-published-after"]
)
def test_an_order_on_one_channel_reserves_the_sellers_stock_on_every_channel(
    tmp_path, emulator_factory, sqs_env, instance, uk_published_before
):
    assert CHANNELS["us"].seller_id == CHANNELS["uk"].seller_id == SELLER  # one seller, two channels
    data = seller_files(tmp_path)
    server = start_emulator(emulator_factory, data, sqs_endpoint=sqs_env)
    tap = Wiretap(server)
    spapi = spapi_for(server, tmp_path)
    for channel in ("us", "uk") if uk_published_before else ("us",):
        assert run(data, channel, spapi).success
    assert listing(server, SKU, "us")["quantity"] == 10 and listing(server, SKU, "uk")["quantity"] == 10

    # A buyer orders 4 on us: Amazon sends ORDER_CHANGE to the seller's queue; the sensor stores it.
    for channel in ("us", "uk"):
        enable(channel, spapi, instance)
    order = {"marketplaceId": MARKETPLACE["us"], "items": [{"sku": SKU, "quantity": 4}]}
    control(server, "POST", "/orders", json=order)
    server.state.delivery.flush(5)
    tick = run_sensor(data, instance)
    # The order reserves the seller's stock everywhere: a run for every enabled channel of the seller (de: held).
    # (uk's own push may also have moved offers: an ANY_OFFER_CHANGED prices_job is not this test's concern)
    requested = sorted(r.partition_key for r in tick.run_requests if r.job_name == "inventory_job")
    assert requested == ["uk", "us"], requested
    ingested = len(tap.exchanges)

    for channel in ("us", "uk"):
        assert run(data, channel, spapi).success
    # Nothing above 6 reached Amazon after the order was stored; uk had to be told (10 -> 6), so something was sent.
    sent = {channel: quantities_sent(tap, channel, ingested) for channel in ("us", "uk")}
    assert all(q <= 6 for q in sent["us"] + sent["uk"]), sent
    assert sent["uk"] == [6], sent
    for channel in ("us", "uk"):
        assert listing(server, SKU, channel)["quantity"] == 6, channel
        assert query(data, channel, "SELECT quantity FROM reconciled_inventory") == [(6,)], channel
        assert query(data, channel, "SELECT sku, reserved_quantity FROM reservations") == [(SKU, 4)], channel
