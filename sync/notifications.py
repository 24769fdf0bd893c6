"""SP-API notifications: parse SQS message bodies, route them to channels, and store them once.

Amazon delivers the notification JSON itself as the SQS message body (spapi-facts §11); a queue fed through an SNS
topic carries it as the envelope's `Message` string instead, so both are accepted. Key casing differs per type
(PascalCase for ORDER_CHANGE, ANY_OFFER_CHANGED and FBA_INVENTORY_AVAILABILITY_CHANGES, camelCase for
FEED_PROCESSING_FINISHED), so keys are looked up case-insensitively.

A notification is identified by `NotificationMetadata.NotificationId`; FBA_INVENTORY_AVAILABILITY_CHANGES declares no
metadata, so its id is the SHA-256 of its canonical JSON (a redelivered copy hashes the same). Notifications are per
seller and carry the marketplace: (seller_id, marketplace_id) names the channel. Anything that cannot be parsed or
routed becomes a dead letter with the reason, so it is neither lost nor redelivered forever.

The store is one DuckDB file per data directory (`warehouse/_notifications.duckdb`), or in the deployed mode a Postgres
schema reached with the same SQL (resources.notification_store), written by the sensor in short transactions:
`notifications` (one row per notification and channel; duplicates are ignored), typed detail tables (`order_changes`,
`order_change_items`, `fba_changes`, and for ANY_OFFER_CHANGED `offer_change_summaries` — the Summary, one row — and
`offer_change_offers` — every listed offer, ours included; money as exact decimal strings) and `dead_letters`.
`ensure_schema` adds tables a store written by an earlier version lacks; the earlier `offer_changes` table, which only
the Summary's two prices filled, is no longer written or read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from resources.notification_store import STORE_ATTEMPTS, is_conflict
from resources.transaction import transaction
from seller.config import Channel
from sync.offers import OBSERVATION_SCHEMA, lower_keys, offer_fields, summary_fields

__all__ = [
    "AMAZON_NOTIFICATIONS_ACCOUNT",
    "SUBSCRIBED_TYPES",
    "Batch",
    "Malformed",
    "Notification",
    "Received",
    "parse_body",
    "prepare_batch",
    "queue_policy",
    "OPEN_ORDER_STATUSES",
    "affected",
    "store_batch",
    "ensure_schema",
]

# The notification types a channel subscribes to, with the payload version Amazon requires for each.
SUBSCRIBED_TYPES: dict[str, str] = {
    "ORDER_CHANGE": "1.0",
    "FBA_INVENTORY_AVAILABILITY_CHANGES": "1.0",
    "ANY_OFFER_CHANGED": "1.0",
}
# Stored but not acted on (the push side may subscribe to it).
_KNOWN_IGNORED = {"FEED_PROCESSING_FINISHED"}
# Amazon's notifications account must be allowed to send to (and inspect) the queue.
AMAZON_NOTIFICATIONS_ACCOUNT = "437568002678"

# Order statuses that keep stock reserved; every other status (Shipped, Canceled, Unfulfillable, ...) ends it.
OPEN_ORDER_STATUSES = ("PendingAvailability", "Pending", "Unshipped", "PartiallyShipped")


class Malformed(ValueError):
    """A message that is not a usable notification; the message is the reason stored with the dead letter."""


def queue_policy(queue_arn: str) -> str:
    """The SQS queue policy that lets Amazon's notifications account deliver to `queue_arn`."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AllowSellingPartnerApiNotifications",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{AMAZON_NOTIFICATIONS_ACCOUNT}:root"},
                    "Action": ["sqs:SendMessage", "sqs:GetQueueAttributes"],
                    "Resource": queue_arn,
                }
            ],
        }
    )


# --- parsing -----------------------------------------------------------------------------------------------------


def _get(doc: Any, *path: str, required: bool = True) -> Any:
    value = doc
    for key in path:
        value = value.get(key.lower()) if isinstance(value, dict) else None
        if value is None:
            if required:
                raise Malformed(f"missing {'.'.join(path)}")
            return None
    return value


def _text(doc: Any, *path: str, required: bool = True) -> str | None:
    value = _get(doc, *path, required=required)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise Malformed(f"{'.'.join(path)} must be a non-empty string")
    return value.strip()


def _time(doc: Any, *path: str, required: bool = True) -> datetime | None:
    value = _text(doc, *path, required=required)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Malformed(f"{'.'.join(path)} is not an ISO 8601 timestamp: {value[:40]!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _count(doc: Any, *path: str) -> int:
    value = _get(doc, *path)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Malformed(f"{'.'.join(path)} must be a non-negative whole number")
    return value


@dataclass
class Notification:
    """One parsed notification: identity, routing keys, the times that order it, and its typed detail rows."""

    notification_id: str
    notification_type: str
    seller_id: str
    marketplace_ids: tuple[str, ...]
    event_time: datetime  # when the change happened (the type's own trigger time, else EventTime)
    publish_time: datetime
    subject: str | None  # the order id, SKU or ASIN the state belongs to
    body: str
    detail: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # table -> rows (without channel)


def unwrap(body: str) -> tuple[dict[str, Any], str]:
    """The notification object and its JSON text from a raw or SNS-wrapped message body."""
    try:
        doc = json.loads(body)
    except (TypeError, ValueError):
        raise Malformed("message body is not JSON") from None
    if isinstance(doc, dict) and doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str):
        body = doc["Message"]  # an SNS envelope: the notification is the Message string
        try:
            doc = json.loads(body)
        except ValueError:
            raise Malformed("SNS envelope's Message is not JSON") from None
    if not isinstance(doc, dict):
        raise Malformed("message body is not a JSON object")
    return doc, body


def parse_body(body: str) -> Notification:
    """Parse one SQS message body; raises `Malformed` with the reason."""
    raw, text = unwrap(body)
    doc = lower_keys(raw)
    kind = _text(doc, "NotificationType")
    if kind not in SUBSCRIBED_TYPES and kind not in _KNOWN_IGNORED:
        raise Malformed(f"unsupported notification type {kind!r}")
    payload = _get(doc, "Payload")
    if not isinstance(payload, dict):
        raise Malformed("Payload must be an object")
    metadata = _get(doc, "NotificationMetadata", required=False) or {}
    event_time = _time(doc, "EventTime", required=False)
    publish_time = _time(metadata, "PublishTime", required=False)
    notification_id = _text(metadata, "NotificationId", required=False)
    if notification_id is None:
        canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        notification_id = "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    if kind == "ORDER_CHANGE":
        seller, markets, when, subject, detail = _order_change(payload)
    elif kind == "FBA_INVENTORY_AVAILABILITY_CHANGES":
        seller, markets, when, subject, detail = _fba_change(payload)
    elif kind == "ANY_OFFER_CHANGED":
        seller, markets, when, subject, detail = _offer_change(payload)
    else:  # FEED_PROCESSING_FINISHED: kept for the record, never routed to a marketplace
        inner = _get(payload, "feedProcessingFinishedNotification")
        seller, markets, when, subject, detail = _text(inner, "sellerId", required=False) or "", (), None, None, {}
        subject = _text(inner, "feedId", required=False)
    event_time = when or event_time or publish_time
    if event_time is None:
        raise Malformed("no event time (EventTime, the trigger's time or NotificationMetadata.PublishTime)")
    return Notification(
        notification_id, kind, seller, markets, event_time, publish_time or event_time, subject, text, detail
    )


def _order_change(payload: Any) -> tuple[str, tuple[str, ...], datetime | None, str, dict]:
    change = _get(payload, "OrderChangeNotification")
    seller = _text(change, "SellerId")
    order_id = _text(change, "AmazonOrderId")
    summary = _get(change, "Summary")
    market = _text(summary, "MarketplaceId")
    when = _time(change, "OrderChangeTrigger", "TimeOfOrderChange", required=False)
    header = {
        "amazon_order_id": order_id,
        "order_change_type": _text(change, "OrderChangeType", required=False),
        "order_status": _text(summary, "OrderStatus"),
        "fulfillment_type": _text(summary, "FulfillmentType", required=False),
        "purchase_date": _time(summary, "PurchaseDate", required=False),
    }
    items = _get(summary, "OrderItems", required=False) or []
    if not isinstance(items, list):
        raise Malformed("Summary.OrderItems must be an array")
    rows = []
    for item in items:
        rows.append(
            {
                "amazon_order_id": order_id,
                "order_item_id": _text(item, "OrderItemId"),
                "sku": _text(item, "SellerSKU"),
                "quantity": _count(item, "Quantity"),
            }
        )
    return seller, (market,), when, order_id, {"order_changes": [header], "order_change_items": rows}


def _fba_change(payload: Any) -> tuple[str, tuple[str, ...], datetime | None, str, dict]:
    seller = _text(payload, "SellerId")
    sku = _text(payload, "SKU")
    asin = _text(payload, "ASIN", required=False)
    by_market = _get(payload, "FulfillmentInventoryByMarketplace")
    if not isinstance(by_market, list) or not by_market:
        raise Malformed("FulfillmentInventoryByMarketplace must be a non-empty array")
    rows = []
    for entry in by_market:
        rows.append(
            {
                "marketplace_id": _text(entry, "MarketplaceId"),
                "sku": sku,
                "asin": asin,
                "fulfillable_quantity": _count(entry, "FulfillmentInventory", "Fulfillable"),
            }
        )
    return seller, tuple(r["marketplace_id"] for r in rows), None, sku, {"fba_changes": rows}


def _offer_change(payload: Any) -> tuple[str, tuple[str, ...], datetime | None, str, dict]:
    """One snapshot row (the Summary) and one row per listed offer (up to 20, ours included): the whole picture of
    the ASIN at TimeOfOfferChange, so a seller missing from it has left."""
    change = _get(payload, "AnyOfferChangedNotification")
    seller = _text(change, "SellerId")
    trigger = _get(change, "OfferChangeTrigger")
    market = _text(trigger, "MarketplaceId")
    asin = _text(trigger, "ASIN")
    when = _time(trigger, "TimeOfOfferChange", required=False)
    summary = _get(change, "Summary", required=False) or {}
    listed = _get(change, "Offers", required=False) or []
    if not isinstance(summary, dict) or not isinstance(listed, list):
        raise Malformed("Summary must be an object and Offers an array")
    offers: dict[str, dict[str, Any]] = {}
    for position, offer in enumerate(listed, start=1):
        fields = offer_fields(offer) if isinstance(offer, dict) else None
        if fields is None:
            raise Malformed(f"Offers[{position}] needs a SellerId and a ListingPrice.Amount")
        offers.setdefault(fields["seller_id"], {"asin": asin, **fields})  # a seller's first (best-ranked) offer
    condition = _text(trigger, "ItemCondition", required=False) or "new"
    head = {
        "asin": asin,
        "offer_change_type": _text(trigger, "OfferChangeType", required=False),
        **summary_fields(summary, list(offers.values()), seller, condition),
    }
    detail = {"offer_change_summaries": [head], "offer_change_offers": list(offers.values())}
    return seller, (market,), when, asin, detail


# --- a batch of SQS messages -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One SQS message as received: its id, receipt handle (for deletion) and body."""

    message_id: str
    receipt_handle: str
    body: str


_COLUMNS: dict[str, list[tuple[str, pa.DataType]]] = {
    "notifications": [
        ("notification_id", pa.string()),
        ("channel", pa.string()),
        ("notification_type", pa.string()),
        ("seller_id", pa.string()),
        ("marketplace_id", pa.string()),
        ("subject", pa.string()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("publish_time", pa.timestamp("us", tz="UTC")),
        ("received_at", pa.timestamp("us", tz="UTC")),
        ("message_id", pa.string()),
        ("body", pa.string()),
    ],
    "order_changes": [
        ("notification_id", pa.string()),
        ("channel", pa.string()),
        ("amazon_order_id", pa.string()),
        ("order_change_type", pa.string()),
        ("order_status", pa.string()),
        ("fulfillment_type", pa.string()),
        ("purchase_date", pa.timestamp("us", tz="UTC")),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("publish_time", pa.timestamp("us", tz="UTC")),
    ],
    "order_change_items": [
        ("notification_id", pa.string()),
        ("channel", pa.string()),
        ("amazon_order_id", pa.string()),
        ("order_item_id", pa.string()),
        ("sku", pa.string()),
        ("quantity", pa.int64()),
    ],
    "fba_changes": [
        ("notification_id", pa.string()),
        ("channel", pa.string()),
        ("sku", pa.string()),
        ("asin", pa.string()),
        ("fulfillable_quantity", pa.int64()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("publish_time", pa.timestamp("us", tz="UTC")),
    ],
    "offer_change_summaries": [
        ("notification_id", pa.string()),
        ("channel", pa.string()),
        ("asin", pa.string()),
        ("offer_change_type", pa.string()),
        ("number_of_offers", pa.int64()),
        ("buybox_landed_price", pa.string()),
        ("lowest_landed_price", pa.string()),
        ("competitive_price_threshold", pa.string()),
        ("our_buybox", pa.bool_()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("publish_time", pa.timestamp("us", tz="UTC")),
    ],
    "offer_change_offers": [
        ("notification_id", pa.string()),
        ("channel", pa.string()),
        *((f.name, f.type) for f in OBSERVATION_SCHEMA if f.name != "observed_at"),  # observed_at: the event time
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("publish_time", pa.timestamp("us", tz="UTC")),
    ],
    "dead_letters": [
        ("dead_letter_id", pa.string()),
        ("message_id", pa.string()),
        ("received_at", pa.timestamp("us", tz="UTC")),
        ("reason", pa.string()),
        ("body", pa.string()),
    ],
}

_SQL_TYPES = {
    pa.string(): "VARCHAR",
    pa.int64(): "BIGINT",
    pa.bool_(): "BOOLEAN",
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
}
# The key each table is deduplicated on.
_KEYS = {
    "notifications": ("notification_id", "channel"),
    "order_changes": ("notification_id", "channel"),
    "order_change_items": ("notification_id", "channel", "order_item_id"),
    "fba_changes": ("notification_id", "channel"),
    "offer_change_summaries": ("notification_id", "channel"),
    "offer_change_offers": ("notification_id", "channel", "seller_id"),
    "dead_letters": ("dead_letter_id",),
}

# The typed detail tables, one or more rows per stored notification.
_DETAIL = ("order_changes", "order_change_items", "fba_changes", "offer_change_summaries", "offer_change_offers")


@dataclass
class Batch:
    """Rows to store for a batch of messages, per table; `handles` are the receipt handles safe to delete once the
    batch is stored (every message of the batch: stored, duplicate or dead letter)."""

    rows: dict[str, list[dict[str, Any]]]
    handles: list[str]

    def table(self, name: str) -> pa.Table:
        return pa.Table.from_pylist(self.rows[name], schema=pa.schema(_COLUMNS[name]))


def _dead_letter(message: Received, reason: str, now: datetime) -> dict[str, Any]:
    digest = hashlib.sha256(message.body.encode("utf-8", "replace")).hexdigest()
    return {
        "dead_letter_id": f"sha256:{digest}",
        "message_id": message.message_id,
        "received_at": now,
        "reason": reason,
        "body": message.body,
    }


def prepare_batch(messages: Iterable[Received], channels: Mapping[str, Channel], now: datetime) -> Batch:
    """Parse and route every message: one notification row per (notification, channel), or one dead letter.

    Routing: the channel whose (seller_id, marketplace_id) matches. An FBA notification may list several
    marketplaces; it goes to every configured one and only a notification for no configured channel is a dead
    letter. FEED_PROCESSING_FINISHED is stored under channel '' (kept, not acted on here)."""
    by_key = {(c.seller_id, c.marketplace_id): c.name for c in channels.values()}
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in _COLUMNS}
    handles: list[str] = []
    for message in messages:
        handles.append(message.receipt_handle)
        try:
            note = parse_body(message.body)
        except Malformed as exc:
            rows["dead_letters"].append(_dead_letter(message, str(exc), now))
            continue
        except Exception as exc:  # noqa: BLE001 - a poison message must not stop the queue
            rows["dead_letters"].append(_dead_letter(message, f"unreadable ({type(exc).__name__}: {exc})", now))
            continue
        if note.notification_type in _KNOWN_IGNORED:
            targets = [("", None)]
        else:
            targets = [(by_key[(note.seller_id, m)], m) for m in note.marketplace_ids if (note.seller_id, m) in by_key]
            if not targets:
                markets = ", ".join(note.marketplace_ids)
                reason = f"no channel for seller {note.seller_id} and marketplace {markets} (not configured)"
                rows["dead_letters"].append(_dead_letter(message, reason, now))
                continue
        times = {"event_time": note.event_time, "publish_time": note.publish_time}
        for channel, market in targets:
            base = {"notification_id": note.notification_id, "channel": channel}
            rows["notifications"].append(
                {
                    **base,
                    "notification_type": note.notification_type,
                    "seller_id": note.seller_id,
                    "marketplace_id": market,
                    "subject": note.subject,
                    **times,
                    "received_at": now,
                    "message_id": message.message_id,
                    "body": note.body,
                }
            )
            for table, detail in note.detail.items():
                for row in detail:
                    if "marketplace_id" in row and row["marketplace_id"] != market:
                        continue
                    extra = times if table != "order_change_items" else {}  # an item has its order's times
                    rows[table].append({**base, **{k: v for k, v in row.items() if k != "marketplace_id"}, **extra})
    return Batch(rows, handles)


# --- storage -----------------------------------------------------------------------------------------------------


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the store's tables (no-op when present)."""
    present = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = current_schema() AND NOT temporary AND table_name IN $names",
        {"names": list(_COLUMNS)},
    ).fetchall()[0][0]
    if present == len(_COLUMNS):
        return
    for name, columns in _COLUMNS.items():
        cols = ", ".join(f"{n} {_SQL_TYPES[t]}" for n, t in columns)
        key = ", ".join(_KEYS[name])
        con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({cols}, PRIMARY KEY ({key}))")


def store_batch(con: duckdb.DuckDBPyConnection, batch: Batch) -> list[dict[str, Any]]:
    """Store a batch in one transaction; notifications already stored (or repeated inside the batch) are ignored. A
    transaction that loses to another process storing some of the same rows is run again (it then skips them).

    Returns the notification rows that were new (channel, notification_type, subject, event_time...), which are
    the ones to act on."""
    ensure_schema(con)
    # Only the tables the batch has rows for (a burst of orders has no offer, FBA or dead-letter rows): every
    # statement costs a few milliseconds whatever its size.
    incoming = [name for name in _COLUMNS if name == "notifications" or batch.rows[name]]
    for name in incoming:
        con.register(f"incoming_{name}", batch.table(name))
    try:
        fresh = _store(con, incoming)
    finally:
        for name in incoming:
            con.unregister(f"incoming_{name}")
    names = ("notification_id", "channel", "notification_type", "subject", "event_time")
    return [dict(zip(names, row, strict=True)) for row in fresh]


def _store(con: duckdb.DuckDBPyConnection, incoming: list[str]) -> list[tuple]:
    """One transaction: the new notifications (not stored yet, first of the batch) and their detail rows."""
    for attempt in transaction(con, attempts=STORE_ATTEMPTS, is_conflict=is_conflict, first_wait=0.02):
        with attempt:
            key = ", ".join(_KEYS["notifications"])
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE fresh AS SELECT DISTINCT ON ({key}) * FROM incoming_notifications i "
                f"WHERE NOT EXISTS (SELECT 1 FROM notifications n WHERE n.notification_id = i.notification_id "
                f"AND n.channel = i.channel) ORDER BY {key}, received_at"
            )
            con.execute("INSERT INTO notifications SELECT * FROM fresh")
            for name in _DETAIL:
                if name not in incoming:
                    continue
                detail_key = ", ".join(_KEYS[name])
                con.execute(
                    f"INSERT INTO {name} SELECT DISTINCT ON ({detail_key}) d.* FROM incoming_{name} d "
                    f"SEMI JOIN fresh f ON f.notification_id = d.notification_id AND f.channel = d.channel "
                    f"ORDER BY {detail_key}"
                )
            if "dead_letters" in incoming:
                con.execute(
                    "INSERT INTO dead_letters SELECT DISTINCT ON (dead_letter_id) * FROM incoming_dead_letters "
                    "ON CONFLICT DO NOTHING"
                )
            fresh = con.execute(
                "SELECT notification_id, channel, notification_type, subject, event_time FROM fresh ORDER BY event_time"
            ).fetchall()
    return fresh


def affected(fresh: Sequence[Mapping[str, Any]]) -> dict[str, set[str]]:
    """Channel -> the notification types newly stored for it (what to refresh)."""
    out: dict[str, set[str]] = {}
    for row in fresh:
        if row["channel"]:
            out.setdefault(row["channel"], set()).add(row["notification_type"])
    return out
