"""Orders: the FBM stock that the seller's open Amazon orders reserve, from ORDER_CHANGE notifications and the order
poll."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pyarrow as pa

from assets.metadata import table_preview
from pipelines.partitions import CHANNELS, channel_partitions
from resources.transaction import transaction
from resources.warehouse import Warehouse
from seller.inputs import find_input
from sync import orders

__all__ = ["reservations", "master_as_of"]

_EMPTY_RESERVATIONS = pa.schema(
    [
        ("sku", pa.string()),
        ("reserved_quantity", pa.int64()),
        ("open_orders", pa.int64()),
        ("oldest_order_at", pa.timestamp("us", tz="UTC")),
    ]
)
_EMPTY_STATES = pa.schema(
    [
        ("amazon_order_id", pa.string()),
        ("channel", pa.string()),
        ("order_status", pa.string()),
        ("fulfillment_type", pa.string()),
        ("purchase_date", pa.timestamp("us", tz="UTC")),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("notification_id", pa.string()),
    ]
)


def master_as_of(data_dir: str | Path) -> datetime | None:
    """When the seller's master inventory file was last written (its modification time), or None without one."""
    path = find_input(Path(data_dir), "master_inventory")
    return datetime.fromtimestamp(path.stat().st_mtime, UTC) if path else None


@dg.asset(
    partitions_def=channel_partitions,
    group_name="inventory",
    kinds={"duckdb"},
    # ORDER_CHANGE rows and polled orders (the store); the master file's write time
    deps=["notification_store", "orders", "master_inventory"],
)
def reservations(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """FBM stock reserved by the open Amazon orders of the channel's SELLER, one row per SKU (reserved_quantity,
    open_orders, oldest_order_at): the seller ships every FBM order from the one stock of the master file, so an open
    order on any of the seller's channels (same seller_id in the channels config) reserves it on every channel, and
    each of them publishes the same figure; another seller's orders never count. Orders come from both sources,
    merged (the newest update wins): ORDER_CHANGE notifications and the searchOrders poll (`orders` asset), so an
    order whose notification never arrived reserves once the poll has seen it. `order_states` beside it holds the
    latest state of each notified order of the seller, with the channel it came from; the metadata breaks the
    reserved units down by that channel. An MFN order reserves its quantities until a later state (either source)
    closes it (Shipped, Canceled, ...) or the master inventory file is written after its latest state was stored (our
    clock on both sides, never Amazon's PurchaseDate: the seller's figure then already excludes it); out-of-order
    states never reopen an order. Reconciliation subtracts it from
    the master quantity. Source: the seller's notification store (`warehouse/_notifications.duckdb`): ORDER_CHANGE
    rows written by `sqs_notifications_sensor`, polled orders written by the `orders` asset."""
    channel = context.partition_key
    seller = orders.seller_channels(CHANNELS, channel)
    as_of = master_as_of(warehouse.data_dir)
    held = pa.table({n: [] for n in _EMPTY_RESERVATIONS.names}, schema=_EMPTY_RESERVATIONS)
    states = pa.table({n: [] for n in _EMPTY_STATES.names}, schema=_EMPTY_STATES)
    by_channel: dict[str, int] = dict.fromkeys(seller, 0)
    if warehouse.has_notifications():
        with warehouse.connect_notifications(read_only=True) as store:
            present = {r[0] for r in store.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
            if {"order_changes", "order_change_items"} <= present:
                held = orders.reservations(store, seller, as_of).to_arrow_table()  # both sources
                states = orders.order_states(store, seller).to_arrow_table()
                for name, units, _ in orders.reserved_by_channel(store, seller, as_of).fetchall():
                    by_channel[name] = int(units)
    with warehouse.connect(channel) as con:
        con.register("held", held)
        con.register("states", states)
        for attempt in transaction(con):
            with attempt:
                con.execute("CREATE OR REPLACE TABLE reservations AS SELECT * FROM held ORDER BY sku")
                con.execute("CREATE OR REPLACE TABLE order_states AS SELECT * FROM states ORDER BY amazon_order_id")
        meta = table_preview(con, "reservations")
        reserved = con.execute("SELECT coalesce(sum(reserved_quantity), 0) FROM reservations").fetchall()[0][0]
    return dg.MaterializeResult(
        metadata={
            **meta,
            "reserved_units": int(reserved),
            "reserved_units_by_channel": dg.MetadataValue.json(by_channel),
            "seller_channels": ", ".join(seller),
            "notified_orders": states.num_rows,
            "master_as_of": as_of.isoformat() if as_of else "no master file",
        }
    )
