"""Orders: FBM stock reservations from ORDER_CHANGE notifications, and shipment confirmations.

Reservation rule. An FBM (MFN) order reserves its items' quantities from the moment Amazon notifies it until either
- a later ORDER_CHANGE for the order says it is no longer open (Shipped, Canceled, Unfulfillable, ...: any status
  outside `OPEN_ORDER_STATUSES`), or
- the seller's master inventory file was written after we stored the order's latest notification (`master_as_of` >
  the latest `received_at` of the order's notifications): the seller's export can only include an order that had
  reached the seller by then, so from that write on its quantity is taken to exclude the order.
The master's write time (the file's modification time) is compared with OUR clock only: `received_at` is when the
sensor stored the notification, on this deployment's clock. Amazon's PurchaseDate is on Amazon's clock (the
emulator's, in tests: days away from wall time), and comparing two clocks with no margin released orders the master
could not have seen (an oversell). The order was placed before we stored its notification, so this rule only ever
reserves a little longer than the PurchaseDate rule did, never shorter: the conservative direction (a master written
at the very instant the notification was stored still reserves it). It takes the seller's file to be written from
figures current at its write time; an export that snapshots its stock long before writing the file should set the
file's modification time to the snapshot's.
Notifications can arrive out of order, so an order's state is the notification with the latest event time
(TimeOfOrderChange), then the latest publish time, then the more final status; an older state never overwrites a
newer one. Items come from the latest notification of the order that lists items. A partially shipped order keeps
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

__all__ = [
    "OPEN_ORDER_STATUSES",
    "RESERVATION_COLUMNS",
    "order_states",
    "reservations",
    "reserved_by_channel",
    "seller_channels",
    "package_detail",
    "row_hash",
]

RESERVATION_COLUMNS = ("sku", "reserved_quantity", "open_orders", "oldest_order_at")

# Later in this list = more final, used only to break ties between notifications with identical times.
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

# One row per item of an open FBM order of the channels: (channel, amazon_order_id, sku, quantity, placed_at). An
# order is open until a later state closes it or the master file is written after its latest notification was stored.
_OPEN_ITEMS = """
WITH states AS ({states}),
latest_items AS (
    SELECT DISTINCT ON (c.amazon_order_id) c.amazon_order_id, c.channel, c.notification_id
    FROM {changes} c
    WHERE list_contains($channels::VARCHAR[], c.channel)
      AND EXISTS (SELECT 1 FROM {items} i WHERE i.notification_id = c.notification_id AND i.channel = c.channel)
    ORDER BY c.amazon_order_id, c.event_time DESC, c.publish_time DESC, c.notification_id DESC
),
stored AS (
    SELECT c.amazon_order_id, max(n.received_at) AS stored_at
    FROM {changes} c
    JOIN {notifications} n ON n.notification_id = c.notification_id AND n.channel = c.channel
    WHERE list_contains($channels::VARCHAR[], c.channel)
    GROUP BY c.amazon_order_id
),
open_orders AS (
    SELECT s.amazon_order_id, coalesce(s.purchase_date, s.event_time) AS placed_at
    FROM states s
    LEFT JOIN stored USING (amazon_order_id)
    WHERE s.order_status IN ({open_statuses})
      AND coalesce(s.fulfillment_type, 'MFN') = 'MFN'
      AND ($master_as_of::TIMESTAMPTZ IS NULL OR stored.stored_at IS NULL
           OR stored.stored_at >= $master_as_of::TIMESTAMPTZ)
)
SELECT l.channel, o.amazon_order_id, i.sku, i.quantity, o.placed_at
FROM open_orders o
JOIN latest_items l USING (amazon_order_id)
JOIN {items} i ON i.notification_id = l.notification_id AND i.channel = l.channel
"""

_RESERVATIONS = """
SELECT sku, sum(quantity)::BIGINT AS reserved_quantity, count(DISTINCT amazon_order_id)::BIGINT AS open_orders,
       min(placed_at) AS oldest_order_at
FROM ({open_items})
GROUP BY sku
"""

_BY_CHANNEL = """
SELECT channel, sum(quantity)::BIGINT AS reserved_quantity, count(DISTINCT amazon_order_id)::BIGINT AS open_orders
FROM ({open_items})
GROUP BY channel
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


def _over_open_items(
    con: duckdb.DuckDBPyConnection,
    template: str,
    channels: Sequence[str],
    master_as_of: datetime | None,
    changes: str,
    items: str,
    notifications: str,
) -> duckdb.DuckDBPyRelation:
    """`template` (a query over `{open_items}`) run over the open FBM order items of `channels`."""
    open_items = _OPEN_ITEMS.format(
        states=_ORDER_STATES.format(changes=changes),
        changes=changes,
        items=items,
        notifications=notifications,
        open_statuses=", ".join(f"'{s}'" for s in OPEN_ORDER_STATUSES),
    )
    sql = template.format(open_items=open_items)
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
    SKU: reserved_quantity, open_orders, oldest_order_at. `master_as_of`: the master file's write time on our clock
    (None: no master file, every open order reserves); an order is released once the master is written after every
    notification of the order was stored."""
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
