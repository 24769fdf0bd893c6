"""The six invariants of issue 6, each a function that *asserts* (AssertionError with a precise message).

They read the seller's own files, the channel's DuckDB file and the notification store (read-only), the emulator's
own state (its listings read-out, the feeds and orders it holds) and a `Wiretap` of every request that reached it,
never the pipeline's own summary alone:

1. One final status per SKU and run. The SKUs come from the seller's files in the data dir (the channel's rows of
   `channel_mappings` with an ASIN, joined to `master_inventory`), read here with the csv module or pyarrow, not
   from the pipeline's tables: a row the pipeline loses anywhere (validation, reconcile, pricing) is caught. A
   mapped SKU the master lacks must have a `publish`/`master_missing` row, one without an ASIN `mapping_missing`.
2. Bounds, for every offer that reached Amazon: patchListingsItem and putListingsItem bodies (each purchasable_offer
   by its own `marketplace_id`, else the request's marketplaceIds; quantities by the request's marketplaceIds) and
   the messages of every JSON_LISTINGS_FEED document a createFeed named (by inputFeedDocumentId; the feed's
   marketplaceIds). A document uploaded but never named by a createFeed is not counted: Amazon applies a document
   only through a feed, so it never reached a listing. Checking nothing while something was sent fails.
   Reservations: the seller's open FBM orders (every channel of the seller) recomputed from the notification store.
3. Nothing applied twice: no feed content created twice (emulator's feeds; FATAL/CANCELLED ones applied nothing), no
   identical patch accepted twice, no order confirmed twice (the emulator's packages), each open order's
   reservation counted once (the channel's `reservations` table against the store), each notification requesting
   at most the runs it should (one per target channel and job).
4. Every notification applied or dead-lettered. 5. Convergence with Amazon. 6. No secret in files, logs, metadata or
   the run's event log (`run_log_texts`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import httpx
import pyarrow.parquet as pq

from emulator.server import EmulatorServer
from feeds.updates import offer_updates
from reliability.wiretap import Wiretap
from resources.warehouse import Warehouse, channel_tables
from seller.config import Channel, load_channels
from seller.inputs import find_input

__all__ = [
    "FINAL_STATUSES",
    "OPEN_ORDER_STATUSES",
    "SellerSkus",
    "expected_offers",
    "seller_skus",
    "one_final_status",
    "nothing_submitted",
    "Sent",
    "reached_amazon",
    "sent_to_amazon",
    "seller_reservations",
    "within_bounds",
    "no_double_submission",
    "no_double_confirmation",
    "reservations_counted_once",
    "requested_runs_bounded",
    "stored_notifications",
    "notifications_accounted",
    "converged",
    "run_log_texts",
    "no_secrets",
]

FINAL_STATUSES = frozenset(
    {"accepted", "warning", "error", "category_restricted", "not_applied", "unchanged", "pending", "deferred"}
)
REJECTED = frozenset({"error", "category_restricted"})
# Orders v0 statuses of an order that still has to ship (the reservation rule of sync/orders.py, stated again here).
OPEN_ORDER_STATUSES = frozenset({"PendingAvailability", "Pending", "Unshipped", "PartiallyShipped"})
# Ties between two states of one order at the same event and publish time: the more final one (later here) wins.
_STATUS_RANK = (
    "PendingAvailability",
    "Pending",
    "Unshipped",
    "PartiallyShipped",
    "Shipped",
    "InvoiceUnconfirmed",
    "Unfulfillable",
    "Canceled",
)
# The runs a stored notification asks for (the sensor's contract): job per type; ORDER_CHANGE on every channel of the
# order's seller (the stock is the seller's), the others on their own channel.
_JOB_FOR_TYPE = {
    "ORDER_CHANGE": "inventory_job",
    "FBA_INVENTORY_AVAILABILITY_CHANGES": "inventory_job",
    "ANY_OFFER_CHANGED": "prices_job",
}


def _connect(data: Path, channel: str) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
    """The channel's data, read-only, in either mode (its file, or its schema in the lake)."""
    return Warehouse(data_dir=str(data)).connect(channel, read_only=True)


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def _channels(channels: Mapping[str, Channel] | None) -> Mapping[str, Channel]:
    return channels if channels is not None else load_channels()


def expected_offers(data: Path, channel: str) -> dict[str, dict[str, Any]]:
    """sku → what the pipeline computed for the channel (the `updates` the push sends: price, floor, ceiling,
    quantity — NULL when none may be sent). Invariant 5 compares Amazon with it; invariant 1 does not use it."""
    with _connect(data, channel) as con:
        rel = offer_updates(con, "buybox_prices", "reconciled_inventory")
        names = rel.columns
        return {row[0]: dict(zip(names, row, strict=True)) for row in rel.fetchall()}


# -- the seller's files ----------------------------------------------------------------------------------------------
def _file_rows(path: Path, columns: Sequence[str]) -> list[dict[str, str]]:
    """The rows of a seller file as text (CSV: UTF-8 with or without a BOM, any line ending, quoted line breaks; a
    byte that is not UTF-8 is replaced: such a row is the pipeline's input error, not a SKU to expect)."""
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        present = [c for c in columns if c in table.column_names]
        return [{k: "" if v is None else str(v) for k, v in row.items()} for row in table.select(present).to_pylist()]
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    csv.field_size_limit(2**31 - 1)  # a 10 MB cell is a row problem the pipeline reports, not a reason to stop here
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip() for h in next(reader, [])]
    return [dict(zip(header, row, strict=False)) for row in reader if row]


@dataclass(frozen=True)
class SellerSkus:
    """What the seller's files say one channel must account for in a run that publishes."""

    to_submit: frozenset[str]  # mapped with an ASIN and in the master: one `submit` row each
    master_missing: frozenset[str]  # mapped but not in the master: one `publish`/`master_missing` row each
    not_listed: frozenset[str] = field(default_factory=frozenset)  # in the master, mapped without an ASIN


def seller_skus(data: Path, channel: str) -> SellerSkus:
    """The channel's SKUs as the seller's files in `data` give them (channel_mappings.{csv,parquet} and
    master_inventory.{csv,parquet}), read directly rather than through the pipeline's validated tables: those are
    the pipeline's own output, and a valid row they lose without an input error would go unnoticed."""
    mappings_path = find_input(data, "channel_mappings")
    master_path = find_input(data, "master_inventory")
    assert mappings_path and master_path, f"invariant 1: no channel_mappings or master_inventory file in {data}"
    master = {row.get("sku", "") for row in _file_rows(master_path, ["sku"])}
    rows = [r for r in _file_rows(mappings_path, ["channel", "sku", "asin"]) if r.get("channel", "").strip() == channel]
    listed = {r["sku"] for r in rows if (r.get("asin") or "").strip()}
    mapped = {r["sku"] for r in rows}
    return SellerSkus(frozenset(listed & master), frozenset(mapped - master), frozenset((mapped - listed) & master))


# -- 1 --------------------------------------------------------------------------------------------------------------
def one_final_status(data: Path, channel: str, run_id: str, allowed: Iterable[str] = FINAL_STATUSES) -> dict[str, str]:
    """Every SKU the seller's files map on the channel (with an ASIN, in the master) has exactly one `submit` row for
    `run_id`, with a final status; no other SKU has one; every mapped SKU the master lacks has a `master_missing` row
    and every one mapped without an ASIN a `mapping_missing` row of the run. Returns sku → status."""
    expected = seller_skus(data, channel)
    mapped = set(expected.to_submit)
    assert mapped, f"invariant 1: channel {channel} has no mapped SKU to check"
    with _connect(data, channel) as con:
        rows = con.execute(
            "SELECT sku, status FROM sync_history WHERE run_id = ? AND operation = 'submit' AND channel = ?",
            [run_id, channel],
        ).fetchall()
        published = con.execute(
            "SELECT sku, status FROM sync_history WHERE run_id = ? AND operation = 'publish' AND channel = ?",
            [run_id, channel],
        ).fetchall()
    counts = Counter(sku for sku, _ in rows)
    twice = sorted(sku for sku, n in counts.items() if n > 1)
    missing = sorted(mapped - set(counts))
    extra = sorted(set(counts) - mapped)
    assert not twice, f"invariant 1: run {run_id} has several submit rows for {twice}"
    assert not missing, f"invariant 1: run {run_id} has no submit row for mapped SKU(s) {missing}"
    assert not extra, f"invariant 1: run {run_id} has submit rows for unmapped SKU(s) {extra}"
    for status, skus in (("master_missing", expected.master_missing), ("mapping_missing", expected.not_listed)):
        recorded = {sku for sku, s in published if s == status}
        absent = sorted(skus - recorded)
        assert not absent, f"invariant 1: run {run_id} has no publish/{status} row for {absent}"
    statuses = dict(rows)
    allowed = set(allowed)
    odd = {sku: s for sku, s in statuses.items() if s not in allowed}
    assert not odd, f"invariant 1: run {run_id}: statuses outside {sorted(allowed)}: {odd}"
    return statuses


def nothing_submitted(data: Path, channel: str, tap: Wiretap, marketplace_id: str) -> None:
    """A run that must publish nothing for the channel (bad file, revoked access): no submit row but `deferred`, no
    published_state, and no listing write or feed for the marketplace reached Amazon."""
    with _connect(data, channel) as con:
        tables = channel_tables(con)
        published = (
            con.execute("SELECT count(*) FROM published_state").fetchall()[0][0] if "published_state" in tables else 0
        )
        sent = (
            con.execute("SELECT status, count(*) FROM sync_history WHERE operation = 'submit' GROUP BY ALL").fetchall()
            if "sync_history" in tables
            else []
        )
    assert published == 0, f"channel {channel}: {published} SKU(s) in published_state though nothing may be published"
    assert {s for s, _ in sent} <= {"deferred"}, f"channel {channel}: submit rows {sent} though nothing may be sent"
    written = [w.sku for w in tap.listing_writes() if marketplace_id in w.marketplace_ids]
    assert not written, f"channel {channel}: a listing write reached Amazon for {written}"
    feeds = [f for f in tap.feeds() if marketplace_id in f.marketplace_ids]
    assert not feeds, f"channel {channel}: {len(feeds)} createFeed request(s) reached Amazon"


# -- 2 --------------------------------------------------------------------------------------------------------------
def _money(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value[0]["schedule"][0]["value_with_tax"]))
    except (KeyError, IndexError, TypeError):
        return None


@dataclass
class Sent:
    """What reached Amazon for one marketplace in a window of the wiretap."""

    offers: list[dict[str, Any]]  # sku, via, and price/min/max and/or quantity
    requests: int  # listing writes and createFeeds for the marketplace (whether or not an offer could be read)
    problems: list[str]  # requests whose offers could not be read or were aimed elsewhere
    unreferenced_documents: int = 0  # JSON documents uploaded in the window that no createFeed named


def _offer(
    sku: str, patches: Sequence[Any], request_marketplaces: Sequence[str], marketplace_id: str, via: str
) -> tuple[dict[str, Any] | None, list[str]]:
    """The offer one write (a patch body, a put's attributes, a feed message) carries for `marketplace_id`: a
    purchasable_offer value by its own `marketplace_id` (else the request's), a quantity by the request's
    marketplaceIds (fulfillment_availability names none)."""
    out: dict[str, Any] = {"sku": sku, "via": via}
    problems = []
    ours = marketplace_id in request_marketplaces
    for patch in patches:
        if not isinstance(patch, dict) or patch.get("op") == "delete":
            continue
        values = patch.get("value") or []
        values = values if isinstance(values, list) else [values]
        if patch.get("path") == "/attributes/purchasable_offer":
            for value in values:
                if not isinstance(value, dict):
                    continue
                target = value.get("marketplace_id")
                if ours and target is not None and target not in request_marketplaces:
                    problems.append(
                        f"{sku} ({via}): a purchasable_offer for {target} in a request for {marketplace_id}"
                    )
                if target != marketplace_id and (target is not None or not ours):
                    continue
                out["price"] = _money(value.get("our_price"))
                out["min"] = _money(value.get("minimum_seller_allowed_price"))
                out["max"] = _money(value.get("maximum_seller_allowed_price"))
        elif patch.get("path") == "/attributes/fulfillment_availability" and ours:
            for value in values:
                if isinstance(value, dict) and "quantity" in value:
                    out["quantity"] = value.get("quantity")
    return (out if len(out) > 2 else None), problems


def reached_amazon(tap: Wiretap, marketplace_id: str, since: int = 0) -> Sent:
    """Every offer that reached Amazon for the marketplace from exchange `since` on: listing writes (patch, put) and
    the messages of the JSON_LISTINGS_FEED document each createFeed for the marketplace named (uploaded earlier or in
    the window). A createFeed counts whatever its answer (a lost answer may hide a created feed)."""
    offers: list[dict[str, Any]] = []
    problems: list[str] = []
    requests = 0
    for write in tap.listing_writes(since):
        offer, wrong = _offer(write.sku, write.patches, write.marketplace_ids, marketplace_id, write.operation)
        problems += wrong
        if offer is not None:
            offers.append({**offer, "at": write.at})
        if write.operation == "patchListingsItem" and marketplace_id in write.marketplace_ids or offer is not None:
            requests += 1
    documents = tap.documents()
    for number, feed in enumerate(tap.feeds(since), start=1):
        if marketplace_id not in feed.marketplace_ids:
            continue
        requests += 1
        via = f"createFeed #{number} ({feed.document_id})"
        bodies = documents.get(feed.document_id, [])
        read = 0
        for body in bodies:
            try:
                document = json.loads(body)
                messages = document.get("messages") or []
            except (ValueError, AttributeError):
                continue  # not a JSON_LISTINGS_FEED document: counted below as unreadable
            for message in messages:
                offer, wrong = _offer(
                    str(message.get("sku")), message.get("patches") or [], feed.marketplace_ids, marketplace_id, via
                )
                problems += wrong
                if offer is not None:
                    offers.append({**offer, "at": feed.at})
                    read += 1
        may_have_applied = feed.status is None or feed.status < 400 or feed.status >= 500
        if not read and may_have_applied:
            problems.append(
                f"{via}: {feed.feed_type} for {marketplace_id} reached Amazon but no offer could be read from its "
                f"document ({len(bodies)} upload(s))"
            )
    named = {f.document_id for f in tap.feeds()}
    unreferenced = {
        e.path.rstrip("/").rsplit("/", 1)[1]
        for e in tap.calls("uploadDocument", since)
        if e.status is not None and e.status < 300
    } - named
    return Sent(offers, requests, problems, len(unreferenced))


def sent_to_amazon(tap: Wiretap, marketplace_id: str, since: int = 0) -> list[dict[str, Any]]:
    """The offers of `reached_amazon`: sku, via, and price/min/max and/or quantity."""
    return reached_amazon(tap, marketplace_id, since).offers


def _store_path(data: Path) -> Path:
    return data / "warehouse" / "_notifications.duckdb"


def _master_as_of(data: Path) -> datetime | None:
    path = find_input(data, "master_inventory")
    return datetime.fromtimestamp(path.stat().st_mtime, UTC) if path else None


def seller_reservations(
    data: Path, channel: str, channels: Mapping[str, Channel] | None = None, known_at: datetime | None = None
) -> dict[str, dict[str, int]]:
    """sku → {order id → units} held by the open FBM orders of the channel's SELLER (all its channels), recomputed
    from the notification store's ORDER_CHANGE rows: per order the latest state (event time, then publish time, then
    the more final status), items from its latest notification that lists items; open = an open status, MFN, not
    released by the master file (written after we stored the order's latest notification). `known_at`: only the
    notifications stored by then count (what the pipeline could know when an offer left). No store: nothing."""
    return _reservations_from(_order_rows(data, channel, channels), _master_as_of(data), known_at)


def _order_rows(data: Path, channel: str, channels: Mapping[str, Channel] | None) -> tuple[list[tuple], list[tuple]]:
    """The ORDER_CHANGE rows of the channel's seller (with when each was stored) and their items."""
    store = _store_path(data)
    if not store.exists():
        return [], []
    config = _channels(channels)
    seller = [name for name, c in config.items() if c.seller_id == config[channel].seller_id]
    con = duckdb.connect(str(store), read_only=True)
    try:
        if not {"order_changes", "order_change_items", "notifications"} <= _tables(con):
            return [], []
        changes = con.execute(
            "SELECT c.amazon_order_id, c.order_status, c.fulfillment_type, c.event_time, c.publish_time, "
            "c.notification_id, n.received_at FROM order_changes c JOIN notifications n "
            "ON n.notification_id = c.notification_id AND n.channel = c.channel "
            "WHERE list_contains($c::VARCHAR[], c.channel)",
            {"c": seller},
        ).fetchall()
        items = con.execute(
            "SELECT notification_id, sku, quantity FROM order_change_items WHERE list_contains($c::VARCHAR[], channel)",
            {"c": seller},
        ).fetchall()
    finally:
        con.close()
    return changes, items


def _reservations_from(
    rows: tuple[list[tuple], list[tuple]], as_of: datetime | None, known_at: datetime | None
) -> dict[str, dict[str, int]]:
    changes, items = rows
    by_notification: dict[str, list[tuple[str, int]]] = {}
    for nid, sku, quantity in items:
        by_notification.setdefault(nid, []).append((sku, int(quantity)))
    latest: dict[str, tuple] = {}
    latest_items: dict[str, tuple] = {}
    stored: dict[str, datetime] = {}
    for order_id, status, fulfillment, event, publish, nid, received in changes:
        if known_at is not None and received > known_at:
            continue
        stored[order_id] = max(stored.get(order_id, received), received)
        rank = _STATUS_RANK.index(status) + 1 if status in _STATUS_RANK else 0
        key = (event, publish, rank, nid)
        if order_id not in latest or key > latest[order_id][0]:
            latest[order_id] = (key, status, fulfillment)
        if nid in by_notification and (
            order_id not in latest_items or (event, publish, nid) > latest_items[order_id][0]
        ):
            latest_items[order_id] = ((event, publish, nid), by_notification[nid])
    held: dict[str, dict[str, int]] = {}
    for order_id, (_, status, fulfillment) in latest.items():
        if status not in OPEN_ORDER_STATUSES or (fulfillment or "MFN") != "MFN" or order_id not in latest_items:
            continue
        if as_of is not None and as_of > stored[order_id]:
            continue  # the master was written after the order's last notification reached us: it counts the order
        for sku, quantity in latest_items[order_id][1]:
            held.setdefault(sku, {})
            held[sku][order_id] = held[sku].get(order_id, 0) + quantity
    return held


def within_bounds(
    data: Path,
    channel: str,
    tap: Wiretap,
    marketplace_id: str,
    since: int = 0,
    channels: Mapping[str, Channel] | None = None,
) -> int:
    """No price sent below the SKU's min_price or above its max_price, no FBM quantity above master stock minus the
    reservations of ALL the seller's channels (recomputed from the notification store, so a run that never
    subtracted them is caught), no quantity at all for an FBA SKU (or a channel_wins one), for what reached Amazon
    from exchange `since` on (check after every run: the bounds are the seller's files of that run). Fails when
    nothing could be checked though a listing write or a createFeed reached Amazon for the marketplace. Returns the
    offers checked."""
    mappings: dict[str, tuple[str, str | None, Decimal, Decimal]] = {}
    master: dict[str, int] = {}
    if Warehouse(data_dir=str(data)).has_data(channel):  # else nothing was read: anything sent is unmapped
        with _connect(data, channel) as con:
            mappings = {
                sku: (fulfillment, strategy, Decimal(str(lo)), Decimal(str(hi)))
                for sku, fulfillment, strategy, lo, hi in con.execute(
                    "SELECT sku, fulfillment, conflict_strategy, min_price, max_price FROM channel_mappings "
                    "WHERE channel = ?",
                    [channel],
                ).fetchall()
            }
            master = dict(con.execute("SELECT sku, quantity FROM master_inventory").fetchall())
    # The bound of an offer is what the seller's orders held when its request reached Amazon: an order stored after
    # the offer left could not have lowered it (that is the next run's job, checked on that run's own offers).
    rows, as_of = _order_rows(data, channel, channels), _master_as_of(data)
    by_time: dict[float, dict[str, int]] = {}

    def reserved_at(at: float) -> dict[str, int]:
        if at not in by_time:
            held = _reservations_from(rows, as_of, datetime.fromtimestamp(at, UTC) if at else None)
            by_time[at] = {sku: sum(orders.values()) for sku, orders in held.items()}
        return by_time[at]

    sent = reached_amazon(tap, marketplace_id, since)
    problems = list(sent.problems)
    for offer in sent.offers:
        sku = offer["sku"]
        if sku not in mappings:
            problems.append(f"{sku}: sent ({offer['via']}) but not mapped on {channel}")
            continue
        fulfillment, strategy, lo, hi = mappings[sku]
        for key in ("price", "min", "max"):
            value = offer.get(key)
            if key == "price" and value is None:
                problems.append(f"{sku}: an offer without a price ({offer['via']})")
            if value is not None and not lo <= value <= hi:
                problems.append(f"{sku}: {key} {value} outside [{lo}, {hi}] ({offer['via']})")
        if "quantity" in offer:
            if fulfillment == "FBA" or (strategy or "master_wins") != "master_wins":
                problems.append(f"{sku}: quantity {offer['quantity']} sent for a {fulfillment}/{strategy} SKU")
            elif sku not in master:
                problems.append(f"{sku}: quantity {offer['quantity']} sent for a SKU not in master_inventory")
            else:
                held = int(reserved_at(offer.get("at", 0.0)).get(sku) or 0)
                limit = max(int(master[sku]) - held, 0)
                if int(offer["quantity"]) > limit:
                    problems.append(
                        f"{sku}: quantity {offer['quantity']} > master {master[sku]} - reserved {held} ({offer['via']})"
                    )
    if sent.requests and not sent.offers:
        problems.append(
            f"0 offers checked though {sent.requests} listing write(s)/createFeed(s) for {marketplace_id} "
            "reached Amazon"
        )
    assert not problems, "invariant 2: " + "; ".join(problems)
    return len(sent.offers)


# -- 3 --------------------------------------------------------------------------------------------------------------
def _canonical(content: bytes) -> bytes:
    """A feed document's meaning: its messages without their messageId (a renumbered resend is the same content),
    numbers compared by value; a document that is not JSON as its bytes."""
    try:
        document = json.loads(content, parse_float=Decimal)
        messages = document["messages"]
    except (ValueError, KeyError, TypeError):
        return content
    body = sorted(
        json.dumps(
            {k: v for k, v in m.items() if k != "messageId"}, sort_keys=True, default=lambda d: f"{d.normalize():f}"
        )
        for m in messages
        if isinstance(m, dict)
    )
    return json.dumps(body).encode()


def no_double_submission(tap: Wiretap, server: EmulatorServer) -> None:
    """No feed content created twice by Amazon, in one run or across runs (the same messages for the same feed type
    and marketplaces, whatever their messageIds), and no patch body accepted twice for one SKU. A feed that ended
    FATAL or CANCELLED applied nothing: sending its content again is the recovery, not a duplicate. Confirmations:
    `no_double_confirmation`."""
    store = server.state.store
    with server.state.lock:
        contents = [
            (f.feed_id, f.feed_type, sorted(f.marketplace_ids), store.documents[f.input_document_id].content or b"")
            for f in store.feeds.values()
            if f.status not in ("FATAL", "CANCELLED")
        ]
    hashes: dict[str, list[str]] = {}
    for feed_id, feed_type, marketplaces, content in contents:
        key = f"{feed_type}\0{','.join(marketplaces)}\0".encode() + _canonical(content)
        hashes.setdefault(hashlib.sha256(key).hexdigest(), []).append(feed_id)
    twice = {h[:12]: ids for h, ids in hashes.items() if len(ids) > 1}
    assert not twice, f"invariant 3: the same feed content was submitted as several feeds: {twice}"
    accepted = Counter(
        (e.path, e.body) for e in tap.calls("patchListingsItem") if e.status is not None and e.status < 300
    )
    again = sorted(path.rsplit("/", 1)[1] for (path, _), n in accepted.items() if n > 1)
    assert not again, f"invariant 3: identical patches accepted more than once for {again}"


def no_double_confirmation(server: EmulatorServer) -> int:
    """No order confirmed twice: among the packages Amazon recorded for one order (confirmShipment calls that took
    effect, whatever answer the caller got), no packageReferenceId and no carrier + tracking number twice. Returns
    the packages seen."""
    with server.state.lock:
        orders = {o.order_id: [dict(p) for p in o.shipments] for o in server.state.store.orders.values()}
    problems = []
    for order_id, packages in sorted(orders.items()):
        references = Counter(str(p.get("packageReferenceId")) for p in packages)
        tracking = Counter((p.get("carrierCode"), p.get("trackingNumber")) for p in packages)
        again = [r for r, n in references.items() if n > 1] + [f"{c} {t}" for (c, t), n in tracking.items() if n > 1]
        if again:
            problems.append(f"order {order_id} confirmed {len(packages)} times ({', '.join(again)})")
    assert not problems, "invariant 3: " + "; ".join(problems)
    return sum(len(p) for p in orders.values())


def step_window(instance: dg.DagsterInstance, run_id: str, step: str) -> tuple[datetime, datetime] | None:
    """When `step` of the run started and succeeded (its events' timestamps in the instance's event log)."""
    times = {
        entry.dagster_event.event_type_value: datetime.fromtimestamp(entry.timestamp, UTC)
        for entry in instance.all_logs(run_id)
        if entry.dagster_event is not None and entry.step_key == step
    }
    start, end = times.get("STEP_START"), times.get("STEP_SUCCESS")
    return (start, end) if start and end else None


def reservations_counted_once(
    data: Path,
    channel: str,
    channels: Mapping[str, Channel] | None = None,
    window: tuple[datetime, datetime] | None = None,
) -> int:
    """The channel's `reservations` table (what the run subtracted) holds each open order of the seller once: per SKU
    the units and orders of `seller_reservations` exactly, no order counted twice (nor dropped). `window`: when the
    step that wrote the table ran; a notification stored meanwhile may or may not have been read, so the table must
    match the store as of one of the moments in the window (as of its end without one). Returns the orders
    counted."""
    rows, as_of = _order_rows(data, channel, channels), _master_as_of(data)
    moments: list[datetime | None] = [None]
    if window is not None:
        start, end = window
        stored = sorted({r[6] for r in rows[0] if start < r[6] < end})
        moments = [end, start, *stored]
    candidates = [_reservations_from(rows, as_of, moment) for moment in moments]
    table = _reservations_table(data, channel)
    for expected in candidates:
        if table == {sku: (sum(o.values()), len(o)) for sku, o in expected.items()}:
            return sum(len(v) for v in expected.values())
    expected = candidates[0]
    problems = []
    for sku in sorted(set(table) | set(expected)):
        units, orders = table.get(sku, (0, 0))
        want = expected.get(sku, {})
        want_units = sum(want.values())
        if (units, orders) != (want_units, len(want)):
            times = f" (counted {units // want_units} times)" if want_units and units % want_units == 0 else ""
            problems.append(
                f"{sku}: reserved {units} unit(s) in {orders} order(s), the store's open orders hold {want_units} in "
                f"{len(want)} {sorted(want)}{times}"
            )
    assert not problems, f"invariant 3: channel {channel}: " + "; ".join(problems)
    return sum(len(v) for v in expected.values())


def _reservations_table(data: Path, channel: str) -> dict[str, tuple[int, int]]:
    with _connect(data, channel) as con:
        assert "reservations" in channel_tables(con), f"invariant 3: channel {channel} has no reservations table"
        return {
            sku: (int(units), int(orders))
            for sku, units, orders in con.execute(
                "SELECT sku, reserved_quantity, open_orders FROM reservations"
            ).fetchall()
        }


def stored_notifications(store_path: Path) -> int:
    con = duckdb.connect(str(store_path), read_only=True)
    try:
        return int(con.execute("SELECT count(*) FROM notifications").fetchall()[0][0])
    finally:
        con.close()


def requested_runs_bounded(
    store_path: Path,
    run_requests: Sequence[dg.RunRequest],
    ticks: int,
    channels: Mapping[str, Channel] | None = None,
) -> int:
    """Each stored notification led to at most the runs it should: per (channel, job) the notifications the
    requests carry (their `notifications` tag) never exceed those stored that target it (an ORDER_CHANGE every
    channel of its seller, the others their own), at most one request per (channel, job) and sensor tick, no run
    key twice. Returns the runs requested."""
    config = _channels(channels)
    con = duckdb.connect(str(store_path), read_only=True)
    try:
        rows = con.execute(
            "SELECT channel, notification_type, count(*) FROM notifications WHERE channel <> '' GROUP BY ALL"
        ).fetchall()
    finally:
        con.close()
    targets: Counter[tuple[str, str]] = Counter()
    for channel, kind, count in rows:
        job = _JOB_FOR_TYPE.get(kind)
        if job is None or channel not in config:
            continue
        names = [channel]
        if kind == "ORDER_CHANGE":
            names = [n for n, c in config.items() if c.seller_id == config[channel].seller_id]
        for name in names:
            targets[(name, job)] += count
    carried: Counter[tuple[str, str]] = Counter()
    requests: Counter[tuple[str, str]] = Counter()
    for request in run_requests:
        key = (str(request.partition_key), str(request.job_name))
        requests[key] += 1
        carried[key] += int((request.tags or {}).get("notifications") or 0)
    problems = [
        f"{c}/{job}: requests carry {n} notification(s), {targets.get((c, job), 0)} stored target it"
        for (c, job), n in sorted(carried.items())
        if n > targets.get((c, job), 0)
    ]
    problems += [f"{c}/{job}: {n} runs requested in {ticks} tick(s)" for (c, job), n in requests.items() if n > ticks]
    keys = Counter(r.run_key for r in run_requests)
    problems += [f"run key {k} requested {n} times" for k, n in keys.items() if n > 1]
    assert not problems, "invariant 3: " + "; ".join(problems)
    return len(run_requests)


# -- 4 --------------------------------------------------------------------------------------------------------------
def notifications_accounted(store_path: Path, sent: dict[str, str], queue_left: int) -> None:
    """Every message put on the queue is stored (by NotificationId) or dead-lettered; nothing deleted unprocessed.
    `sent`: message body → the NotificationId it carries ('' for bodies without one); `queue_left`: messages still on
    the queue (they are not lost: the next tick reads them)."""
    con = duckdb.connect(str(store_path), read_only=True)
    try:
        stored = {r[0] for r in con.execute("SELECT notification_id FROM notifications").fetchall()}
        dead = [r[0] for r in con.execute("SELECT body FROM dead_letters").fetchall()]
    finally:
        con.close()
    dead_bodies = Counter(dead)
    lost = []
    for body, nid in sent.items():
        if nid and nid in stored:
            continue
        if dead_bodies.get(body):
            continue
        lost.append(nid or body[:60])
    assert queue_left == 0 or not lost, f"invariant 4: {queue_left} message(s) still queued"
    assert not lost, f"invariant 4: {len(lost)} message(s) neither applied nor dead-lettered: {lost[:10]}"


# -- 5 --------------------------------------------------------------------------------------------------------------
def converged(
    data: Path,
    channel: str,
    run_id: str,
    server: EmulatorServer,
    marketplace_id: str,
    seller_id: str,
    decimals: int = 2,
) -> int:
    """After the fault cleared: for every mapped SKU Amazon did not reject in `run_id`, Amazon's listing (the
    emulator's read-out) shows the price and FBM quantity the pipeline computed. Returns the SKUs compared."""
    statuses = one_final_status(data, channel, run_id)
    expected = expected_offers(data, channel)
    listings = httpx.get(
        server.url + "/_emulator/listings",
        params={"sellerId": seller_id, "marketplaceId": marketplace_id, "limit": 10000},
        timeout=30,
    ).json()["listings"]
    by_sku = {item["sku"]: item for item in listings}
    problems = []
    compared = 0
    for sku, offer in sorted(expected.items()):
        status = statuses[sku]
        if status in REJECTED:
            continue
        if status not in ("accepted", "warning", "unchanged"):
            problems.append(f"{sku}: status {status} in the converging run")
            continue
        listing = by_sku.get(sku)
        if listing is None:
            problems.append(f"{sku}: no listing on Amazon")
            continue
        compared += 1
        price = Decimal(listing["price"]) if listing["price"] is not None else None
        want = Decimal(int(offer["price_minor"])).scaleb(-decimals)
        if price != want:
            problems.append(f"{sku}: price on Amazon {price}, computed {want}")
        if offer["quantity"] is not None and listing["quantity"] != int(offer["quantity"]):
            problems.append(f"{sku}: quantity on Amazon {listing['quantity']}, computed {offer['quantity']}")
    assert not problems, "invariant 5: " + "; ".join(problems)
    return compared


# -- 6 --------------------------------------------------------------------------------------------------------------
def no_secrets(secrets: Iterable[str], *, files: Iterable[Path] = (), texts: Iterable[str] = ()) -> int:
    """No secret (access/refresh token, client secret, AWS secret) in any given file (bytes: DuckDB files, feed files,
    logs) or text (log lines, exception messages, metadata). Returns the number of places scanned."""
    needles = [s for s in set(secrets) if s and len(s) >= 8]
    assert needles, "invariant 6: no secrets to look for"
    found = []
    scanned = 0
    for path in files:
        if not path.is_file():
            continue
        scanned += 1
        blob = path.read_bytes()
        for secret in needles:
            if secret.encode() in blob:
                found.append(f"{path}: {secret[:6]}…")
    for text in texts:
        scanned += 1
        for secret in needles:
            if secret in text:
                found.append(f"text {text[:80]!r}: {secret[:6]}…")
    assert not found, "invariant 6: secrets leaked: " + "; ".join(found[:10])
    return scanned


def run_log_texts(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The run's event log as Dagster stored it: every entry serialized (every `context.log` message, every event
    with all its metadata values), plus each entry's user message."""
    texts = []
    for entry in instance.all_logs(run_id):
        texts.append(entry.user_message or "")
        texts.append(dg.serialize_value(entry))
    return texts
