"""Data the pipeline reads but does not produce: shown in the lineage graph, never materialized by a run."""

import dagster as dg

from pipelines.partitions import channel_partitions

__all__ = ["external_assets", "notification_store", "shipments"]

shipments = dg.AssetSpec(
    "shipments",
    partitions_def=channel_partitions,
    group_name="inputs",
    kinds={"csv"},
    description=(
        "The seller's shipped FBM orders: one row per order and channel (channel, order_id, carrier_code, "
        "carrier_name, tracking_number, ship_date, shipping_method). Lives in the data directory as "
        "`shipments.csv|parquet` (optional), written by the seller; shipment_confirmations reads and validates it "
        "(check `shipments_valid`, problems in `input_errors`)."
    ),
)

notification_store = dg.AssetSpec(
    "notification_store",
    deps=["notification_subscriptions"],
    partitions_def=channel_partitions,
    group_name="notifications",
    kinds={"duckdb", "sqs"},
    description=(
        "The seller's SP-API notifications (ORDER_CHANGE, FBA_INVENTORY_AVAILABILITY_CHANGES, ANY_OFFER_CHANGED), "
        "one row per notification and channel, deduplicated by NotificationId, with typed detail tables "
        "(`order_changes`, `order_change_items`, ...) and `dead_letters`. Lives in "
        "`<data>/warehouse/_notifications.duckdb`, one file for every channel of the data directory (deployed: the "
        "Postgres schema `sales_channel_notifications`); written only "
        "by `sqs_notifications_sensor`, which drains the SQS queue that notification_subscriptions wires Amazon to. "
        "A shipment confirmed by shipment_confirmations comes back here as an ORDER_CHANGE (Shipped) and ends the "
        "order's reservation in a later run."
    ),
)

external_assets = [shipments, notification_store]
