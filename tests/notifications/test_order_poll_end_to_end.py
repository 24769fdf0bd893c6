"""Issue 14's done-when, end to end: an order whose ORDER_CHANGE never reaches the queue (the emulator's
`"notify": false`: a deleted subscription, a purged queue) is reserved after one run of `order_poll_job` on every
channel of the seller, and the next inventory runs publish the reduced quantity on both. One seller, channels us (na)
and uk (eu), one FBM SKU with 10 units in the master; the order takes 4 on us."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from assets.order_poll import order_assets
from pipelines.jobs import order_poll_job
from pipelines.schedules import order_poll_schedule, poll_channels
from pipelines.sensors import order_poll_sensor
from reliability.wiretap import Wiretap
from resources.warehouse import Warehouse
from tests.notifications.helpers import SELLER, enable, run_sensor, store_rows
from tests.notifications.test_seller_stock import SKU, quantities_sent, run, seller_files
from tests.sync.helpers import MARKETPLACE, control, listing, query, spapi_for, start_emulator

WHEN = datetime(2026, 12, 6, 10, 5, tzinfo=UTC)


def poll_run(data, spapi, instance) -> dg.ExecuteJobResult:
    """One run of the real `order_poll_job` for us (the na poll: every marketplace of the seller in na)."""
    defs = dg.Definitions(
        assets=[order_assets],
        jobs=[order_poll_job],
        resources={"warehouse": Warehouse(data_dir=str(data)), "spapi": spapi},
    )
    config = {"ops": {"order_assets": {"config": {"coverage_grace_minutes": 0}}}}
    return defs.resolve_job_def("order_poll_job").execute_in_process(
        partition_key="us", instance=instance, run_config=config
    )


def test_an_order_whose_notification_never_arrives_is_reserved_by_one_poll_on_every_channel(
    tmp_path, emulator_factory, sqs_env, instance
):
    data = seller_files(tmp_path)
    server = start_emulator(emulator_factory, data, sqs_endpoint=sqs_env)
    tap = Wiretap(server)
    spapi = spapi_for(server, tmp_path)
    for channel in ("us", "uk"):
        assert run(data, channel, spapi).success
    for channel in ("us", "uk", "de"):
        enable(channel, spapi, instance)
    assert listing(server, SKU, "us")["quantity"] == 10 and listing(server, SKU, "uk")["quantity"] == 10

    # The schedule polls once per seller x region: us for na, uk (the first eu channel) for uk and de.
    requests = list(order_poll_schedule(dg.build_schedule_context(instance=instance, scheduled_execution_time=WHEN)))
    assert [(r.partition_key, r.run_key) for r in requests] == [
        ("us", "order_poll_job-2026-12-06T10:05-us"),
        ("uk", "order_poll_job-2026-12-06T10:05-uk"),
    ]
    assert poll_channels(["de", "uk", "us"]) == ["de", "us"]

    # A buyer orders 4 on us; its ORDER_CHANGE never goes out. The sensor finds nothing to reserve.
    order = {"marketplaceId": MARKETPLACE["us"], "items": [{"sku": SKU, "quantity": 4}], "notify": False}
    order_id = control(server, "POST", "/orders", json=order)["orderId"]
    server.state.delivery.flush(5)
    tick = run_sensor(data, instance)
    assert [r for r in tick.run_requests or [] if r.job_name == "inventory_job"] == []
    store = data / "warehouse" / "_notifications.duckdb"
    assert not store.exists() or store_rows(data, "SELECT count(*) FROM order_changes") == [(0,)]

    # One poll run finds it: stored, merged into us's orders, counted as missed by notifications.
    result = poll_run(data, spapi, instance)
    assert result.success
    run_tags = instance.get_run_by_id(result.run_id).tags
    assert run_tags["seller_region"] == f"{SELLER}-na"  # the run queue's per seller x region limit applies
    meta = {k: v.value for k, v in result.asset_materializations_for_node("order_assets")[0].metadata.items()}
    assert meta["notification_coverage"]["missed_by_notifications"] == 1
    assert meta["notification_coverage"]["polled_orders"] == 1
    assert meta["notification_coverage"]["missed_share"] == 1.0
    assert meta["poll_new_open_mfn_orders"] == 1 and meta["orders_by_source"] == {"poll": 1}
    assert query(data, "us", "SELECT amazon_order_id, order_status, sources, missed_by_notifications FROM orders") == [
        (order_id, "Unshipped", "poll", True)
    ]
    assert query(data, "us", "SELECT sku, quantity, unit_price FROM order_items") == [(SKU, 4, "20.00")]

    # The sensor asks every enabled channel of the seller to publish again.
    context = dg.build_sensor_context(instance=instance, resources={"warehouse": Warehouse(data_dir=str(data))})
    republish = order_poll_sensor(context)
    assert sorted(r.partition_key for r in republish.run_requests) == ["de", "uk", "us"]
    assert {r.job_name for r in republish.run_requests} == {"inventory_job"}
    again = order_poll_sensor(
        dg.build_sensor_context(
            instance=instance, cursor=republish.cursor, resources={"warehouse": Warehouse(data_dir=str(data))}
        )
    )
    assert not again.run_requests  # acted on once

    ingested = len(tap.exchanges)
    for channel in ("us", "uk"):
        assert run(data, channel, spapi).success
    sent = {channel: quantities_sent(tap, channel, ingested) for channel in ("us", "uk")}
    assert all(q <= 6 for q in sent["us"] + sent["uk"]), sent
    assert sent["uk"] == [6], sent
    for channel in ("us", "uk"):
        assert listing(server, SKU, channel)["quantity"] == 6, channel
        assert query(data, channel, "SELECT sku, reserved_quantity FROM reservations") == [(SKU, 4)], channel
        assert query(data, channel, "SELECT quantity FROM reconciled_inventory") == [(6,)], channel
