"""`orders` and `order_items`: the seller's orders of the channel's marketplace, merged from ORDER_CHANGE
notifications and the searchOrders poll, with the notification coverage (orders the poll found that no notification
brought)."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pyarrow as pa

from assets.metadata import preview, table_preview
from pipelines.partitions import CHANNELS, channel_for, channel_partitions
from resources.spapi import ServerError, SpApiTimeout, Throttled
from resources.spapi_resource import SpApiResource
from resources.transaction import transaction
from resources.warehouse import Warehouse
from seller.config import Channel
from sync import order_poll, orders

__all__ = ["OrdersConfig", "order_assets", "poll_markets"]

MISSED_LISTED = 50  # order ids listed in the metadata (all of them are in the `orders` table)

_ORDERS = pa.schema(
    [
        ("amazon_order_id", pa.string()),
        ("channel", pa.string()),
        ("order_status", pa.string()),
        ("fulfillment_type", pa.string()),
        ("purchase_date", pa.timestamp("us", tz="UTC")),
        ("last_update_time", pa.timestamp("us", tz="UTC")),
        ("state_source", pa.string()),
        ("sources", pa.string()),
        ("open_mfn", pa.bool_()),
    ]
)
_ITEMS = pa.schema(
    [
        ("channel", pa.string()),
        ("amazon_order_id", pa.string()),
        ("order_item_id", pa.string()),
        ("sku", pa.string()),
        ("quantity", pa.int64()),
        ("unit_price", pa.string()),
        ("currency", pa.string()),
        ("item_source", pa.string()),
    ]
)
_MISSED = pa.schema([("amazon_order_id", pa.string()), ("first_polled_at", pa.timestamp("us", tz="UTC"))])


class OrdersConfig(dg.Config):
    """`offline: true` asks Amazon nothing (merges what the store holds). The poll stops when searchOrders' next
    request could not be sent within `poll_seconds` (its rate is one request per 3 minutes once the burst of 20 is
    spent; a run holds the seller × region's run slot, so it must not wait long) and resumes next run.
    `overlap_minutes`: how far before the watermark each poll asks again (sync.order_poll). An order first polled
    less than `coverage_grace_minutes` ago is not counted as missed by notifications yet (its notification may be on
    its way)."""

    offline: bool = False
    poll_seconds: float = 30.0
    poll_cap_share: float = 1.0
    overlap_minutes: float = 10.0
    initial_lookback_days: float = 7.0
    coverage_grace_minutes: float = 10.0


def poll_markets(channel: Channel) -> dict[str, str]:
    """Marketplace id → channel name of every configured channel of `channel`'s seller in its region: one poll
    covers them all (searchOrders' rate is per seller and region)."""
    return {
        c.marketplace_id: c.name
        for c in CHANNELS.values()
        if c.seller_id == channel.seller_id and c.region == channel.region
    }


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "orders",
            deps=["notification_store"],
            kinds={"duckdb"},
            description="The seller's orders of the channel's marketplace, one row per order: the newest state "
            "from ORDER_CHANGE notifications and the searchOrders poll (amazon_order_id, order_status, "
            "fulfillment_type, purchase_date, last_update_time, state_source, sources: notification / poll / both, "
            "open_mfn, missed_by_notifications).",
        ),
        dg.AssetSpec(
            "order_items",
            deps=["notification_store"],
            kinds={"duckdb"},
            description="The items of `orders`: order_item_id, sku, quantity, unit_price (exact decimal string; "
            "empty when only a notification, which carries no price, listed them), currency, item_source.",
        ),
    ],
    partitions_def=channel_partitions,
    group_name="orders",
    pool="spapi",
)
def order_assets(context: dg.AssetExecutionContext, config: OrdersConfig, warehouse: Warehouse, spapi: SpApiResource):
    """Poll searchOrders for the channel's seller × region (every configured marketplace of the seller there, from
    the watermark minus the overlap), store what it returns in the notification store, then write the channel's
    merged `orders` and `order_items` with counts by status and source and the notification coverage."""
    channel = channel_for(context.partition_key)
    markets = poll_markets(channel)
    poll: order_poll.PollResult | None = None
    outcome = "not asked (offline)"
    if not config.offline:
        client = spapi.client_for(channel.seller_id, region=channel.region)
        try:
            poll = order_poll.poll_orders(
                client,
                channel.seller_id,
                channel.region,
                markets,
                warehouse.connect_notifications,
                max_seconds=config.poll_seconds,
                cap_share=config.poll_cap_share,
                overlap=timedelta(minutes=config.overlap_minutes),
                initial_lookback=timedelta(days=config.initial_lookback_days),
            )
            outcome = poll.stopped
        # Amazon busy or unavailable: what the store holds is still merged and the next poll resumes from the same
        # watermark. A lost or revoked grant (Unauthorized) or a rejected request fails the step.
        except (Throttled, ServerError, SpApiTimeout) as exc:
            outcome = f"error: {exc}"
            context.log.warning(f"order poll of {channel.seller_id}-{channel.region} stopped: {exc}")

    now = datetime.now(UTC)
    merged = pa.table({n: [] for n in _ORDERS.names}, schema=_ORDERS)
    items = pa.table({n: [] for n in _ITEMS.names}, schema=_ITEMS)
    polled, missed = 0, []
    if warehouse.has_notifications():
        with warehouse.connect_notifications(read_only=True) as store:  # one short read: the sensor writes this file
            present = {r[0] for r in store.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
            if {"order_changes", "order_change_items", "notifications"} <= present:
                merged = orders.merged_orders(store, [channel.name]).to_arrow_table()
                items = orders.merged_order_items(store, [channel.name]).to_arrow_table()
            grace = timedelta(minutes=config.coverage_grace_minutes)
            polled, missed = order_poll.coverage(store, [channel.name], now, grace)
    missed_ids = pa.table(
        {"amazon_order_id": [m[0] for m in missed], "first_polled_at": [m[5] for m in missed]}, schema=_MISSED
    )

    with warehouse.connect(channel.name) as con:
        con.register("merged", merged)
        con.register("merged_items", items)
        con.register("missed", missed_ids)
        for attempt in transaction(con):
            with attempt:
                con.execute(
                    "CREATE OR REPLACE TABLE orders AS SELECT m.*, (x.amazon_order_id IS NOT NULL) AS "
                    "missed_by_notifications FROM merged m LEFT JOIN missed x USING (amazon_order_id) "
                    "ORDER BY amazon_order_id"
                )
                con.execute("CREATE OR REPLACE TABLE order_items AS SELECT * FROM merged_items ORDER BY ALL")
        by_status = dict(con.execute("SELECT coalesce(order_status, '?'), count(*) FROM orders GROUP BY 1").fetchall())
        by_source = dict(con.execute("SELECT sources, count(*) FROM orders GROUP BY 1").fetchall())
        by_winner = dict(con.execute("SELECT state_source, count(*) FROM orders GROUP BY 1").fetchall())
        open_mfn = con.execute("SELECT count(*) FROM orders WHERE open_mfn").fetchall()[0][0]
        orders_meta = table_preview(con, "orders", order_by="last_update_time DESC")
        items_meta = table_preview(con, "order_items", order_by="amazon_order_id, order_item_id")

    share = len(missed) / polled if polled else 0.0
    coverage = {
        "polled_orders": polled,
        "missed_by_notifications": len(missed),
        "missed_share": round(share, 4),
        "coverage": round(1 - share, 4) if polled else None,
        "grace_minutes": config.coverage_grace_minutes,
    }
    poll_meta: dict[str, dg.MetadataValue] = {
        "poll_outcome": dg.MetadataValue.text(outcome),
        "poll_scope": dg.MetadataValue.text(
            f"{channel.seller_id}-{channel.region}: {', '.join(sorted(markets.values()))}"
        ),
    }
    if poll is not None:
        poll_meta.update(
            {
                "poll_pages": dg.MetadataValue.int(poll.pages),
                "poll_orders_seen": dg.MetadataValue.int(poll.orders_seen),
                "poll_versions_stored": dg.MetadataValue.int(poll.stored),
                "poll_new_open_mfn_orders": dg.MetadataValue.int(len(poll.new_open_mfn)),
                "poll_asked_after": dg.MetadataValue.text(poll.asked_after.isoformat() if poll.asked_after else ""),
                "poll_watermark": dg.MetadataValue.text(poll.watermark.isoformat() if poll.watermark else "none yet"),
            }
        )
    yield dg.MaterializeResult(
        asset_key="orders",
        metadata={
            **orders_meta,
            "orders_by_status": dg.MetadataValue.json(by_status),
            "orders_by_source": dg.MetadataValue.json(by_source),
            "state_won_by_source": dg.MetadataValue.json(by_winner),
            "open_mfn_orders": dg.MetadataValue.int(int(open_mfn)),
            "notification_coverage": dg.MetadataValue.json(coverage),
            "missed_by_notifications": dg.MetadataValue.int(len(missed)),
            "missed_orders": preview(missed_ids, MISSED_LISTED),
            **poll_meta,
        },
    )
    yield dg.MaterializeResult(asset_key="order_items", metadata=items_meta)
