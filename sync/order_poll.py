"""The order poll: Orders API 2026-01-01 searchOrders, incremental from a watermark, as the backstop of ORDER_CHANGE
notifications (a deleted subscription, a purged queue or messages past SQS retention would otherwise leave an order
unreserved and its stock oversold).

One poll covers one seller × region: every configured marketplace of the seller in the region in one query
(`marketplaceIds` takes up to 50), because searchOrders' rate (0.0056 requests/s, burst 20: one request every three
minutes once the burst is spent) is per seller and region. Each page is normalized (order id, marketplace, status,
purchase and last update time, fulfillment channel; items with order item id, SKU, quantity, unit price as an exact
decimal string) and stored in the notification store in one short transaction with the poll's progress (the sensor
writes the same file). An order is kept once, at its newest `lastUpdatedTime`; an older or equal version seen again
changes nothing.

Watermark. The next poll asks for orders updated after the watermark minus `OVERLAP`. The watermark is the newest
`lastUpdatedTime` Amazon returned in a completed pass: Amazon's clock on both sides of the comparison, never ours
(the emulator's clock, like Amazon's, may be far from this machine's). Search is eventually consistent: the model
refuses a `lastUpdatedBefore` less than two minutes before the request, i.e. the last minutes are not settled, and an
order updated just before the newest one we saw may only show up later. Ten minutes (five times that settling time,
two poll intervals) re-reads the window where such late arrivals land; what is seen again is deduplicated. A pass
that runs out of time keeps its pagination token (valid 24 hours) and the next poll resumes it with the same filters,
which the model requires; the watermark moves only when a pass completes, so a pass cut short never skips orders.
The first poll of a seller × region looks back `INITIAL_LOOKBACK` on our clock (there is no Amazon time yet).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import duckdb
import pyarrow as pa

from resources.notification_store import STORE_ATTEMPTS, is_conflict
from resources.spapi import InvalidInput, QuotaExceeded, Throttled
from resources.transaction import transaction
from sync.notifications import OPEN_ORDER_STATUSES, ensure_schema

__all__ = [
    "INITIAL_LOOKBACK",
    "OVERLAP",
    "PollResult",
    "PollState",
    "coverage",
    "ensure_poll_schema",
    "normalize_order",
    "poll_orders",
    "query_after",
    "read_state",
    "stock_changes_since",
]

OVERLAP = timedelta(minutes=10)
INITIAL_LOOKBACK = timedelta(days=7)
# searchOrders' FulfillmentStatus → the Orders v0 / ORDER_CHANGE status the rest of the pipeline uses.
STATUSES = {
    "PENDING_AVAILABILITY": "PendingAvailability",
    "PENDING": "Pending",
    "UNSHIPPED": "Unshipped",
    "PARTIALLY_SHIPPED": "PartiallyShipped",
    "SHIPPED": "Shipped",
    "CANCELLED": "Canceled",
    "UNFULFILLABLE": "Unfulfillable",
}
FULFILLED_BY = {"MERCHANT": "MFN", "AMAZON": "AFN"}
# The order's status and fulfiller are in the FULFILLMENT dataset, which searchOrders returns only when asked.
INCLUDED_DATA = ("FULFILLMENT",)

_TS = pa.timestamp("us", tz="UTC")
_ORDERS = pa.schema(
    [
        ("amazon_order_id", pa.string()),
        ("seller_id", pa.string()),
        ("region", pa.string()),
        ("channel", pa.string()),
        ("marketplace_id", pa.string()),
        ("order_status", pa.string()),
        ("fulfillment_type", pa.string()),
        ("purchase_date", _TS),
        ("last_update_time", _TS),
        ("first_polled_at", _TS),
        ("stored_at", _TS),
        ("polled_at", _TS),
        ("ahead_of_notifications", pa.bool_()),
    ]
)
_ITEMS = pa.schema(
    [
        ("amazon_order_id", pa.string()),
        ("order_item_id", pa.string()),
        ("sku", pa.string()),
        ("quantity", pa.int64()),
        ("unit_price", pa.string()),
        ("currency", pa.string()),
    ]
)
_SQL = {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.bool_(): "BOOLEAN", _TS: "TIMESTAMPTZ"}

_DDL = [
    "CREATE TABLE IF NOT EXISTS polled_orders ("
    + ", ".join(f"{f.name} {_SQL[f.type]}" for f in _ORDERS)
    + ", PRIMARY KEY (amazon_order_id))",
    "CREATE TABLE IF NOT EXISTS polled_order_items ("
    + ", ".join(f"{f.name} {_SQL[f.type]}" for f in _ITEMS)
    + ", PRIMARY KEY (amazon_order_id, order_item_id))",
    "CREATE TABLE IF NOT EXISTS order_poll_state (seller_id VARCHAR, region VARCHAR, watermark TIMESTAMPTZ, "
    "pass_after TIMESTAMPTZ, pass_token VARCHAR, pass_newest TIMESTAMPTZ, last_polled_at TIMESTAMPTZ, "
    "last_outcome VARCHAR, PRIMARY KEY (seller_id, region))",
]


def ensure_poll_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the poll's tables in the notification store (no-op when present)."""
    for ddl in _DDL:
        con.execute(ddl)


def has_poll_tables(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the store holds the poll's tables (a store no poll has written lacks them; one that has them also
    has the sensor's)."""
    names = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT temporary").fetchall()}
    return {"polled_orders", "polled_order_items"} <= names


# --- normalizing ---------------------------------------------------------------------------------------------------


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _decimal(value: Any) -> str | None:
    """Amazon's Decimal (a string in the model) kept exact; a JSON number is read from its text, never summed."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return str(Decimal(str(value)))
    except InvalidOperation:
        return None


def normalize_order(order: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One searchOrders `Order` → (order row, item rows) without the poll's own columns. Status and fulfiller are
    None when the answer lacks the FULFILLMENT dataset (such an order does not reserve: nothing says it is open)."""
    order_id = str(order["orderId"])
    fulfillment = order.get("fulfillment") or {}
    status = fulfillment.get("fulfillmentStatus")
    head = {
        "amazon_order_id": order_id,
        "marketplace_id": (order.get("salesChannel") or {}).get("marketplaceId"),
        "order_status": STATUSES.get(status, status),
        "fulfillment_type": FULFILLED_BY.get(fulfillment.get("fulfilledBy"), fulfillment.get("fulfilledBy")),
        "purchase_date": _time(order.get("createdTime")),
        "last_update_time": _time(order.get("lastUpdatedTime")),
    }
    items = []
    for item in order.get("orderItems") or []:
        product = item.get("product") or {}
        price = (product.get("price") or {}).get("unitPrice") or {}
        items.append(
            {
                "amazon_order_id": order_id,
                "order_item_id": str(item["orderItemId"]),
                "sku": product.get("sellerSku"),
                "quantity": int(item.get("quantityOrdered") or 0),
                "unit_price": _decimal(price.get("amount")),
                "currency": price.get("currencyCode"),
            }
        )
    return head, items


# --- state -----------------------------------------------------------------------------------------------------------


@dataclass
class PollState:
    """A seller × region's progress: `watermark`, the newest lastUpdatedTime of the last completed pass (Amazon's
    clock); a pass in progress: its `pass_after` (the lastUpdatedAfter it was asked with), `pass_token` (its next
    page) and `pass_newest` (the newest lastUpdatedTime it returned so far)."""

    watermark: datetime | None = None
    pass_after: datetime | None = None
    pass_token: str | None = None
    pass_newest: datetime | None = None


def read_state(con: duckdb.DuckDBPyConnection, seller_id: str, region: str) -> PollState:
    row = con.execute(
        "SELECT watermark, pass_after, pass_token, pass_newest FROM order_poll_state "
        "WHERE seller_id = ? AND region = ?",
        [seller_id, region],
    ).fetchone()
    return PollState(*row) if row else PollState()


def query_after(
    state: PollState, now: datetime, overlap: timedelta = OVERLAP, initial_lookback: timedelta = INITIAL_LOOKBACK
) -> datetime:
    """The lastUpdatedAfter to ask with: the pass in progress's own; else the watermark minus the overlap; else
    (never polled) `initial_lookback` before `now`."""
    if state.pass_token and state.pass_after is not None:
        return state.pass_after
    if state.watermark is not None:
        return state.watermark - overlap
    return now - initial_lookback


def advance(state: PollState, after: datetime, newest: datetime | None, token: str | None) -> PollState:
    """The state after one page of the pass asked with `after`: `newest` is the page's newest lastUpdatedTime,
    `token` its next page (None: the pass is complete and the watermark moves to the pass's newest time)."""
    pass_newest = max((t for t in (state.pass_newest if state.pass_token else None, newest) if t), default=None)
    if token:
        return PollState(state.watermark, after, token, pass_newest)
    watermark = max((t for t in (state.watermark, pass_newest) if t), default=None)
    return PollState(watermark, None, None, None)


# --- storing ---------------------------------------------------------------------------------------------------------

_UPSERT = """
CREATE OR REPLACE TEMP TABLE newer AS
SELECT i.* REPLACE (
           coalesce(p.first_polled_at, i.first_polled_at) AS first_polled_at,
           (NOT EXISTS (SELECT 1 FROM order_changes c WHERE c.amazon_order_id = i.amazon_order_id
                        AND c.event_time >= i.last_update_time)) AS ahead_of_notifications)
FROM (SELECT DISTINCT ON (amazon_order_id) * FROM incoming_orders
      ORDER BY amazon_order_id, last_update_time DESC) i
LEFT JOIN polled_orders p USING (amazon_order_id)
WHERE p.amazon_order_id IS NULL OR i.last_update_time > p.last_update_time
"""


def _store_page(
    con: duckdb.DuckDBPyConnection,
    orders: pa.Table,
    items: pa.Table,
    state: PollState,
    seller_id: str,
    region: str,
    now: datetime,
    outcome: str,
) -> list[tuple[str, str, str | None, str | None]]:
    """Store one page and the new state in one transaction (run again when it loses to a concurrent writer); returns
    (order id, channel, status, fulfillment) of the versions that were new (an order first seen, or seen at a newer
    lastUpdatedTime)."""
    ensure_schema(con)  # order_changes, which the upsert reads, in a store the sensor never wrote
    ensure_poll_schema(con)
    con.register("incoming_orders", orders)
    con.register("incoming_items", items)
    params = {
        "seller": seller_id,
        "region": region,
        "watermark": state.watermark,
        "after": state.pass_after,
        "token": state.pass_token,
        "newest": state.pass_newest,
        "now": now,
        "outcome": outcome,
    }
    try:
        return _store_page_once(con, params)
    finally:
        con.unregister("incoming_orders")
        con.unregister("incoming_items")


def _store_page_once(con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> list[tuple]:
    for attempt in transaction(con, attempts=STORE_ATTEMPTS, is_conflict=is_conflict, first_wait=0.02):
        with attempt:
            con.execute(_UPSERT)
            con.execute("DELETE FROM polled_order_items WHERE amazon_order_id IN (SELECT amazon_order_id FROM newer)")
            con.execute("DELETE FROM polled_orders WHERE amazon_order_id IN (SELECT amazon_order_id FROM newer)")
            con.execute("INSERT INTO polled_orders BY NAME SELECT * FROM newer")
            con.execute(
                "INSERT INTO polled_order_items BY NAME SELECT DISTINCT ON (amazon_order_id, order_item_id) i.* "
                "FROM incoming_items i SEMI JOIN newer n USING (amazon_order_id) "
                "ORDER BY amazon_order_id, order_item_id"
            )
            # Seen again at the same version: only when we last saw it changes.
            con.execute(
                "UPDATE polled_orders SET polled_at = $now "
                "WHERE amazon_order_id IN (SELECT amazon_order_id FROM incoming_orders)",
                {"now": params["now"]},
            )
            con.execute(
                "INSERT OR REPLACE INTO order_poll_state VALUES ($seller, $region, $watermark, $after, $token, "
                "$newest, $now, $outcome)",
                params,
            )
            fresh = con.execute(
                "SELECT amazon_order_id, channel, order_status, fulfillment_type FROM newer ORDER BY amazon_order_id"
            ).fetchall()
    return fresh


# --- the poll --------------------------------------------------------------------------------------------------------


@dataclass
class PollResult:
    """What one poll did: pages asked, orders returned, versions stored (new or newer), the open MFN orders among
    them, whether the pass completed, why it stopped, and the window asked."""

    pages: int = 0
    orders_seen: int = 0
    stored: int = 0
    new_open_mfn: list[str] = field(default_factory=list)
    complete: bool = False
    stopped: str = "complete"
    asked_after: datetime | None = None
    watermark: datetime | None = None
    unrouted: int = 0


def poll_orders(
    client: Any,
    seller_id: str,
    region: str,
    markets: Mapping[str, str],
    connect: Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]],
    *,
    now: datetime | None = None,
    max_seconds: float = 60.0,
    cap_share: float = 1.0,
    overlap: timedelta = OVERLAP,
    initial_lookback: timedelta = INITIAL_LOOKBACK,
    max_results_per_page: int = 100,
) -> PollResult:
    """Poll one seller × region: `markets` maps each marketplace id to its channel name; `connect` opens the
    notification store (a short connection per page). Pages are asked until the pass completes or the next page's
    request could not be sent within `max_seconds` (the client's throttle waits for searchOrders' token and keeps
    within `cap_share` of the seller's module caps); the rest is resumed by the next poll."""
    now = now or datetime.now(UTC)
    deadline = time.time() + max_seconds
    with connect() as con:
        ensure_poll_schema(con)
        state = read_state(con, seller_id, region)
    result = PollResult(asked_after=query_after(state, now, overlap, initial_lookback))
    token = state.pass_token
    after = result.asked_after
    retried_token = False
    while True:
        try:
            page = client.search_orders_page(
                sorted(markets),
                last_updated_after=after,
                included_data=list(INCLUDED_DATA),
                max_results_per_page=max_results_per_page,
                pagination_token=token,
                cap_share=cap_share,
                deadline=deadline,
            )
        except InvalidInput:
            # A pass's token lasts 24 hours: an expired one starts the pass again from the watermark.
            if not token or retried_token:
                raise
            retried_token, token = True, None
            state = PollState(state.watermark)
            after = result.asked_after = query_after(state, now, overlap, initial_lookback)
            continue
        except Throttled as exc:
            if isinstance(exc, QuotaExceeded):
                raise
            result.stopped = f"time budget ({max_seconds:g} s): searchOrders' next token not ours in time"
            break
        result.pages += 1
        heads, rows = [], []
        for order in page.get("orders") or []:
            head, items = normalize_order(order)
            channel = markets.get(head["marketplace_id"] or "")
            result.orders_seen += 1
            if channel is None or head["last_update_time"] is None:
                result.unrouted += 1
                continue
            polled_at = datetime.now(UTC)
            heads.append(
                {
                    **head,
                    "seller_id": seller_id,
                    "region": region,
                    "channel": channel,
                    "first_polled_at": polled_at,
                    "stored_at": polled_at,
                    "polled_at": polled_at,
                    "ahead_of_notifications": True,
                }
            )
            rows += items
        newest = max((h["last_update_time"] for h in heads), default=None)
        token = (page.get("pagination") or {}).get("nextToken") or None
        state = advance(state, after, newest, token)
        with connect() as con:
            fresh = _store_page(
                con,
                pa.Table.from_pylist(heads, schema=_ORDERS),
                pa.Table.from_pylist(rows, schema=_ITEMS),
                state,
                seller_id,
                region,
                datetime.now(UTC),
                "complete" if token is None else "in progress",
            )
        result.stored += len(fresh)
        result.new_open_mfn += [
            order_id for order_id, _, status, kind in fresh if status in OPEN_ORDER_STATUSES and kind == "MFN"
        ]
        if token is None:
            result.complete = True
            break
    result.watermark = state.watermark
    return result


# --- what to republish ----------------------------------------------------------------------------------------------


def stock_changes_since(
    con: duckdb.DuckDBPyConnection, since: datetime | None
) -> tuple[dict[str, int], datetime | None]:
    """Seller → MFN order versions the poll stored after `since` (our clock) that were ahead of the notifications
    (no ORDER_CHANGE of the order as recent): each changes the seller's reservations (a new open order, or one
    closed), so every channel of the seller must publish again. Also the newest `stored_at` (the next `since`)."""
    if not has_poll_tables(con):
        return {}, since
    rows = con.execute(
        "SELECT seller_id, count(*), max(stored_at) FROM polled_orders WHERE stored_at > $since "
        "AND ahead_of_notifications AND coalesce(fulfillment_type, 'MFN') = 'MFN' GROUP BY seller_id ORDER BY 1",
        {"since": since or datetime(1970, 1, 1, tzinfo=UTC)},
    ).fetchall()
    if not rows:
        return {}, since
    return {seller: int(n) for seller, n, _ in rows}, max(r[2] for r in rows)


# --- coverage --------------------------------------------------------------------------------------------------------

_MISSED = """
SELECT p.amazon_order_id, p.order_status, p.fulfillment_type, p.purchase_date, p.last_update_time, p.first_polled_at
FROM polled_orders p
WHERE list_contains($channels::VARCHAR[], p.channel)
  AND NOT EXISTS (SELECT 1 FROM order_changes c WHERE c.amazon_order_id = p.amazon_order_id)
  AND p.first_polled_at <= $cutoff
ORDER BY p.first_polled_at, p.amazon_order_id
"""


def coverage(
    con: duckdb.DuckDBPyConnection, channels: Sequence[str], now: datetime, grace: timedelta
) -> tuple[int, list[tuple]]:
    """Notification coverage of `channels`: (orders the poll found, the ones no ORDER_CHANGE ever brought: id,
    status, fulfillment, purchase date, last update, when the poll first saw it). An order first polled less than
    `grace` ago is not counted missed yet: its notification may still be on its way (our clock on both sides)."""
    if not has_poll_tables(con):
        return 0, []
    params = {"channels": list(channels)}
    polled = con.execute(
        "SELECT count(*) FROM polled_orders WHERE list_contains($channels::VARCHAR[], channel)", params
    ).fetchall()[0][0]
    missed = con.execute(_MISSED, {**params, "cutoff": now - grace}).fetchall()
    return int(polled), missed
