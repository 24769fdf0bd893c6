"""The order poll's watermark and overlap, and the merge of polled and notified orders (Dagster-free).

searchOrders answers come from `SearchIndex`, a stand-in for Amazon's search that returns what it has indexed
(filtered by lastUpdatedAfter, paged by maxResultsPerPage, in the model's shape): the emulator's search is consistent,
so the late-indexed order the overlap exists for can only be staged here. The emulator serves the end-to-end test
(tests/notifications/test_order_poll_end_to_end.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from resources.spapi import Throttled
from sync.notifications import Received, prepare_batch, store_batch
from sync.order_poll import (
    INITIAL_LOOKBACK,
    OVERLAP,
    PollState,
    advance,
    coverage,
    normalize_order,
    poll_orders,
    query_after,
    read_state,
)
from sync.orders import merged_order_items, merged_orders, reservations
from tests.notifications.helpers import CHANNELS, SELLER, UK, US, order_change

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
MARKETS = {US: "us"}


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def amazon_order(
    order_id: str,
    updated: datetime,
    status: str = "UNSHIPPED",
    items: tuple[tuple[str, int, str], ...] = (("FBM-1", 2, "19.99"),),
    *,
    market: str = US,
    by: str = "MERCHANT",
) -> dict[str, Any]:
    """A searchOrders `Order` (orders_2026-01-01.json) with the FULFILLMENT dataset."""
    return {
        "orderId": order_id,
        "createdTime": iso(updated - timedelta(hours=1)),
        "lastUpdatedTime": iso(updated),
        "salesChannel": {"channelName": "AMAZON", "marketplaceId": market},
        "fulfillment": {"fulfillmentStatus": status, "fulfilledBy": by},
        "orderItems": [
            {
                "orderItemId": f"{order_id}-{n}",
                "quantityOrdered": quantity,
                "product": {"sellerSku": sku, "price": {"unitPrice": {"amount": price, "currencyCode": "USD"}}},
            }
            for n, (sku, quantity, price) in enumerate(items)
        ],
    }


class SearchIndex:
    """What Amazon's search has indexed so far; answers searchOrders pages and records each request's filters."""

    def __init__(self) -> None:
        self.orders: dict[str, dict[str, Any]] = {}
        self.asked: list[dict[str, Any]] = []

    def index(self, *orders: dict[str, Any]) -> None:
        for order in orders:
            self.orders[order["orderId"]] = order

    def search_orders_page(self, marketplace_ids, *, last_updated_after, pagination_token=None, **kw) -> dict:
        self.asked.append({"after": last_updated_after, "token": pagination_token, **kw})
        size = kw.get("max_results_per_page") or 100
        matching = sorted(
            (
                o
                for o in self.orders.values()
                if o["salesChannel"]["marketplaceId"] in marketplace_ids
                and datetime.fromisoformat(o["lastUpdatedTime"]) >= last_updated_after
            ),
            key=lambda o: (o["lastUpdatedTime"], o["orderId"]),
        )
        start = int(pagination_token or 0)
        page: dict[str, Any] = {"orders": matching[start : start + size]}
        if start + size < len(matching):
            page["pagination"] = {"nextToken": str(start + size)}
        return page


@contextmanager
def keep_open(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    yield con  # the poll's short connections, on one in-memory store


def poll(con, amazon: SearchIndex, now: datetime = NOW, **kw):
    return poll_orders(amazon, SELLER, "na", MARKETS, lambda: keep_open(con), now=now, **kw)


def notify(con, *docs, at: datetime = NOW) -> None:
    messages = [Received(f"m{n}", f"h{n}", json.dumps(doc)) for n, doc in enumerate(docs)]
    store_batch(con, prepare_batch(messages, CHANNELS, at))


def reserved(con, master_as_of=None) -> dict[str, int]:
    return {r[0]: r[1] for r in reservations(con, ["us", "uk", "de"], master_as_of).fetchall()}


# --- watermark and overlap -------------------------------------------------------------------------------------------


def test_the_next_poll_asks_from_the_watermark_minus_the_overlap_and_a_cut_pass_resumes_its_own_window():
    state = PollState()
    first = query_after(state, NOW)
    assert first == NOW - INITIAL_LOOKBACK  # never polled: the lookback on our clock
    t1, t0 = NOW - timedelta(minutes=3), NOW - timedelta(minutes=30)
    state = advance(state, first, t1, "page-2")  # the pass has more pages: the watermark does not move yet
    assert state.watermark is None and state.pass_token == "page-2"
    assert query_after(state, NOW + timedelta(hours=1)) == first  # resumed with the filters the token belongs to
    state = advance(state, first, t0, None)  # the last page holds older orders only
    assert state == PollState(watermark=t1)  # the newest time of the whole pass, not of its last page
    assert query_after(state, NOW + timedelta(days=3)) == t1 - OVERLAP == t1 - timedelta(minutes=10)
    assert advance(state, t1 - OVERLAP, None, None).watermark == t1  # an empty pass keeps it


def test_an_order_indexed_late_is_found_by_the_overlap(store_con):
    """Amazon's search is eventually consistent: an order updated before the newest one we saw can be indexed after
    our poll. The next poll re-reads the ten minutes before the watermark and finds it; already-seen orders are not
    stored again."""
    con = store_con
    amazon = SearchIndex()
    amazon.index(amazon_order("111-0000001-0000001", NOW - timedelta(minutes=2)))
    first = poll(con, amazon)
    assert first.complete and first.stored == 1 and first.new_open_mfn == ["111-0000001-0000001"]
    assert read_state(con, SELLER, "na").watermark == NOW - timedelta(minutes=2)
    # Indexed only now, though updated four minutes before the watermark.
    amazon.index(amazon_order("111-0000001-0000002", NOW - timedelta(minutes=6), items=(("FBM-2", 1, "5.00"),)))
    second = poll(con, amazon, now=NOW + timedelta(minutes=5))
    assert amazon.asked[-1]["after"] == NOW - timedelta(minutes=12)  # watermark - 10 minutes
    assert second.orders_seen == 2 and second.stored == 1  # the first order again (same version), the late one new
    assert second.new_open_mfn == ["111-0000001-0000002"]
    assert reserved(con) == {"FBM-1": 2, "FBM-2": 1}
    assert amazon.asked[-1]["included_data"] == ["FULFILLMENT"]  # status and fulfiller are in that dataset


def test_a_pass_cut_by_its_time_budget_resumes_from_its_token_and_moves_the_watermark_only_when_complete(store_con):
    con = store_con
    amazon = SearchIndex()
    amazon.index(*(amazon_order(f"111-0000002-000000{n}", NOW - timedelta(minutes=n)) for n in range(1, 4)))

    class Budget:  # the client's throttle refuses the poll's second request (its token not ours in time)
        def __init__(self, inner: SearchIndex) -> None:
            self.inner, self.calls = inner, 0

        def search_orders_page(self, *a, **kw):
            self.calls += 1
            if self.calls > 1:
                raise Throttled("searchOrders: token not available before the deadline", operation="searchOrders")
            return self.inner.search_orders_page(*a, **kw)

    cut = poll(con, Budget(amazon), max_results_per_page=2)
    assert not cut.complete and cut.stored == 2 and cut.stopped.startswith("time budget")
    state = read_state(con, SELLER, "na")
    assert state.watermark is None and state.pass_token == "2"
    rest = poll(con, amazon, now=NOW + timedelta(minutes=5), max_results_per_page=2)
    assert amazon.asked[-1]["token"] == "2" and amazon.asked[-1]["after"] == NOW - INITIAL_LOOKBACK
    assert rest.complete and rest.stored == 1
    assert read_state(con, SELLER, "na") == PollState(watermark=NOW - timedelta(minutes=1))


# --- normalizing -----------------------------------------------------------------------------------------------------


def test_an_order_is_normalized_to_the_pipelines_statuses_with_exact_prices():
    head, items = normalize_order(amazon_order("111-0000003-0000001", NOW, "PARTIALLY_SHIPPED", (("S", 3, "0.10"),)))
    assert head["order_status"] == "PartiallyShipped" and head["fulfillment_type"] == "MFN"
    assert head["marketplace_id"] == US and head["last_update_time"] == NOW
    assert items == [
        {
            "amazon_order_id": "111-0000003-0000001",
            "order_item_id": "111-0000003-0000001-0",
            "sku": "S",
            "quantity": 3,
            "unit_price": "0.10",
            "currency": "USD",
        }
    ]
    cancelled, _ = normalize_order(amazon_order("111-0000003-0000002", NOW, "CANCELLED", by="AMAZON"))
    assert (cancelled["order_status"], cancelled["fulfillment_type"]) == ("Canceled", "AFN")


# --- the merge: the newest update wins, whichever source brought it ------------------------------------------------


def test_the_newest_update_wins_whichever_source_brought_it(store_con):
    con = store_con
    amazon = SearchIndex()
    nine = "2026-12-06T09:00:00Z"
    # A: notified Unshipped at 09:00; the poll sees it Shipped at 09:30 (its Shipped notification never came).
    notify(con, order_change("111-0000004-000000A", "Unshipped", nine, [("FBM-1", 2)]))
    amazon.index(amazon_order("111-0000004-000000A", NOW - timedelta(minutes=30), "SHIPPED"))
    # B: polled Unshipped at 09:20, then notified Canceled at 09:40.
    amazon.index(amazon_order("111-0000004-000000B", NOW - timedelta(minutes=40), items=(("FBM-2", 1, "7.50"),)))
    # C: only polled, open. D: only notified, open. E: polled, open, FBA (never reserves).
    amazon.index(amazon_order("111-0000004-000000C", NOW - timedelta(minutes=50), items=(("FBM-3", 4, "1.00"),)))
    notify(con, order_change("111-0000004-000000D", "Unshipped", nine, [("FBM-4", 1)]))
    amazon.index(amazon_order("111-0000004-000000E", NOW - timedelta(minutes=50), by="AMAZON"))
    poll(con, amazon)
    assert reserved(con) == {"FBM-2": 1, "FBM-3": 4, "FBM-4": 1}
    notify(con, order_change("111-0000004-000000B", "Canceled", "2026-12-06T09:40:00Z", [("FBM-2", 1)]))
    assert reserved(con) == {"FBM-3": 4, "FBM-4": 1}

    rows = merged_orders(con, ["us"]).select("amazon_order_id, order_status, state_source, sources, open_mfn")
    assert {r[0][-1]: r[1:] for r in rows.fetchall()} == {
        "A": ("Shipped", "poll", "both", False),
        "B": ("Canceled", "notification", "both", False),
        "C": ("Unshipped", "poll", "poll", True),
        "D": ("Unshipped", "notification", "notification", True),
        "E": ("Unshipped", "poll", "poll", False),
    }
    items = merged_order_items(con, ["us"]).select("amazon_order_id, sku, quantity, unit_price, item_source")
    by_order = {r[0][-1]: r[1:] for r in items.fetchall()}
    assert by_order["C"] == ("FBM-3", 4, "1.00", "poll")  # the poll's items carry the price
    assert by_order["D"] == ("FBM-4", 1, None, "notification")  # a notification's carry none
    assert by_order["B"] == ("FBM-2", 1, None, "notification")  # the winning source's items
    # Coverage: 4 orders polled (A, B, C, E); C and E were never notified.
    # (first_polled_at is our clock: the wall clock, whatever NOW says)
    later = datetime.now(UTC) + timedelta(hours=1)
    polled, missed = coverage(con, ["us"], later, timedelta(minutes=10))
    assert polled == 4 and sorted(m[0][-1] for m in missed) == ["C", "E"]
    just_now = coverage(con, ["us"], datetime.now(UTC), timedelta(minutes=10))
    assert just_now == (4, [])  # first polled moments ago: its notification may still come


def test_an_older_poll_never_reopens_an_order_a_notification_closed(store_con):
    con = store_con
    amazon = SearchIndex()
    notify(con, order_change("111-0000005-0000001", "Canceled", "2026-12-06T09:50:00Z", [("FBM-1", 2)]))
    amazon.index(amazon_order("111-0000005-0000001", NOW - timedelta(minutes=20)))  # an older Unshipped version
    poll(con, amazon)
    assert reserved(con) == {}


def test_a_polled_order_is_released_by_a_master_written_after_the_poll_stored_it(store_con):
    """The release rule for both sources: the master file, written after we stored the order's latest state (our
    clock), already counts it."""
    con = store_con
    amazon = SearchIndex()
    amazon.index(amazon_order("111-0000006-0000001", NOW - timedelta(days=3)))  # Amazon's clock: days away
    poll(con, amazon)
    (stored_at,) = con.execute("SELECT stored_at FROM polled_orders").fetchone()
    minute = timedelta(minutes=1)
    assert reserved(con, master_as_of=stored_at - minute) == {"FBM-1": 2}
    assert reserved(con, master_as_of=stored_at) == {"FBM-1": 2}
    assert reserved(con, master_as_of=stored_at + minute) == {}


def test_the_poll_covers_every_marketplace_of_the_seller_in_the_region_and_routes_each_order(store_con):
    con = store_con
    amazon = SearchIndex()
    amazon.index(amazon_order("111-0000007-0000001", NOW, market=UK))
    result = poll_orders(amazon, SELLER, "eu", {UK: "uk"}, lambda: keep_open(con), now=NOW)
    assert result.stored == 1
    assert con.execute("SELECT channel, seller_id, region FROM polled_orders").fetchall() == [("uk", SELLER, "eu")]
    assert reserved(con) == {"FBM-1": 2}
