"""shipment_confirmations against the emulator when confirmShipment's answer is lost after it took effect."""

from pathlib import Path

import dagster as dg
import pytest

from assets.shipments import shipment_confirmations
from resources.warehouse import Warehouse
from tests.sync.helpers import MARKETPLACE, control, materialization, query, seller_dir, spapi_for, start_emulator

LEDGER = "SELECT order_id, status, attempts FROM shipment_confirmations"
HISTORY = "SELECT sku, status FROM sync_history WHERE operation = 'confirm_shipment' ORDER BY recorded_at"


@pytest.fixture
def shop(tmp_path, emulator_factory):
    data = seller_dir(tmp_path)
    server = start_emulator(emulator_factory, data)
    order = control(
        server, "POST", "/orders", json={"marketplaceId": MARKETPLACE["us"], "items": [{"sku": "FBM-1", "quantity": 2}]}
    )
    (data / "shipments.csv").write_text(
        "channel,order_id,carrier_code,carrier_name,tracking_number,ship_date,shipping_method\n"
        f"us,{order['orderId']},UPS,,1Z999AA10123456784,2026-11-29T14:00:00+00:00,Ground\n",
        encoding="utf-8",
    )
    return data, server, order["orderId"]


def confirm(data: Path, spapi) -> dict:
    result = dg.materialize(
        [shipment_confirmations],
        partition_key="us",
        resources={"warehouse": Warehouse(data_dir=str(data)), "spapi": spapi},
    )
    assert result.success
    return materialization(result, "shipment_confirmations")


@pytest.mark.parametrize(
    "status, max_attempts",
    [(503, 2), (503, 1), (None, 2)],
    ids=["503-transport-may-repeat", "503-no-retries", "dropped-connection"],
)
def test_a_lost_answer_is_settled_by_reading_the_order_never_rejected(shop, tmp_path, status, max_attempts):
    data, server, order_id = shop
    fault = {"kind": "lost_answer", "operation": "confirmShipment"} | ({"status": status} if status else {})
    control(server, "POST", "/faults", json=fault)
    spapi = spapi_for(server, tmp_path, max_attempts=max_attempts)
    meta = confirm(data, spapi)

    assert query(data, "us", LEDGER) == [(order_id, "confirmed", 1)]
    [(message,)] = query(data, "us", "SELECT message FROM shipment_confirmations")
    assert message.endswith("getOrder: Shipped")
    assert query(data, "us", HISTORY) == [("FBM-1", "confirmed")]
    hits = control(server, "GET", "/faults")["hits"]
    assert {(h["kind"], h["operation"]): h["count"] for h in hits}[("lost_answer", "confirmShipment")] == 1
    order = server.state.store.orders[order_id]
    assert order.status == "Shipped" and len(order.shipments) == 1  # Amazon took the package exactly once
    posts, repeats = meta["spapi/confirmShipment/calls"], meta["spapi/confirmShipment/retried"]
    if status is None:
        assert posts == 1  # a dropped connection may follow the write: confirmShipment is never re-sent blindly
    else:
        # Whether the transport repeats a POST after a 5xx is its rule; a repeat is refused ("already shipped") and
        # that refusal, read back with getOrder, is counted as the confirmation it is.
        assert posts == 1 + repeats and repeats <= max_attempts - 1
    assert meta["spapi/getOrder/calls"] == 1

    again = confirm(data, spapi)  # confirmed in the ledger: nothing is sent or read again
    assert again.get("spapi/confirmShipment/calls", 0) == 0
    assert len(order.shipments) == 1
    assert query(data, "us", LEDGER) == [(order_id, "confirmed", 1)]


def test_a_lost_answer_that_did_not_take_effect_is_failed_then_sent_next_run(shop, tmp_path):
    data, server, order_id = shop
    control(server, "POST", "/faults", json={"kind": "status", "operation": "confirmShipment", "status": 503})
    spapi = spapi_for(server, tmp_path, max_attempts=1)
    confirm(data, spapi)
    assert query(data, "us", LEDGER) == [(order_id, "failed", 1)]  # getOrder: still Unshipped, so not confirmed
    assert server.state.store.orders[order_id].status == "Unshipped"
    confirm(data, spapi)
    assert query(data, "us", LEDGER) == [(order_id, "confirmed", 2)]
    assert len(server.state.store.orders[order_id].shipments) == 1
    assert query(data, "us", HISTORY) == [("FBM-1", "failed"), ("FBM-1", "confirmed")]
