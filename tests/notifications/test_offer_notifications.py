"""ANY_OFFER_CHANGED as observations: every listed offer and the Summary parsed exactly, stored once per notification,
in a store written by an earlier version too."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import duckdb
import pytest

from sync.notifications import Malformed, Received, parse_body, prepare_batch, store_batch
from tests.notifications.helpers import CHANNELS, SELLER, offer_change_full

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
AT = "2026-12-06T09:59:30Z"


def store(con, *docs) -> list[dict]:
    messages = [Received(f"m{n}", f"h{n}", json.dumps(doc)) for n, doc in enumerate(docs)]
    return store_batch(con, prepare_batch(messages, CHANNELS, NOW))


def test_every_offer_and_the_summary_become_rows():
    doc = offer_change_full(
        "B000000002",
        AT,
        [
            ("A1RIVAL00001", "12.10", "0.00", True, True),
            (SELLER, "13.00", "1.50", False, False),
            ("A1RIVAL00002", "11.99", "4.99", False, False),
        ],
        buybox="12.10",
        threshold="12.49",
    )
    note = parse_body(json.dumps(doc))
    when = datetime(2026, 12, 6, 9, 59, 30, tzinfo=UTC)
    assert (note.subject, note.event_time) == ("B000000002", when)
    assert note.detail["offer_change_summaries"] == [
        {
            "asin": "B000000002",
            "offer_change_type": "External",
            "number_of_offers": 3,
            "buybox_landed_price": "12.1",
            "lowest_landed_price": "12.1",
            "competitive_price_threshold": "12.49",
            "our_buybox": False,
        }
    ]
    offers = note.detail["offer_change_offers"]
    assert [o["seller_id"] for o in offers] == ["A1RIVAL00001", SELLER, "A1RIVAL00002"]  # ours included
    assert offers[0] == {
        "asin": "B000000002",
        "seller_id": "A1RIVAL00001",
        "price": "12.1",
        "shipping": "0.0",
        "fulfillment": "FBA",
        "is_featured_merchant": True,
        "is_buybox_winner": True,
        "feedback_rating": "97.5",
        "feedback_count": 4321,
        "is_prime": True,
    }
    assert (offers[2]["price"], offers[2]["shipping"], offers[2]["fulfillment"], offers[2]["is_prime"]) == (
        "11.99",
        "4.99",
        "FBM",
        False,
    )


@pytest.mark.parametrize(
    ("ours", "buybox", "expected"),
    [
        ((SELLER, "13.00", "1.50", False, True), "14.50", True),  # the flag says so
        ((SELLER, "13.00", "1.50", False, False), "14.50", False),  # the flag wins over a matching price
        ((SELLER, "13.00", "1.50", False, None), "14.50", True),  # no flag (as the schema): our landed price
        ((SELLER, "13.00", "1.50", False, None), "14.49", False),
        ((SELLER, "13.00", "1.50", False, None), None, False),  # no Buy Box at all
        (("A1RIVAL00003", "13.00", "1.50", False, None), "14.50", False),  # we are not on the listing
    ],
)
def test_our_buybox(ours, buybox, expected):
    doc = offer_change_full("B000000002", AT, [("A1RIVAL00001", "15.00", "0.00", True, None), ours], buybox=buybox)
    assert parse_body(json.dumps(doc)).detail["offer_change_summaries"][0]["our_buybox"] is expected


def test_an_offer_without_seller_or_price_is_a_dead_letter():
    doc = offer_change_full("B000000002", AT, [("A1RIVAL00001", "15.00", "0.00", True, None)])
    del doc["Payload"]["AnyOfferChangedNotification"]["Offers"][0]["ListingPrice"]
    with pytest.raises(Malformed, match=r"Offers\[1\]"):
        parse_body(json.dumps(doc))


def test_stored_once_with_exact_money_in_a_store_of_the_earlier_version(tmp_path):
    con = duckdb.connect(str(tmp_path / "_notifications.duckdb"))
    # the store as the earlier version left it: its tables, offer_changes among them, and no offer detail tables
    con.execute(
        "CREATE TABLE notifications (notification_id VARCHAR, channel VARCHAR, notification_type VARCHAR, "
        "seller_id VARCHAR, marketplace_id VARCHAR, subject VARCHAR, event_time TIMESTAMPTZ, publish_time TIMESTAMPTZ, "
        "received_at TIMESTAMPTZ, message_id VARCHAR, body VARCHAR, PRIMARY KEY (notification_id, channel))"
    )
    con.execute(
        "CREATE TABLE offer_changes (notification_id VARCHAR, channel VARCHAR, asin VARCHAR, "
        "offer_change_type VARCHAR, lowest_landed_price VARCHAR, buybox_landed_price VARCHAR, offer_count BIGINT, "
        "event_time TIMESTAMPTZ, publish_time TIMESTAMPTZ, PRIMARY KEY (notification_id, channel))"
    )
    doc = offer_change_full(
        "B000000002", AT, [("A1RIVAL00001", "12.10", "0.00", True, True), (SELLER, "0.10", "0.20", False, False)]
    )
    assert len(store(con, doc, doc)) == 1
    assert store(con, doc) == []  # redelivered: nothing new
    rows = con.execute(
        "SELECT seller_id, CAST(price AS DECIMAL(18,2)) + CAST(shipping AS DECIMAL(18,2)), fulfillment, event_time "
        "FROM offer_change_offers ORDER BY seller_id"
    ).fetchall()
    when = datetime(2026, 12, 6, 9, 59, 30, tzinfo=UTC)
    assert rows == [("A1RIVAL00001", Decimal("12.10"), "FBA", when), (SELLER, Decimal("0.30"), "FBM", when)]
    assert con.execute("SELECT count(*), min(number_of_offers) FROM offer_change_summaries").fetchall() == [(1, 2)]
