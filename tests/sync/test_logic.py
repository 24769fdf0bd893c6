"""The Dagster-free sync logic: path choice, change detection, Amazon answers → outcomes, patch bodies."""

from decimal import Decimal

import duckdb

from feeds.reports import ReportRow
from seller.config import parse_channels
from sync.changes import changed_offers, choose_path
from sync.outcomes import from_issues, from_report
from sync.push import minor_to_decimal, patches_for
from sync.tables import ensure_tables

JP = parse_channels(
    {"channels": [{"name": "jp", "seller_id": "A3DEMOSELLER01", "marketplace_id": "A1VC38T7YXB528", "region": "fe"}]}
)["jp"]


def test_choose_path_follows_use_feed_and_the_threshold():
    assert choose_path("true", 1) == "feed"
    assert choose_path("false", 50_000) == "patch"
    assert choose_path("auto", 1000) == "patch"
    assert choose_path("auto", 1001) == "feed"
    assert choose_path("auto", 0) == "none"


def test_only_offers_differing_from_published_state_are_changed():
    con = duckdb.connect()
    ensure_tables(con)
    con.execute(
        "CREATE TABLE updates AS SELECT * FROM (VALUES ('A','B1','FBM',100,50,200,3,1), "
        "('B','B2','FBA',100,50,200,NULL,NULL), ('C','B3','FBM',100,50,200,5,1), ('D','B4','FBM',100,50,200,5,1)) "
        "t(sku, asin, fulfillment, price_minor, min_minor, max_minor, quantity, handling_time_days)"
    )
    con.execute(
        "INSERT INTO published_state VALUES ('A','B1',100,50,200,3,1,'x','r',now()), "
        "('B','B2',100,50,200,NULL,NULL,'x','r',now()), ('C','B3',100,50,200,4,1,'x','r',now())"
    )
    con.execute("CREATE TABLE none_excluded (sku VARCHAR)")
    assert [r[0] for r in changed_offers(con, "updates", "none_excluded").fetchall()] == ["C", "D"]
    con.execute("INSERT INTO none_excluded VALUES ('D')")
    assert [r[0] for r in changed_offers(con, "updates", "none_excluded").fetchall()] == ["C"]


def test_listing_issues_map_to_the_seed_codes():
    gated = from_issues("S", {"status": "INVALID", "issues": [{"code": "6039", "severity": "ERROR", "message": "x"}]})
    assert (gated.status, gated.code) == ("category_restricted", "category_restricted")
    bad = from_issues("S", {"status": "INVALID", "issues": [{"code": "90244", "severity": "ERROR", "message": "p"}]})
    assert (bad.status, bad.code, bad.message) == ("error", "InvalidInput", "[90244] p")
    warned = from_issues("S", {"status": "ACCEPTED", "issues": [{"code": "90111", "severity": "WARNING"}]})
    assert (warned.status, warned.code) == ("warning", "90111")
    assert from_issues("S", {"status": "ACCEPTED", "issues": []}).status == "accepted"


def test_a_feed_report_becomes_one_outcome_per_sku():
    rows = [
        ReportRow(2, "B", "90700", "ERROR", "unknown SKU"),
        ReportRow(3, None, "6039", "ERROR", "approval"),
        ReportRow(None, None, "x", "WARNING", "feed-level note"),
    ]
    outcomes = {o.sku: o for o in from_report({1: "A", 2: "B", 3: "C"}, rows, "DONE")}
    assert [(s, o.status, o.code) for s, o in sorted(outcomes.items())] == [
        ("A", "accepted", None),
        ("B", "error", "ResourceNotFound"),
        ("C", "category_restricted", "category_restricted"),
    ]
    fatal = from_report({1: "A"}, [ReportRow(None, None, "4002005", "ERROR", "schema")], "FATAL")
    assert [(o.status, o.message) for o in fatal] == [("error", "[4002005] schema")]


def test_prices_are_exact_decimals_and_jpy_has_no_minor_unit():
    assert minor_to_decimal(1999, 2) == Decimal("19.99") and minor_to_decimal(1999, 0) == Decimal(1999)
    row = {"price_minor": 1500, "min_minor": 1000, "max_minor": 2000, "quantity": None, "handling_time_days": None}
    patches = patches_for(row, JP)
    assert len(patches) == 1  # no quantity without a quantity to publish (FBA)
    offer = patches[0]["value"][0]
    assert offer["currency"] == "JPY" and offer["our_price"][0]["schedule"][0]["value_with_tax"] == Decimal(1500)
    with_quantity = patches_for({**row, "quantity": 4, "handling_time_days": 2}, JP)
    assert with_quantity[1]["value"][0] == {
        "fulfillment_channel_code": "DEFAULT",
        "quantity": 4,
        "lead_time_to_ship_max_days": 2,
    }
