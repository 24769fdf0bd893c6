"""sync.offers over a real DuckDB: appending observations idempotently, the current picture, retention, the pull plan
and the age figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest

from sync import offers

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
US_SELLER = "A3DEMOSELLER01"


def at(minutes_ago: float) -> datetime:
    return NOW - timedelta(minutes=minutes_ago)


def observation(asin: str, seller: str, price: str, when: datetime, **extra) -> dict:
    row = {"asin": asin, "seller_id": seller, "observed_at": when, "price": price, "shipping": "0"}
    return {**row, "fulfillment": "FBM", **extra}


def snapshot(asin: str, when: datetime, status: str = "ok", **extra) -> dict:
    return {"asin": asin, "observed_at": when, "status": status} | extra


def tables(observations=(), snapshots=()) -> tuple[pa.Table, pa.Table]:
    return (
        pa.Table.from_pylist(list(observations), schema=offers.OBSERVATION_SCHEMA),
        pa.Table.from_pylist(list(snapshots), schema=offers.SNAPSHOT_SCHEMA),
    )


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    offers.ensure_tables(con)
    con.execute("CREATE TABLE channel_mappings (sku VARCHAR, asin VARCHAR)")
    con.execute(
        "CREATE TABLE competitor_prices (channel VARCHAR, asin VARCHAR, seller_id VARCHAR, price DECIMAL(18,2), "
        "shipping DECIMAL(18,2), fulfillment VARCHAR, observed_at TIMESTAMPTZ, _row BIGINT)"
    )
    return con


def current(con) -> list[tuple]:
    offers.write_current(con, "picture", "us", US_SELLER, "competitor_prices")
    return con.execute("SELECT asin, seller_id, price, _row FROM picture ORDER BY ALL").fetchall()


def test_a_competitor_missing_from_a_newer_snapshot_is_gone_and_file_rows_merge(con):
    first = [
        observation("B1", "ARIVAL1", "10.00", at(60)),
        observation("B1", "ARIVAL2", "11.00", at(60)),
        observation("B1", US_SELLER, "12.00", at(60)),
    ]
    offers.append(con, "pull", *tables(first, [snapshot("B1", at(60))]), NOW, 30)
    assert current(con) == [("B1", "ARIVAL1", Decimal("10.00"), None), ("B1", "ARIVAL2", Decimal("11.00"), None)]
    # a notification lists every offer: ARIVAL1 left, ARIVAL2 moved; ours is never a competitor
    newer = [observation("B1", "ARIVAL2", "10.50", at(5)), observation("B1", US_SELLER, "12.00", at(5))]
    offers.append(con, "notification", *tables(newer, [snapshot("B1", at(5))]), NOW, 30)
    assert current(con) == [("B1", "ARIVAL2", Decimal("10.50"), None)]
    # the file's rows: newest per (asin, seller) wins against Amazon's, an older one loses; ours left out
    con.execute(
        "INSERT INTO competitor_prices VALUES ('us', 'B1', 'ARIVAL2', 9.00, 0, 'FBM', $old, 1), "
        "('us', 'B1', 'AFILE1', 8.00, 0, 'FBA', $old, 2), ('us', 'B1', 'AFILE1', 8.50, 0, 'FBA', $new, 3), "
        f"('us', 'B2', '{US_SELLER}', 5.00, 0, 'FBA', $new, 4)",
        {"old": at(30), "new": at(1)},
    )
    assert current(con) == [("B1", "AFILE1", Decimal("8.50"), 3), ("B1", "ARIVAL2", Decimal("10.50"), None)]


def test_a_failed_pull_does_not_hide_the_offers_last_seen(con):
    offers.append(
        con, "pull", *tables([observation("B1", "ARIVAL1", "10.00", at(60))], [snapshot("B1", at(60))]), NOW, 30
    )
    offers.append(con, "pull", *tables([], [snapshot("B1", at(1), "failed")]), NOW, 30)
    assert current(con) == [("B1", "ARIVAL1", Decimal("10.00"), None)]


def test_appending_is_idempotent(con):
    rows = [observation("B1", "ARIVAL1", "10.00", at(10), feedback_rating="98.5", feedback_count=1200)]
    snaps = [snapshot("B1", at(10), number_of_offers=1, buybox_landed_price="10.00", our_buybox=False)]
    assert offers.append(con, "notification", *tables(rows, snaps), NOW, 30) == (1, ["B1"])
    assert offers.append(con, "notification", *tables(rows + rows, snaps + snaps), NOW, 30) == (0, [])
    # the file: a re-run of the same rows adds nothing
    con.execute("INSERT INTO competitor_prices VALUES ('us', 'B1', 'AFILE1', 8.00, 0, 'FBA', $t, 1)", {"t": at(3)})
    assert offers.append_file(con, "competitor_prices", NOW, 30) == 1
    assert offers.append_file(con, "competitor_prices", NOW, 30) == 0
    stored = con.execute(
        "SELECT source, price, feedback_rating, feedback_count FROM offer_observations ORDER BY source"
    ).fetchall()
    assert stored == [("file", Decimal("8.00"), None, None), ("notification", Decimal("10.00"), Decimal("98.50"), 1200)]
    assert con.execute("SELECT typeof(price) FROM offer_observations LIMIT 1").fetchall() == [("DECIMAL(18,2)",)]


def test_notifications_import_from_the_store_once(con, tmp_path):
    from sync.notifications import ensure_schema

    store = duckdb.connect(str(tmp_path / "store.duckdb"))
    ensure_schema(store)
    store.execute(
        "INSERT INTO notifications (notification_id, channel, notification_type, received_at) VALUES "
        "('n1', 'us', 'ANY_OFFER_CHANGED', $t), ('n2', 'uk', 'ANY_OFFER_CHANGED', $t)",
        {"t": at(2)},
    )
    store.execute(
        "INSERT INTO offer_change_summaries (notification_id, channel, asin, number_of_offers, our_buybox, event_time) "
        "VALUES ('n1', 'us', 'B1', 1, false, $t), ('n2', 'uk', 'B9', 1, false, $t)",
        {"t": at(3)},
    )
    store.execute(
        "INSERT INTO offer_change_offers (notification_id, channel, asin, seller_id, price, shipping, fulfillment, "
        "event_time) VALUES ('n1', 'us', 'B1', 'ARIVAL1', '10.00', '0', 'FBA', $t), "
        "('n2', 'uk', 'B9', 'ARIVAL1', '10.00', '0', 'FBA', $t)",
        {"t": at(3)},
    )
    for expected in (1, 0):  # the second import reads the same rows again (the overlap) and adds nothing
        loaded = offers.load_notified(store, "us", offers.notified_since(con))
        assert offers.import_notified(con, *loaded, NOW, 30) == expected
    assert con.execute("SELECT asin, seller_id, source FROM offer_observations").fetchall() == [
        ("B1", "ARIVAL1", "notification")
    ]
    assert offers.notified_since(con) == at(2) - offers.IMPORT_OVERLAP


def test_retention_deletes_what_is_older_than_the_setting(con):
    old, recent = NOW - timedelta(days=31), NOW - timedelta(days=29)
    rows = [observation("B1", "ARIVAL1", "10.00", old), observation("B1", "ARIVAL1", "11.00", recent)]
    offers.append(
        con, "pull", *tables(rows, [snapshot("B1", old), snapshot("B1", recent)]), NOW - timedelta(days=40), 60
    )
    assert offers.apply_retention(con, NOW, 30) == 2
    assert con.execute("SELECT price FROM offer_observations").fetchall() == [(Decimal("11.00"),)]
    assert con.execute("SELECT count(*) FROM offer_snapshots").fetchall() == [(1,)]
    # nor is anything older than the retention appended in the first place
    assert offers.append(con, "pull", *tables(rows[:1], [snapshot("B1", old)]), NOW, 30) == (0, [])


def test_the_plan_asks_never_observed_first_then_the_oldest_and_not_a_failed_one_again(con):
    con.execute(
        "INSERT INTO channel_mappings VALUES ('s1', 'B1'), ('s2', 'B2'), ('s3', 'B3'), ('s4', 'B4'), ('s4b', 'B4'), "
        "('s5', NULL)"
    )
    assert offers.pull_plan(con) == ["B1", "B2", "B3", "B4"]  # nothing observed: by ASIN
    offers.append(con, "notification", *tables([], [snapshot("B3", at(5))]), at(5), 30)
    offers.append(con, "pull", *tables([], [snapshot("B1", at(50))]), at(50), 30)
    assert offers.pull_plan(con) == ["B2", "B4", "B1", "B3"]
    # B2 and B4 pulled and failed just now: they go to the back, behind what was seen longer ago
    offers.append(
        con, "pull", *tables([], [snapshot("B2", at(1), "failed"), snapshot("B4", at(1), "failed")]), at(1), 30
    )
    assert offers.pull_plan(con) == ["B1", "B3", "B2", "B4"]
    # a pull that Amazon answers with the same OffersAvailableTime as before still counts as asked
    offers.append(con, "pull", *tables([], [snapshot("B1", at(50))]), NOW, 30)
    assert offers.pull_plan(con) == ["B3", "B2", "B4", "B1"]


def test_age_figures(con):
    con.execute("INSERT INTO channel_mappings VALUES ('s1', 'B1'), ('s2', 'B2'), ('s3', 'B3'), ('s4', 'B4')")
    offers.append(con, "notification", *tables([], [snapshot("B1", at(10))]), NOW, 30)
    offers.append(con, "pull", *tables([], [snapshot("B2", at(30)), snapshot("B2", at(20))]), NOW, 30)
    offers.append(con, "pull", *tables([], [snapshot("B3", at(3000))]), NOW, 30)
    offers.append(con, "pull", *tables([], [snapshot("B4", at(1), "failed")]), NOW, 30)  # not an observation
    stats = offers.age_stats(con, NOW, freshness_hours=24)
    assert (stats["mapped"], stats["never_observed"], stats["beyond_freshness"]) == (4, 1, 1)
    assert (stats["p50_minutes"], stats["max_minutes"]) == (pytest.approx(20.0), pytest.approx(3000.0))
    assert stats["p95_minutes"] == pytest.approx(20 + 0.9 * (3000 - 20))
