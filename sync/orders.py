"""Orders: FBM stock reservations from both order sources, the merged order picture, and shipment confirmations.

Two sources, one picture. ORDER_CHANGE notifications (the sensor's `order_changes` / `order_change_items`) and the
order poll (searchOrders, `polled_orders` / `polled_order_items`, sync.order_poll) both land in the notification
store. Per order the newest update wins: the notification's TimeOfOrderChange against the poll's lastUpdatedTime,
both Amazon's clock; on a tie the more final status, then the notification. An order only the poll found counts
like any other: it reserves, and a later state from either source closes it.

Reservation rule. An FBM (MFN) order reserves its items' quantities from the moment we learn of it until either
- a later state of the order (either source) says it is no longer open (Shipped, Canceled, Unfulfillable, ...: any
  status outside `OPEN_ORDER_STATUSES`), or
- the seller's master inventory file was written after we stored the order's latest state (`master_as_of` > the
  latest `received_at` of the order's notifications and `stored_at` of its newest polled version): the seller's
  export can only include an order that had reached the seller by then, so from that write on its quantity is taken
  to exclude the order.
The master's write time (the file's modification time) is compared with OUR clock only: `received_at` is when the
sensor stored the notification, `stored_at` when the poll stored the version, on this deployment's clock. Amazon's
PurchaseDate is on Amazon's clock (the
emulator's, in tests: days away from wall time), and comparing two clocks with no margin released orders the master
could not have seen (an oversell). The order was placed before we stored its notification, so this rule only ever
reserves a little longer than the PurchaseDate rule did, never shorter: the conservative direction (a master written
at the very instant the notification was stored still reserves it). It takes the seller's file to be written from
figures current at its write time; an export that snapshots its stock long before writing the file should set the
file's modification time to the snapshot's.
Notifications can arrive out of order, so an order's state is the notification with the latest event time
(TimeOfOrderChange), then the latest publish time, then the more final status; an older state never overwrites a
newer one. Items come from the winning source when it lists them (the poll's always do, with prices), else from the
latest notification of the order that lists items. A partially shipped order keeps
its whole quantity reserved until it is Shipped (conservative: no oversell).

Stock is the seller's, not the channel's: the seller ships every FBM order from the one stock the master file counts,
so an open order on any channel of the seller reserves it on every channel. Reservations are therefore computed over
all the channels of one seller (`seller_channels`: the same seller_id in the channels config), never over another
seller's, whose notifications share the store. Amazon's unified accounts also hold one quantity per SKU per region
(the last write wins), so two channels of the seller must never publish two different figures.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import duckdb

from seller.config import Channel
from sync.notifications import OPEN_ORDER_STATUSES
from sync.order_poll import has_poll_tables

__all__ = [
    "OPEN_ORDER_STATUSES",
    "RESERVATION_COLUMNS",
    "order_states",
    "reservations",
    "reserved_by_channel",
    "merged_orders",
    "merged_order_items",
    "seller_channels",
    "package_detail",
    "row_hash",
]

RESERVATION_COLUMNS = ("sku", "reserved_quantity", "open_orders", "oldest_order_at")

# Later in this list = more final, used only to break ties between states (notified or polled) with identical times.
_STATUS_RANK = (
    "list_position(['PendingAvailability', 'Pending', 'Unshipped', 'PartiallyShipped', 'Shipped', "
    "'InvoiceUnconfirmed', 'Unfulfillable', 'Canceled'], order_status)"
)

_ORDER_STATES = f"""
SELECT DISTINCT ON (amazon_order_id)
       amazon_order_id, channel, order_status, fulfillment_type, purchase_date, event_time, notification_id
FROM {{changes}}
WHERE list_contains($channels::VARCHAR[], channel)
ORDER BY amazon_order_id, event_time DESC, publish_time DESC, coalesce({_STATUS_RANK}, 0) DESC, notification_id DESC
"""

# The merged picture of the channels' orders, from both sources: `notified` (each order's latest ORDER_CHANGE) and
# `polled` (searchOrders' newest version, sync.order_poll). `states`: one row per order, the newest update winning
# (TimeOfOrderChange vs lastUpdatedTime, both Amazon's clock), then the more final status, then the notification.
# `merged_items`: the winning source's items when it has them (the poll's carry prices), else the other's.
# `stored`: when we last stored a newer state of the order, either source, on our clock.
_MERGED = """
WITH notified AS (
    SELECT DISTINCT ON (amazon_order_id) amazon_order_id, channel, order_status, fulfillment_type, purchase_date,
           event_time AS updated_at, 'notification' AS source
    FROM {changes}
    WHERE list_contains($channels::VARCHAR[], channel)
    ORDER BY amazon_order_id, event_time DESC, publish_time DESC, coalesce({rank}, 0) DESC, notification_id DESC
),
polled AS ({polled}),
states AS (
    SELECT DISTINCT ON (amazon_order_id) *
    FROM (SELECT * FROM notified UNION ALL BY NAME SELECT * FROM polled)
    ORDER BY amazon_order_id, updated_at DESC, coalesce({rank}, 0) DESC, source
),
latest_items AS (
    SELECT DISTINCT ON (c.amazon_order_id) c.amazon_order_id, c.channel, c.notification_id
    FROM {changes} c
    WHERE list_contains($channels::VARCHAR[], c.channel)
      AND EXISTS (SELECT 1 FROM {items} i WHERE i.notification_id = c.notification_id AND i.channel = c.channel)
    ORDER BY c.amazon_order_id, c.event_time DESC, c.publish_time DESC, c.notification_id DESC
),
notified_items AS (
    SELECT l.amazon_order_id, i.order_item_id, i.sku, i.quantity, NULL::VARCHAR AS unit_price,
           NULL::VARCHAR AS currency, 'notification' AS item_source
    FROM latest_items l
    JOIN {items} i ON i.notification_id = l.notification_id AND i.channel = l.channel
),
polled_items AS ({polled_items}),
merged_items AS (
    SELECT i.* FROM states s JOIN polled_items i USING (amazon_order_id)
    WHERE s.source = 'poll' OR s.amazon_order_id NOT IN (SELECT amazon_order_id FROM notified_items)
    UNION ALL BY NAME
    SELECT i.* FROM states s JOIN notified_items i USING (amazon_order_id)
    WHERE s.source = 'notification' OR s.amazon_order_id NOT IN (SELECT amazon_order_id FROM polled_items)
),
stored AS (
    SELECT amazon_order_id, max(stored_at) AS stored_at
    FROM (
        SELECT c.amazon_order_id, n.received_at AS stored_at
        FROM {changes} c
        JOIN {notifications} n ON n.notification_id = c.notification_id AND n.channel = c.channel
        WHERE list_contains($channels::VARCHAR[], c.channel)
        UNION ALL
        SELECT amazon_order_id, stored_at FROM polled
    )
    GROUP BY amazon_order_id
)
"""

_POLLED = """
SELECT amazon_order_id, channel, order_status, fulfillment_type, purchase_date, last_update_time AS updated_at,
       'poll' AS source, stored_at
FROM polled_orders
WHERE list_contains($channels::VARCHAR[], channel)
"""
_POLLED_ITEMS = """
SELECT i.amazon_order_id, i.order_item_id, i.sku, i.quantity, i.unit_price, i.currency, 'poll' AS item_source
FROM polled_order_items i SEMI JOIN polled p USING (amazon_order_id)
"""
# A store no poll has written: the same columns, no rows.
_NO_POLLED = """
SELECT NULL::VARCHAR AS amazon_order_id, NULL::VARCHAR AS channel, NULL::VARCHAR AS order_status,
       NULL::VARCHAR AS fulfillment_type, NULL::TIMESTAMPTZ AS purchase_date, NULL::TIMESTAMPTZ AS updated_at,
       'poll' AS source, NULL::TIMESTAMPTZ AS stored_at
WHERE false
"""
_NO_POLLED_ITEMS = """
SELECT NULL::VARCHAR AS amazon_order_id, NULL::VARCHAR AS order_item_id, NULL::VARCHAR AS sku,
       NULL::BIGINT AS quantity, NULL::VARCHAR AS unit_price, NULL::VARCHAR AS currency, 'poll' AS item_source
WHERE false
"""

# One row per item of an open FBM order of the channels: (channel, amazon_order_id, sku, quantity, placed_at). An
# order is open until a later state (either source) closes it or the master file is written after its latest state
# was stored.
_OPEN_ITEMS = """
{merged},
open_orders AS (
    SELECT s.amazon_order_id, s.channel, coalesce(s.purchase_date, s.updated_at) AS placed_at
    FROM states s
    LEFT JOIN stored USING (amazon_order_id)
    WHERE s.order_status IN ({open_statuses})
      AND coalesce(s.fulfillment_type, 'MFN') = 'MFN'
      AND ($master_as_of::TIMESTAMPTZ IS NULL OR stored.stored_at IS NULL
           OR stored.stored_at >= $master_as_of::TIMESTAMPTZ)
),
open_items AS (
    SELECT o.channel, o.amazon_order_id, i.sku, i.quantity, o.placed_at
    FROM open_orders o
    JOIN merged_items i USING (amazon_order_id)
)
"""

_RESERVATIONS = """
SELECT sku, sum(quantity)::BIGINT AS reserved_quantity, count(DISTINCT amazon_order_id)::BIGINT AS open_orders,
       min(placed_at) AS oldest_order_at
FROM open_items
GROUP BY sku
"""

_BY_CHANNEL = """
SELECT channel, sum(quantity)::BIGINT AS reserved_quantity, count(DISTINCT amazon_order_id)::BIGINT AS open_orders
FROM open_items
GROUP BY channel
"""

_ORDERS = """
{merged}
SELECT s.amazon_order_id, s.channel, s.order_status, s.fulfillment_type, s.purchase_date,
       s.updated_at AS last_update_time, s.source AS state_source,
       CASE WHEN n.amazon_order_id IS NOT NULL AND p.amazon_order_id IS NOT NULL THEN 'both'
            WHEN p.amazon_order_id IS NOT NULL THEN 'poll' ELSE 'notification' END AS sources,
       coalesce(s.order_status IN ({open_statuses}) AND coalesce(s.fulfillment_type, 'MFN') = 'MFN', false)
           AS open_mfn
FROM states s
LEFT JOIN notified n USING (amazon_order_id)
LEFT JOIN polled p USING (amazon_order_id)
ORDER BY s.amazon_order_id
"""

_ORDER_ITEMS = """
{merged}
SELECT s.channel, i.amazon_order_id, i.order_item_id, i.sku, i.quantity, i.unit_price, i.currency, i.item_source
FROM merged_items i JOIN states s USING (amazon_order_id)
ORDER BY i.amazon_order_id, i.order_item_id
"""


def seller_channels(channels: Mapping[str, Channel], channel: str) -> list[str]:
    """The names of every configured channel of `channel`'s seller (itself included), in config order."""
    seller = channels[channel].seller_id
    return [c.name for c in channels.values() if c.seller_id == seller]


def order_states(
    con: duckdb.DuckDBPyConnection, channels: Sequence[str], changes: str = "order_changes"
) -> duckdb.DuckDBPyRelation:
    """The current state of every notified order of `channels`: one row per order (latest event wins), with the
    channel it came from."""
    return con.sql(_ORDER_STATES.format(changes=changes), params={"channels": list(channels)})


def _merged(con: duckdb.DuckDBPyConnection, changes: str, items: str, notifications: str) -> str:
    """The `_MERGED` CTEs over the store's tables (the poll's side empty in a store no poll has written)."""
    polled = has_poll_tables(con)
    return _MERGED.format(
        rank=_STATUS_RANK,
        changes=changes,
        items=items,
        notifications=notifications,
        polled=_POLLED if polled else _NO_POLLED,
        polled_items=_POLLED_ITEMS if polled else _NO_POLLED_ITEMS,
    )


def _open_statuses() -> str:
    return ", ".join(f"'{s}'" for s in OPEN_ORDER_STATUSES)


def _over_open_items(
    con: duckdb.DuckDBPyConnection,
    template: str,
    channels: Sequence[str],
    master_as_of: datetime | None,
    changes: str,
    items: str,
    notifications: str,
) -> duckdb.DuckDBPyRelation:
    """`template` (a query over `open_items`) run over the open FBM order items of `channels`, both sources."""
    open_items = _OPEN_ITEMS.format(merged=_merged(con, changes, items, notifications), open_statuses=_open_statuses())
    sql = open_items + template
    return con.sql(sql, params={"channels": list(channels), "master_as_of": master_as_of})


def reservations(
    con: duckdb.DuckDBPyConnection,
    channels: Sequence[str],
    master_as_of: datetime | None,
    changes: str = "order_changes",
    items: str = "order_change_items",
    notifications: str = "notifications",
) -> duckdb.DuckDBPyRelation:
    """Open FBM reservations of the orders of `channels` (pass `seller_channels`: all of one seller's), one row per
    SKU: reserved_quantity, open_orders, oldest_order_at. Orders come from both sources (ORDER_CHANGE notifications
    and the order poll), merged: an order only the poll found reserves too. `master_as_of`: the master file's write
    time on our clock (None: no master file, every open order reserves); an order is released once the master is
    written after its latest state (either source) was stored."""
    return _over_open_items(con, _RESERVATIONS, channels, master_as_of, changes, items, notifications)


def reserved_by_channel(
    con: duckdb.DuckDBPyConnection,
    channels: Sequence[str],
    master_as_of: datetime | None,
    changes: str = "order_changes",
    items: str = "order_change_items",
    notifications: str = "notifications",
) -> duckdb.DuckDBPyRelation:
    """The same reservations broken down by the channel the orders came from: channel, reserved_quantity,
    open_orders (channels without an open order have no row)."""
    return _over_open_items(con, _BY_CHANNEL, channels, master_as_of, changes, items, notifications)


def merged_orders(con: duckdb.DuckDBPyConnection, channels: Sequence[str]) -> duckdb.DuckDBPyRelation:
    """Every order of `channels` from both sources, one row each, the newest update winning: amazon_order_id,
    channel, order_status, fulfillment_type, purchase_date, last_update_time, state_source (whose state won),
    sources (`notification`, `poll` or `both`: who reported it), open_mfn (it reserves stock unless released)."""
    sql = _ORDERS.format(
        merged=_merged(con, "order_changes", "order_change_items", "notifications"), open_statuses=_open_statuses()
    )
    return con.sql(sql, params={"channels": list(channels)})


def merged_order_items(con: duckdb.DuckDBPyConnection, channels: Sequence[str]) -> duckdb.DuckDBPyRelation:
    """The items of `merged_orders`: channel, amazon_order_id, order_item_id, sku, quantity, unit_price (exact
    decimal string; NULL from a notification, which carries no price), currency, item_source."""
    sql = _ORDER_ITEMS.format(merged=_merged(con, "order_changes", "order_change_items", "notifications"))
    return con.sql(sql, params={"channels": list(channels)})


# --- shipments ------------------------------------------------------------------------------------------------------


def row_hash(row: dict[str, Any], columns: tuple[str, ...]) -> str:
    """A stable digest of a shipment row's content (a corrected row is a new attempt; an unchanged one is not)."""
    text = "\x1f".join("" if row.get(c) is None else str(row[c]) for c in columns)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def package_detail(shipment: dict[str, Any], order_items: list[dict[str, Any]], package_reference: int) -> dict:
    """confirmShipment's packageDetail for a whole order: every item's unshipped quantity, from getOrderItems."""
    lines = []
    for item in order_items:
        remaining = int(item.get("QuantityOrdered") or 0) - int(item.get("QuantityShipped") or 0)
        if remaining > 0:
            lines.append({"orderItemId": str(item["OrderItemId"]), "quantity": remaining})
    ship_date = shipment["ship_date"]
    detail: dict[str, Any] = {
        "packageReferenceId": str(package_reference),
        "carrierCode": shipment["carrier_code"],
        "trackingNumber": shipment["tracking_number"],
        "shipDate": ship_date.isoformat() if hasattr(ship_date, "isoformat") else str(ship_date),
        "orderItems": lines,
    }
    if shipment.get("carrier_name"):
        detail["carrierName"] = shipment["carrier_name"]
    if shipment.get("shipping_method"):
        detail["shippingMethod"] = shipment["shipping_method"]
    return detail
