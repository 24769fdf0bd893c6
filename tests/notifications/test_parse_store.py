"""Pure notification logic: parsing every type and casing, SNS unwrapping, routing, dedup, dead letters, and the
reservation SQL with out-of-order delivery."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from seller.config import parse_channels
from seller.reconcile import reconcile
from sync.notifications import Malformed, Received, parse_body, prepare_batch, store_batch
from sync.orders import order_states, reservations, reserved_by_channel, seller_channels
from tests.notifications.helpers import (
    CHANNELS,
    DE,
    SELLER,
    UK,
    US,
    fba_change,
    feed_finished,
    offer_change,
    order_change,
    sns,
)

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def messages(*docs) -> list[Received]:
    return [Received(f"m{n}", f"h{n}", doc if isinstance(doc, str) else json.dumps(doc)) for n, doc in enumerate(docs)]


def store(con, *docs) -> list[dict]:
    return store_batch(con, prepare_batch(messages(*docs), CHANNELS, NOW))


def test_parses_each_type_and_casing_raw_and_sns_wrapped():
    order = order_change("111-0000001-0000001", "Unshipped", "2026-11-29T09:00:00Z", [("FBM-1", 2)])
    for body in (json.dumps(order), sns(order)):
        note = parse_body(body)
        assert (note.notification_type, note.seller_id, note.marketplace_ids) == (
            "ORDER_CHANGE",
            order["Payload"]["OrderChangeNotification"]["SellerId"],
            (US,),
        )
        assert note.notification_id == order["NotificationMetadata"]["NotificationId"]
        assert note.subject == "111-0000001-0000001"
        assert note.detail["order_change_items"] == [
            {
                "amazon_order_id": "111-0000001-0000001",
                "order_item_id": "111-0000001-0000001-0",
                "sku": "FBM-1",
                "quantity": 2,
            }
        ]
        assert json.loads(note.body) == order  # the notification itself, not the SNS envelope
    fba = parse_body(json.dumps(fba_change("FBA-1", 7, "2026-11-29T09:00:00+00:00", (UK, DE))))
    assert fba.marketplace_ids == (UK, DE) and fba.notification_id.startswith("sha256:")
    assert [r["fulfillable_quantity"] for r in fba.detail["fba_changes"]] == [7, 7]
    # the same FBA document hashes to the same id (a redelivery is a duplicate); another one does not
    assert parse_body(json.dumps(fba_change("FBA-1", 7, "2026-11-29T09:00:00+00:00", (UK, DE)))).notification_id == (
        fba.notification_id
    )
    assert parse_body(json.dumps(fba_change("FBA-1", 6, "2026-11-29T09:00:00+00:00"))).notification_id != (
        fba.notification_id
    )
    offer = parse_body(json.dumps(offer_change("B000000001", "2026-11-29T09:30:00Z")))
    assert offer.subject == "B000000001" and offer.detail["offer_change_summaries"][0]["lowest_landed_price"] == "17.99"
    feed = parse_body(json.dumps(feed_finished("50001", "2026-11-29T09:30:00Z")))  # camelCase
    assert (feed.notification_type, feed.subject, feed.marketplace_ids) == ("FEED_PROCESSING_FINISHED", "50001", ())


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({"NotificationType": "ORDER_CHANGE"}), "missing Payload"),
        (json.dumps({"NotificationType": "LISTINGS_ITEM_STATUS_CHANGE", "Payload": {}}), "unsupported"),
        (json.dumps({**order_change("1", "Unshipped", "yesterday"), "EventTime": "x"}), "ISO 8601"),
        (
            json.dumps(fba_change("FBA-1", -1, "2026-11-29T09:00:00Z")),
            "FulfillmentInventory.Fulfillable must be a non-negative",
        ),
        (json.dumps({"Type": "Notification", "Message": "{oops"}), "SNS envelope"),
    ],
)
def test_malformed_messages_say_why(body, reason):
    with pytest.raises(Malformed, match=reason):
        parse_body(body)


def test_missing_keys_are_reported_by_path():
    doc = order_change("1", "Unshipped", "2026-11-29T09:00:00Z")
    del doc["Payload"]["OrderChangeNotification"]["SellerId"]
    with pytest.raises(Malformed, match="missing SellerId"):
        parse_body(json.dumps(doc))


def test_store_dedups_routes_and_dead_letters(store_con):
    con = store_con
    order = order_change("111-0000001-0000001", "Unshipped", "2026-11-29T09:00:00Z", [("FBM-1", 2)])
    unknown = order_change(
        "111-0000001-0000002", "Unshipped", "2026-11-29T09:00:00Z", [("FBM-1", 1)], market="A1VC38T7YXB528"
    )  # Japan: not a configured channel
    stranger = order_change(
        "111-0000001-0000003", "Unshipped", "2026-11-29T09:00:00Z", [("FBM-1", 1)], seller="A9OTHERSELLER9"
    )
    fresh = store(
        con,
        order,
        order,
        "garbage",
        unknown,
        stranger,
        fba_change("FBA-1", 4, "2026-11-29T09:00:00Z", (UK, DE, "A1VC38T7YXB528")),
    )
    # one order (the in-batch duplicate ignored) and the FBA change routed to uk and de; Japan's entry ignored
    assert sorted((r["channel"], r["notification_type"]) for r in fresh) == [
        ("de", "FBA_INVENTORY_AVAILABILITY_CHANGES"),
        ("uk", "FBA_INVENTORY_AVAILABILITY_CHANGES"),
        ("us", "ORDER_CHANGE"),
    ]
    assert store(con, order) == []  # redelivered later: already stored
    assert con.execute("SELECT count(*) FROM order_change_items").fetchall() == [(1,)]
    dead = con.execute("SELECT message_id, reason FROM dead_letters ORDER BY message_id").fetchall()
    assert [m for m, _ in dead] == ["m2", "m3", "m4"]
    assert "not JSON" in dead[0][1]
    assert "no channel for seller A3DEMOSELLER01 and marketplace A1VC38T7YXB528" in dead[1][1]
    assert "A9OTHERSELLER9" in dead[2][1]
    store(con, "garbage")  # the same malformed body again: one dead letter, not two
    assert con.execute("SELECT count(*) FROM dead_letters").fetchall() == [(3,)]
    assert con.execute("SELECT channel, fulfillable_quantity FROM fba_changes ORDER BY channel").fetchall() == [
        ("de", 4),
        ("uk", 4),
    ]


def reserved(con, channels=("us",), master_as_of=None) -> dict[str, int]:
    return {r[0]: r[1] for r in reservations(con, channels, master_as_of).fetchall()}


def test_reservations_follow_the_latest_state_even_out_of_order(store_con):
    con = store_con
    placed = order_change("111-1", "Unshipped", "2026-11-29T09:00:00Z", [("FBM-1", 2), ("FBM-2", 1)])
    shipped = order_change("111-1", "Shipped", "2026-11-29T09:30:00Z", [("FBM-1", 2), ("FBM-2", 1)])
    other = order_change("111-2", "Pending", "2026-11-29T09:10:00Z", [("FBM-1", 3)])
    afn = order_change("111-3", "Unshipped", "2026-11-29T09:10:00Z", [("FBM-1", 5)], fulfillment="AFN")
    store(con, placed, other, afn)
    assert reserved(con) == {"FBM-1": 5, "FBM-2": 1}  # AFN orders reserve nothing
    store(con, shipped)
    assert reserved(con) == {"FBM-1": 3}
    store(con, placed)  # a late duplicate of the older state changes nothing
    assert reserved(con) == {"FBM-1": 3}
    # out of order: the cancellation is delivered before the order's creation
    store(con, order_change("111-4", "Canceled", "2026-11-29T09:40:00Z", [("FBM-2", 4)]))
    store(con, order_change("111-4", "Unshipped", "2026-11-29T09:20:00Z", [("FBM-2", 4)]))
    assert reserved(con) == {"FBM-1": 3}
    states = dict(order_states(con, ["us"]).select("amazon_order_id, order_status").fetchall())
    assert states == {"111-1": "Shipped", "111-2": "Pending", "111-3": "Unshipped", "111-4": "Canceled"}
    assert reserved(con, ["uk"]) == {}


def test_the_master_file_releases_an_order_only_when_written_after_we_stored_it(store_con):
    """Two clocks apart: Amazon's (the emulator's) PurchaseDate a week before our own clock, on which the sensor
    stored the notification and the master file was written. Only our clock decides: a master written a minute before
    the notification arrived cannot include the order (still reserved), one written after it was stored does."""
    con = store_con
    stored_at = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    placed = "2026-11-29T09:00:00Z"  # Amazon's clock, days in the past
    order = order_change("111-7", "Unshipped", placed, [("FBM-1", 2)], purchase_date=placed)
    store_batch(con, prepare_batch(messages(order), CHANNELS, stored_at))
    minute = timedelta(minutes=1)
    assert reserved(con, master_as_of=stored_at - minute) == {"FBM-1": 2}
    assert reserved(con, master_as_of=stored_at) == {"FBM-1": 2}  # the same instant: kept (the conservative side)
    assert reserved(con, master_as_of=stored_at + minute) == {}
    assert reserved_by_channel(con, ["us"], stored_at - minute).fetchall() == [("us", 2, 1)]
    # a later notification of the open order, stored later, holds it again until the master is written after it
    update = order_change("111-7", "Unshipped", "2026-11-29T09:05:00Z", [("FBM-1", 3)], purchase_date=placed)
    store_batch(con, prepare_batch(messages(update), CHANNELS, stored_at + 10 * minute))
    assert reserved(con, master_as_of=stored_at + minute) == {"FBM-1": 3}
    assert reserved(con, master_as_of=stored_at + 11 * minute) == {}
    # Amazon's clock ahead of ours (a PurchaseDate in our future): released all the same once the master is newer
    ahead = "2027-01-01T00:00:00Z"
    store_batch(
        con,
        prepare_batch(
            messages(order_change("111-8", "Unshipped", ahead, [("FBM-2", 1)], purchase_date=ahead)),
            CHANNELS,
            stored_at,
        ),
    )
    assert reserved(con, master_as_of=stored_at - minute) == {"FBM-1": 3, "FBM-2": 1}
    assert reserved(con, master_as_of=stored_at + 11 * minute) == {}


def test_equal_times_prefer_the_final_status(store_con):
    con = store_con
    store(con, order_change("111-9", "Shipped", "2026-11-29T09:00:00Z", [("FBM-1", 1)]))
    store(con, order_change("111-9", "Unshipped", "2026-11-29T09:00:00Z", [("FBM-1", 1)]))
    assert reserved(con) == {}


# --- stock is the seller's: reservations over every channel of one seller (issue 11) --------------------------------

OTHER = "A9OTHERSELLER9"
# Two sellers in one store: ours on us, uk and de; another one on US too (its own channel "other-us").
TWO_SELLERS = parse_channels(
    {
        "channels": [
            {"name": "us", "seller_id": SELLER, "marketplace_id": US, "region": "na"},
            {"name": "uk", "seller_id": SELLER, "marketplace_id": UK, "region": "eu"},
            {"name": "de", "seller_id": SELLER, "marketplace_id": DE, "region": "eu"},
            {"name": "other-us", "seller_id": OTHER, "marketplace_id": US, "region": "na"},
        ]
    }
)


def store_for(con, channels, *docs) -> list[dict]:
    return store_batch(con, prepare_batch(messages(*docs), channels, NOW))


def test_seller_channels_are_the_channels_of_the_same_seller():
    assert seller_channels(TWO_SELLERS, "uk") == ["us", "uk", "de"]
    assert seller_channels(TWO_SELLERS, "other-us") == ["other-us"]


def test_an_order_on_any_channel_of_the_seller_reserves_for_all_of_them_and_no_other_sellers_order_counts(store_con):
    con = store_con
    store_for(
        con,
        TWO_SELLERS,
        order_change("111-US", "Unshipped", "2026-11-29T09:00:00Z", [("FBM-1", 4)], market=US),
        order_change("111-UK", "Pending", "2026-11-29T09:05:00Z", [("FBM-1", 1), ("FBM-2", 2)], market=UK),
        order_change("111-DE", "Shipped", "2026-11-29T09:10:00Z", [("FBM-1", 9)], market=DE),  # closed
        order_change("999-XX", "Unshipped", "2026-11-29T09:00:00Z", [("FBM-1", 7)], market=US, seller=OTHER),
    )
    ours = seller_channels(TWO_SELLERS, "de")
    for channel in ours:  # every channel of the seller sees the same seller-wide figure
        assert reserved(con, seller_channels(TWO_SELLERS, channel)) == {"FBM-1": 5, "FBM-2": 2}
    rows = reservations(con, ours, None).select("sku, open_orders").fetchall()
    assert sorted(rows) == [("FBM-1", 2), ("FBM-2", 1)]
    # the other seller, on the same marketplace, sees only its own order
    assert reserved(con, seller_channels(TWO_SELLERS, "other-us")) == {"FBM-1": 7}
    # the breakdown by the channel the orders came from; the seller's orders with their channel
    assert sorted(reserved_by_channel(con, ours, None).fetchall()) == [("uk", 3, 1), ("us", 4, 1)]
    states = sorted(order_states(con, ours).select("amazon_order_id, channel, order_status").fetchall())
    assert states == [("111-DE", "de", "Shipped"), ("111-UK", "uk", "Pending"), ("111-US", "us", "Unshipped")]


def test_a_later_state_on_the_store_closes_the_order_for_every_channel(store_con):
    con = store_con
    store_for(con, TWO_SELLERS, order_change("111-US", "Unshipped", "2026-11-29T09:00:00Z", [("FBM-1", 4)], market=US))
    assert reserved(con, seller_channels(TWO_SELLERS, "uk")) == {"FBM-1": 4}
    store_for(con, TWO_SELLERS, order_change("111-US", "Canceled", "2026-11-29T09:30:00Z", [("FBM-1", 4)], market=US))
    assert reserved(con, seller_channels(TWO_SELLERS, "uk")) == {}


def test_seller_wide_reservations_give_every_channel_the_same_quantity_floored_at_zero(store_con):
    """The store's seller-wide reservations straight into reconcile, per channel: master 10 for FBM-1 and 3 for
    FBM-2; 4 + 1 units of FBM-1 and 5 of FBM-2 ordered on two channels: 5 and 0 (not -2) on every channel."""
    con = store_con
    store_for(
        con,
        TWO_SELLERS,
        order_change("111-US", "Unshipped", "2026-11-29T09:00:00Z", [("FBM-1", 4), ("FBM-2", 5)], market=US),
        order_change("111-UK", "Unshipped", "2026-11-29T09:00:00Z", [("FBM-1", 1)], market=UK),
        order_change("999-XX", "Unshipped", "2026-11-29T09:00:00Z", [("FBM-1", 9)], market=US, seller=OTHER),
    )
    master = [{"sku": "FBM-1", "quantity": 10, "handling_time_days": 2}, {"sku": "FBM-2", "quantity": 3}]
    con.register("master", pa.Table.from_pylist(master))
    con.register("fba", pa.table({"sku": pa.array([], pa.string()), "fulfillable_quantity": pa.array([], pa.int64())}))
    published = {}
    for channel in ("us", "uk", "de"):
        mappings = [
            {"channel": channel, "sku": sku, "asin": "B000000001", "fulfillment": "FBM", "conflict_strategy": None}
            for sku in ("FBM-1", "FBM-2")
        ]
        con.register("mappings", pa.Table.from_pylist(mappings))
        # an Arrow copy, as the reservations asset makes (the store and the channel are two databases)
        con.register("held", reservations(con, seller_channels(TWO_SELLERS, channel), None).to_arrow_table())
        rows = reconcile(con, "mappings", "master", "fba", "held").select("sku, quantity, reserved_quantity")
        published[channel] = sorted(rows.fetchall())
    assert published == dict.fromkeys(("us", "uk", "de"), [("FBM-1", 5, 5), ("FBM-2", 0, 5)])
