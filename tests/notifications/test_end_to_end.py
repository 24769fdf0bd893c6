"""End to end over real HTTP (the emulator) and the real SQS protocol (a moto server): enabling a channel, the
sensor draining the queue, reservations reaching reconcile, shipments confirmed once, and the schedules."""

import json
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import httpx

from assets.inputs import input_assets
from assets.inventory import reconciled_inventory
from assets.notifications import SqsSettings, notification_subscriptions, wire_notifications
from assets.orders import reservations
from assets.shipments import shipment_confirmations
from pipelines.partitions import CHANNELS
from resources.spapi_resource import SpApiResource
from resources.warehouse import Warehouse
from tests.notifications.helpers import (
    SELLER,
    US,
    enable,
    order_change,
    run_sensor,
    sns,
    spapi_for,
    sqs,
    store_rows,
)

QUEUE = f"sales-channel-{SELLER}"


def control(server, method, path, **kw):
    response = httpx.request(method, server.url + "/_emulator" + path, timeout=10, **kw)
    assert response.status_code < 300, response.text
    return response.json()


def query(data_dir: Path, name: str, sql: str) -> list[tuple]:
    con = duckdb.connect(str(data_dir / "warehouse" / f"{name}.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_enabling_a_channel_twice_creates_everything_once(server, sqs_env, data_dir, tmp_path):
    spapi = spapi_for(server, tmp_path)
    resources = {"spapi": spapi, "warehouse": Warehouse(data_dir=str(data_dir))}
    for channel in ("us", "uk", "us"):  # two channels of one seller share the seller's queue and subscriptions
        result = dg.materialize([notification_subscriptions], partition_key=channel, resources=resources)
        assert result.success
    first = wire_notifications(CHANNELS["us"], spapi.client_for(SELLER), SqsSettings.from_env())
    assert first["created"] == []  # nothing left to create
    # moto's state is per process (other tests may own queues): exactly one queue of ours
    queues = [q for q in sqs(sqs_env).list_queues().get("QueueUrls", []) if q.rsplit("/", 1)[1] == QUEUE]
    assert len(queues) == 1
    store = server.state.store
    assert [d.arn for d in store.destinations.values()] == [first["queue_arn"]]
    assert sorted(t for (s, t) in store.subscriptions if s == SELLER) == [
        "ANY_OFFER_CHANGED",
        "FBA_INVENTORY_AVAILABILITY_CHANGES",
        "ORDER_CHANGE",
    ]
    policy = json.loads(
        sqs(sqs_env).get_queue_attributes(QueueUrl=queues[0], AttributeNames=["Policy"])["Attributes"]["Policy"]
    )
    assert policy["Statement"][0]["Principal"] == {"AWS": "arn:aws:iam::437568002678:root"}
    assert query(data_dir, "us", "SELECT count(*) FROM notification_subscriptions") == [(3,)]


def materialize_inventory(data_dir: Path, spapi: SpApiResource) -> dg.ExecuteInProcessResult:
    offline = {"ops": {n: {"config": {"offline": True}} for n in ("fba_inventory", "competitor_prices")}}
    return dg.materialize(
        [*input_assets, reservations, reconciled_inventory],
        partition_key="us",
        resources={"warehouse": Warehouse(data_dir=str(data_dir)), "spapi": spapi},
        run_config=offline,
    )


def fbm_quantity(data_dir: Path) -> int:
    return query(data_dir, "us", "SELECT quantity FROM reconciled_inventory WHERE sku = 'FBM-1'")[0][0]


def test_sensor_stores_once_dead_letters_and_reserves_fbm_stock(server, sqs_env, data_dir, tmp_path, instance):
    spapi = spapi_for(server, tmp_path)
    assert materialize_inventory(data_dir, spapi).success
    before = fbm_quantity(data_dir)
    assert before == 7
    enable("us", spapi, instance)  # checks the connection and wires the queue, destination and subscriptions
    # a buyer orders 2 units of the FBM SKU on Amazon: the emulator sends ORDER_CHANGE to the queue
    order = control(server, "POST", "/orders", json={"marketplaceId": US, "items": [{"sku": "FBM-1", "quantity": 2}]})
    server.state.delivery.flush(5)
    client = sqs(sqs_env)
    url = client.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    emitted = [n["message"] for n in control(server, "GET", "/notifications")["notifications"]]
    order_notes = [m for m in emitted if m["NotificationType"] == "ORDER_CHANGE"]
    assert len(order_notes) == 1
    # Amazon may deliver twice (at least once), through SNS, and junk happens
    client.send_message(QueueUrl=url, MessageBody=json.dumps(order_notes[0]))
    client.send_message(QueueUrl=url, MessageBody=sns(order_notes[0]))
    client.send_message(QueueUrl=url, MessageBody="{not json")
    client.send_message(
        QueueUrl=url,
        MessageBody=json.dumps(
            order_change(
                "999-0000000-0000001", "Unshipped", "2026-11-29T09:00:00Z", [("FBM-1", 1)], market="A1VC38T7YXB528"
            )
        ),
    )
    result = run_sensor(data_dir, instance)
    assert [(r.job_name, r.partition_key, r.tags["seller"]) for r in result.run_requests] == [
        ("inventory_job", "us", SELLER)
    ]
    assert (
        client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]["ApproximateNumberOfMessages"]
        == "0"
    )
    # every ORDER_CHANGE copy stored once; the malformed and the unroutable kept with their reasons
    assert store_rows(
        data_dir, "SELECT subject, channel FROM notifications WHERE notification_type = 'ORDER_CHANGE'"
    ) == [(order["orderId"], "us")]
    reasons = sorted(r[0] for r in store_rows(data_dir, "SELECT reason FROM dead_letters"))
    assert len(reasons) == 2 and "not JSON" in reasons[0] and "marketplace A1VC38T7YXB528" in reasons[1]
    # nothing new: no runs, the cursor holds
    again = run_sensor(data_dir, instance, cursor=result.cursor)
    assert again.run_requests == [] and again.cursor == result.cursor
    # the requested inventory run reserves the 2 units before any push
    assert materialize_inventory(data_dir, spapi).success
    assert fbm_quantity(data_dir) == before - 2
    assert query(data_dir, "us", "SELECT sku, reserved_quantity FROM reservations") == [("FBM-1", 2)]


def test_out_of_order_and_burst(server, sqs_env, data_dir, tmp_path, instance):
    spapi = spapi_for(server, tmp_path)
    enable("us", spapi, instance)
    client = sqs(sqs_env)
    url = client.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    now = datetime.now(UTC)
    later = now.replace(microsecond=0).isoformat()
    earlier = now.replace(microsecond=0).timestamp() - 60
    earlier_iso = datetime.fromtimestamp(earlier, UTC).isoformat()
    # 500 notifications: 250 orders, each Shipped (newer) delivered before Unshipped (older), ids repeated once
    bodies = []
    for n in range(250):
        oid = f"111-{n:07d}-0000001"
        bodies.append(
            json.dumps(
                order_change(oid, "Shipped", later, [("FBM-1", 1)], notification_id=f"s{n}", purchase_date=later)
            )
        )
        bodies.append(
            json.dumps(
                order_change(
                    oid, "Unshipped", earlier_iso, [("FBM-1", 1)], notification_id=f"u{n}", purchase_date=later
                )
            )
        )
    bodies += bodies[:20]  # redelivered duplicates
    for start in range(0, len(bodies), 10):
        client.send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start : start + 10])]
        )
    result = run_sensor(data_dir, instance)
    assert [r.job_name for r in result.run_requests] == ["inventory_job"]
    assert store_rows(data_dir, "SELECT count(*) FROM notifications") == [(500,)]
    assert materialize_inventory(data_dir, spapi).success
    assert query(data_dir, "us", "SELECT count(*) FROM reservations") == [(0,)]  # the older states never won
    assert query(data_dir, "us", "SELECT DISTINCT order_status FROM order_states") == [("Shipped",)]


def write_shipments(data_dir: Path, order_id: str) -> None:
    (data_dir / "shipments.csv").write_text(
        "channel,order_id,carrier_code,carrier_name,tracking_number,ship_date,shipping_method\n"
        f"us,{order_id},UPS,,1Z999AA10123456784,2026-11-29T14:00:00+00:00,Ground\n"
        "us,not-an-order,UPS,,1Z1,2026-11-29T14:00:00+00:00,\n",
        encoding="utf-8",
    )


def test_shipments_are_confirmed_once(server, data_dir, tmp_path):
    spapi = spapi_for(server, tmp_path)
    order = control(server, "POST", "/orders", json={"marketplaceId": US, "items": [{"sku": "FBM-1", "quantity": 2}]})
    write_shipments(data_dir, order["orderId"])
    resources = {"warehouse": Warehouse(data_dir=str(data_dir)), "spapi": spapi}
    for _ in range(2):
        result = dg.materialize([shipment_confirmations], partition_key="us", resources=resources)
        assert result.success
    shipments = server.state.store.orders[order["orderId"]].shipments
    assert len(shipments) == 1 and shipments[0]["trackingNumber"] == "1Z999AA10123456784"
    assert server.state.store.orders[order["orderId"]].status == "Shipped"
    assert query(data_dir, "us", "SELECT order_id, status, attempts FROM shipment_confirmations") == [
        (order["orderId"], "confirmed", 1)
    ]
    assert query(data_dir, "us", "SELECT sku, status FROM sync_history WHERE operation = 'confirm_shipment'") == [
        ("FBM-1", "confirmed")
    ]
    assert query(data_dir, "us", "SELECT value FROM input_errors WHERE input = 'shipments'") == [("not-an-order",)]
    check = result.get_asset_check_evaluations()[0]
    assert not check.passed
