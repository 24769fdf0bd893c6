"""The six invariants of issue 6, each a function that *asserts* (AssertionError with a precise message).

They read the channel's DuckDB file (read-only), the emulator's own state (its listings read-out and the feed
documents it stored) and a `Wiretap` of every request that reached it, never the pipeline's own summary alone.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import httpx

from emulator.server import EmulatorServer
from feeds.updates import offer_updates
from reliability.wiretap import Wiretap

__all__ = [
    "FINAL_STATUSES",
    "expected_offers",
    "one_final_status",
    "nothing_submitted",
    "within_bounds",
    "no_double_submission",
    "no_double_notification",
    "notifications_accounted",
    "converged",
    "no_secrets",
]

FINAL_STATUSES = frozenset(
    {"accepted", "warning", "error", "category_restricted", "not_applied", "unchanged", "pending", "deferred"}
)
REJECTED = frozenset({"error", "category_restricted"})


def _connect(data: Path, channel: str) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(data / "warehouse" / f"{channel}.duckdb"), read_only=True)


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def expected_offers(data: Path, channel: str) -> dict[str, dict[str, Any]]:
    """sku → what the pipeline computed for the channel (the `updates` the push sends: price, floor, ceiling,
    quantity — NULL when none may be sent)."""
    con = _connect(data, channel)
    try:
        rel = offer_updates(con, "buybox_prices", "reconciled_inventory")
        names = rel.columns
        return {row[0]: dict(zip(names, row, strict=True)) for row in rel.fetchall()}
    finally:
        con.close()


# -- 1 --------------------------------------------------------------------------------------------------------------
def one_final_status(data: Path, channel: str, run_id: str, allowed: Iterable[str] = FINAL_STATUSES) -> dict[str, str]:
    """Every mapped SKU of the run has exactly one `submit` row for `run_id`, with a final status; no other SKU has
    one. Returns sku → status."""
    mapped = set(expected_offers(data, channel))
    assert mapped, f"invariant 1: channel {channel} has no mapped SKU to check"
    con = _connect(data, channel)
    try:
        rows = con.execute(
            "SELECT sku, status FROM sync_history WHERE run_id = ? AND operation = 'submit' AND channel = ?",
            [run_id, channel],
        ).fetchall()
    finally:
        con.close()
    counts = Counter(sku for sku, _ in rows)
    twice = sorted(sku for sku, n in counts.items() if n > 1)
    missing = sorted(mapped - set(counts))
    extra = sorted(set(counts) - mapped)
    assert not twice, f"invariant 1: run {run_id} has several submit rows for {twice}"
    assert not missing, f"invariant 1: run {run_id} has no submit row for mapped SKU(s) {missing}"
    assert not extra, f"invariant 1: run {run_id} has submit rows for unmapped SKU(s) {extra}"
    statuses = dict(rows)
    allowed = set(allowed)
    odd = {sku: s for sku, s in statuses.items() if s not in allowed}
    assert not odd, f"invariant 1: run {run_id}: statuses outside {sorted(allowed)}: {odd}"
    return statuses


def nothing_submitted(data: Path, channel: str, tap: Wiretap, marketplace_id: str) -> None:
    """A run that must publish nothing for the channel (bad file, revoked access): no submit row but `deferred`, no
    published_state, and no patch or feed for the marketplace reached Amazon."""
    con = _connect(data, channel)
    try:
        tables = _tables(con)
        published = (
            con.execute("SELECT count(*) FROM published_state").fetchall()[0][0] if "published_state" in tables else 0
        )
        sent = (
            con.execute("SELECT status, count(*) FROM sync_history WHERE operation = 'submit' GROUP BY ALL").fetchall()
            if "sync_history" in tables
            else []
        )
    finally:
        con.close()
    assert published == 0, f"channel {channel}: {published} SKU(s) in published_state though nothing may be published"
    assert {s for s, _ in sent} <= {"deferred"}, f"channel {channel}: submit rows {sent} though nothing may be sent"
    patched = [sku for sku, mps, _ in tap.patches() if marketplace_id in mps]
    assert not patched, f"channel {channel}: patchListingsItem reached Amazon for {patched}"
    feeds = [
        e for e in tap.calls("createFeed") if marketplace_id in json.loads(e.body or b"{}").get("marketplaceIds", [])
    ]
    assert not feeds, f"channel {channel}: {len(feeds)} createFeed request(s) reached Amazon"


# -- 2 --------------------------------------------------------------------------------------------------------------
def _money(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value[0]["schedule"][0]["value_with_tax"]))
    except (KeyError, IndexError, TypeError):
        return None


def _sent_values(sku: str, patches: Sequence[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"sku": sku}
    for patch in patches:
        value = patch.get("value") or [{}]
        if patch.get("path") == "/attributes/purchasable_offer":
            offer = value[0]
            out["price"] = _money(offer.get("our_price"))
            out["min"] = _money(offer.get("minimum_seller_allowed_price"))
            out["max"] = _money(offer.get("maximum_seller_allowed_price"))
        elif patch.get("path") == "/attributes/fulfillment_availability":
            out["quantity"] = value[0].get("quantity")
    return out


def sent_to_amazon(tap: Wiretap, marketplace_id: str, since: int = 0) -> list[dict[str, Any]]:
    """Every offer that reached Amazon for the marketplace from exchange `since` on: patchListingsItem bodies and the
    messages of every JSON_LISTINGS_FEED document uploaded (whether or not createFeed followed)."""
    sent = [_sent_values(sku, patches) for sku, mps, patches in tap.patches(since) if marketplace_id in mps]
    for body in tap.uploads(since):
        try:
            document = json.loads(body)
        except ValueError:
            continue  # a flat file (legacy feed types): not sent by the default pipeline
        if marketplace_id not in json.dumps(document.get("header", {})):
            continue
        for message in document.get("messages", []):
            sent.append(_sent_values(message["sku"], message.get("patches") or []))
    return sent


def within_bounds(data: Path, channel: str, tap: Wiretap, marketplace_id: str, since: int = 0) -> int:
    """No price sent below the SKU's min_price or above its max_price, no FBM quantity above master stock minus
    reservations, no quantity at all for an FBA SKU (or a channel_wins one), for what reached Amazon from exchange
    `since` on (check after every run: the bounds are the seller's files of that run). Returns the offers checked."""
    con = _connect(data, channel)
    try:
        tables = _tables(con)
        mappings = {
            sku: (fulfillment, strategy, Decimal(str(lo)), Decimal(str(hi)))
            for sku, fulfillment, strategy, lo, hi in con.execute(
                "SELECT sku, fulfillment, conflict_strategy, min_price, max_price FROM channel_mappings "
                "WHERE channel = ?",
                [channel],
            ).fetchall()
        }
        master = dict(con.execute("SELECT sku, quantity FROM master_inventory").fetchall())
        reserved = (
            dict(con.execute("SELECT sku, sum(reserved_quantity) FROM reservations GROUP BY sku").fetchall())
            if "reservations" in tables
            else {}
        )
    finally:
        con.close()
    problems = []
    sent = sent_to_amazon(tap, marketplace_id, since)
    for offer in sent:
        sku = offer["sku"]
        if sku not in mappings:
            problems.append(f"{sku}: sent but not mapped on {channel}")
            continue
        fulfillment, strategy, lo, hi = mappings[sku]
        for key in ("price", "min", "max"):
            value = offer.get(key)
            if key == "price" and value is None:
                problems.append(f"{sku}: an offer without a price")
            if value is not None and not lo <= value <= hi:
                problems.append(f"{sku}: {key} {value} outside [{lo}, {hi}]")
        if "quantity" in offer:
            if fulfillment == "FBA" or (strategy or "master_wins") != "master_wins":
                problems.append(f"{sku}: quantity {offer['quantity']} sent for a {fulfillment}/{strategy} SKU")
            else:
                limit = max(int(master[sku]) - int(reserved.get(sku) or 0), 0)
                if int(offer["quantity"]) > limit:
                    problems.append(f"{sku}: quantity {offer['quantity']} > master {master[sku]} - reserved")
    assert not problems, "invariant 2: " + "; ".join(problems)
    return len(sent)


# -- 3 --------------------------------------------------------------------------------------------------------------
def no_double_submission(tap: Wiretap, server: EmulatorServer) -> None:
    """No feed document content reached createFeed twice, and no patch body was accepted twice for one SKU. A feed
    that ended FATAL or CANCELLED applied nothing: sending its content again is the recovery, not a duplicate."""
    store = server.state.store
    with server.state.lock:
        contents = [
            (f.feed_id, f.feed_type, store.documents[f.input_document_id].content or b"")
            for f in store.feeds.values()
            if f.status not in ("FATAL", "CANCELLED")
        ]
    hashes: dict[str, list[str]] = {}
    for feed_id, feed_type, content in contents:
        hashes.setdefault(hashlib.sha256(feed_type.encode() + b"\0" + content).hexdigest(), []).append(feed_id)
    twice = {h[:12]: ids for h, ids in hashes.items() if len(ids) > 1}
    assert not twice, f"invariant 3: the same feed content was submitted as several feeds: {twice}"
    accepted = Counter(
        (e.path, e.body) for e in tap.calls("patchListingsItem") if e.status is not None and e.status < 300
    )
    again = sorted(path.rsplit("/", 1)[1] for (path, _), n in accepted.items() if n > 1)
    assert not again, f"invariant 3: identical patches accepted more than once for {again}"


def no_double_notification(store_path: Path) -> int:
    """No NotificationId applied twice in the notification store. Returns the number stored."""
    con = duckdb.connect(str(store_path), read_only=True)
    try:
        rows = con.execute(
            "SELECT notification_id, count(*) FROM notifications GROUP BY ALL HAVING count(*) > 1"
        ).fetchall()
        total = con.execute("SELECT count(*) FROM notifications").fetchall()[0][0]
    finally:
        con.close()
    assert not rows, f"invariant 3: notification(s) stored twice: {rows[:10]}"
    return total


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
