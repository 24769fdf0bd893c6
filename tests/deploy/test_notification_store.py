"""The notification store in the deployed mode (a Postgres schema through DuckDB's postgres extension): the store's
own tests run again on it, the sensor drains a queue into it while another process stores the same notifications,
polls orders and reads, and nothing is locked or written under the data directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import psycopg2
import pytest

from assets.offers import import_notified
from pipelines import sensors
from resources import notification_store
from resources.warehouse import Warehouse
from sync.notifications import Received, prepare_batch, store_batch
from sync.order_poll import poll_orders
from tests.deploy.store_worker import Orders
from tests.notifications.helpers import (
    CHANNELS,
    SELLER,
    offer_change,
    offer_change_full,
    order_change,
    run_sensor,
    sqs,
    store_rows,
)

# The store's tests, run here on Postgres through the `store_con` below (tests/conftest.py's is in-memory DuckDB).
from tests.notifications.test_parse_store import (  # noqa: F401
    test_a_later_state_on_the_store_closes_the_order_for_every_channel,
    test_an_order_on_any_channel_of_the_seller_reserves_for_all_of_them_and_no_other_sellers_order_counts,
    test_equal_times_prefer_the_final_status,
    test_reservations_follow_the_latest_state_even_out_of_order,
    test_seller_wide_reservations_give_every_channel_the_same_quantity_floored_at_zero,
    test_store_dedups_routes_and_dead_letters,
    test_the_master_file_releases_an_order_only_when_written_after_we_stored_it,
)
from tests.sync.test_order_poll import (  # noqa: F401
    test_a_pass_cut_by_its_time_budget_resumes_from_its_token_and_moves_the_watermark_only_when_complete,
    test_a_polled_order_is_released_by_a_master_written_after_the_poll_stored_it,
    test_an_older_poll_never_reopens_an_order_a_notification_closed,
    test_an_order_indexed_late_is_found_by_the_overlap,
    test_the_newest_update_wins_whichever_source_brought_it,
    test_the_poll_covers_every_marketplace_of_the_seller_in_the_region_and_routes_each_order,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
QUEUE = f"sales-channel-{SELLER}"


@pytest.fixture
def data_dir(state_dsn: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The deployed mode's store (the test's database) and an empty data directory."""
    monkeypatch.setenv("SALES_CHANNEL_STATE", state_dsn)
    monkeypatch.setenv("SALES_CHANNEL_LAKE", "s3://sales-channel-lake/unused-by-the-store")
    data = tmp_path / "data"
    data.mkdir()
    return data


@pytest.fixture
def store_con(data_dir: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with Warehouse(data_dir=str(data_dir)).connect_notifications() as con:
        yield con


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def test_the_store_is_a_postgres_schema_and_no_file(data_dir, state_dsn):
    with Warehouse(data_dir=str(data_dir)).connect_notifications() as con:
        assert con.execute("SELECT current_schema()").fetchone() == (notification_store.SCHEMA,)
    with psycopg2.connect(state_dsn) as pg, pg.cursor() as cur:
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [notification_store.SCHEMA]
        )
        tables = {r[0] for r in cur.fetchall()}
    assert {"notifications", "order_changes", "dead_letters", "polled_orders", "order_poll_state"} <= tables
    assert files_under(data_dir) == [] and Warehouse(data_dir=str(data_dir)).has_notifications()
    with Warehouse(data_dir=str(data_dir)).connect_notifications(read_only=True) as con:
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("DELETE FROM notifications")


def test_the_password_never_shows_in_the_stores_errors(state_dsn, postgres_server):
    """Neither when the first connection fails nor when an open one loses its database (DuckDB shows the connection
    string of an attachment in its errors: the password is kept out of it, in a secret)."""
    dsn = state_dsn.replace(":unused@", ":s3cret-pw@")  # the test server trusts 127.0.0.1: any password connects
    with pytest.raises(notification_store.StoreUnavailable) as raised:
        notification_store.connect(dsn.rsplit("/", 1)[0] + "/no_such_database")
    assert "s3cret-pw" not in str(raised.value) and "no_such_database" in str(raised.value)
    con = notification_store.connect(dsn)
    assert con.execute("SELECT count(*) FROM notifications").fetchall() == [(0,)]
    name = dsn.rsplit("/", 1)[1]
    admin = psycopg2.connect(
        f"postgresql://{postgres_server.user}@127.0.0.1:{postgres_server.port}/{postgres_server.database}"
    )
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])
            cur.execute(f"ALTER DATABASE {name} RENAME TO {name}_gone")
        with pytest.raises(duckdb.Error) as lost:
            con.execute("SELECT count(*) FROM notifications").fetchall()
        assert "does not exist" in str(lost.value) and "s3cret-pw" not in str(lost.value)
    finally:
        with admin.cursor() as cur:
            cur.execute(f"ALTER DATABASE {name}_gone RENAME TO {name}")
        admin.close()


def test_a_store_transaction_that_loses_to_another_process_is_run_again(data_dir):
    """Another connection (its own Postgres transaction, like another process) stores the order first and commits
    while the sensor's transaction waits on the same key: the sensor's transaction fails on the key, runs again, and
    reports only what is new (the other order); each notification is stored once."""
    warehouse = Warehouse(data_dir=str(data_dir))
    first = order_change("111-0000001-0000001", "Unshipped", "2026-11-29T09:00:00Z", [("FBM-1", 2)])
    second = order_change("111-0000001-0000002", "Unshipped", "2026-11-29T09:05:00Z", [("FBM-1", 1)])
    now = datetime.now(UTC)
    batch = prepare_batch([Received("m1", "h1", json.dumps(first))], CHANNELS, now)
    both = prepare_batch(
        [Received(f"m{n}", f"h{n}", json.dumps(d)) for n, d in enumerate((first, second))], CHANNELS, now
    )
    with warehouse.connect_notifications() as other, warehouse.connect_notifications() as sensor:
        other.execute("BEGIN")
        other.register("incoming", batch.table("notifications"))
        other.execute("INSERT INTO notifications SELECT * FROM incoming")
        result: dict = {}

        def store() -> None:
            try:
                result["fresh"] = store_batch(sensor, both)
            except duckdb.Error as exc:
                result["error"] = str(exc)

        thread = threading.Thread(target=store)
        thread.start()
        time.sleep(1.0)  # the sensor's COPY now waits on the other's uncommitted key
        other.execute("COMMIT")
        thread.join(30)
    assert "error" not in result, result["error"]
    assert [r["subject"] for r in result["fresh"]] == ["111-0000001-0000002"]
    assert store_rows(data_dir, "SELECT subject, count(*) FROM notifications GROUP BY ALL ORDER BY ALL") == [
        ("111-0000001-0000001", 1),
        ("111-0000001-0000002", 1),
    ]


def test_an_order_poll_page_that_loses_to_another_process_is_run_again(data_dir):
    """Another process writes the seller x region's poll state (uncommitted) while a poll stores its page: the
    page's transaction waits, fails on the key once the other commits, and runs again; the poll's state wins."""
    warehouse = Warehouse(data_dir=str(data_dir))
    order = {
        "orderId": "222-0000001-0000001",
        "lastUpdatedTime": "2026-12-06T09:00:00Z",
        "salesChannel": {"marketplaceId": "ATVPDKIKX0DER"},
        "fulfillment": {"fulfillmentStatus": "UNSHIPPED", "fulfilledBy": "MERCHANT"},
        "orderItems": [{"orderItemId": "1", "quantityOrdered": 2, "product": {"sellerSku": "FBM-1"}}],
    }
    result: dict = {}

    def poll() -> None:
        try:
            result["poll"] = poll_orders(
                Orders([order], 10), SELLER, "na", {"ATVPDKIKX0DER": "us"}, warehouse.connect_notifications
            )
        except duckdb.Error as exc:
            result["error"] = str(exc)

    with warehouse.connect_notifications() as other:
        other.execute("BEGIN")
        other.execute(
            "INSERT INTO order_poll_state (seller_id, region, last_outcome) VALUES ($seller, 'na', 'other')",
            {"seller": SELLER},
        )
        thread = threading.Thread(target=poll)
        thread.start()
        time.sleep(1.0)  # the poll's page now waits on the other's uncommitted key
        other.execute("COMMIT")
        thread.join(30)
    assert "error" not in result, result["error"]
    assert result["poll"].stored == 1
    assert store_rows(data_dir, "SELECT region, watermark, last_outcome FROM order_poll_state") == [
        ("na", datetime(2026, 12, 6, 9, tzinfo=UTC), "complete")
    ]
    assert store_rows(data_dir, "SELECT amazon_order_id FROM polled_orders") == [("222-0000001-0000001",)]


def test_offer_notifications_in_the_store_reach_the_channel_by_arrow(lake_env, tmp_path):
    """The prices run's import: the store (Postgres) and the channel's tables are two databases; what the channel
    needs is read from the store and appended to the channel's tables, exact money, once."""
    warehouse = Warehouse(data_dir=str(tmp_path / "data"))
    now = datetime.now(UTC)
    rivals = [("A1RIVAL00001", "15.07", "3.99", False, None), (SELLER, "16.00", "0.00", True, None)]
    doc = offer_change_full("B000000002", now.isoformat(), rivals, buybox="16.00")
    with warehouse.connect_notifications() as store:
        store_batch(store, prepare_batch([Received("m1", "h1", json.dumps(doc))], CHANNELS, now))
    with warehouse.connect("us") as con:
        assert import_notified(con, warehouse, CHANNELS["us"], now) == 1
        assert import_notified(con, warehouse, CHANNELS["us"], now) == 0  # the overlap read again: nothing new
        rows = con.execute("SELECT seller_id, price, shipping, source FROM offer_observations ORDER BY 1").fetchall()
    assert rows == [
        ("A1RIVAL00001", Decimal("15.07"), Decimal("3.99"), "notification"),
        (SELLER, Decimal("16.00"), Decimal("0.00"), "notification"),
    ]


def test_processes_creating_the_store_at_once_all_succeed(state_dsn, tmp_path):
    """Four processes' first connections on an empty database at the same instant: each creates the schema and the
    tables (or finds them), none fails on another's DDL."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from resources import notification_store\n"
        "Path(sys.argv[2]).touch()\n"
        "while not Path(sys.argv[3]).exists():\n"
        "    time.sleep(0.005)\n"
        "notification_store.connect(sys.argv[1]).execute('SELECT count(*) FROM polled_orders').fetchall()\n"
    )
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, state_dsn, str(tmp_path / f"ready-{n}"), str(go)],
            cwd=REPO,
            stderr=subprocess.PIPE,
        )
        for n in range(4)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()
    errors = [p.communicate(timeout=120)[1].decode()[-2000:] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors


def _bodies() -> tuple[list[tuple[str, str]], set[tuple[str, str]], int]:
    """(message id, body) of 240 orders (on us, uk and de), 30 offer changes, 12 malformed messages, with 20 orders
    sent twice; the (notification id, channel) pairs to store and the dead letters."""
    docs: list[str] = []
    markets = [m.marketplace_id for m in CHANNELS.values()]
    for n in range(240):
        at = (datetime(2026, 11, 29, 9, tzinfo=UTC) + timedelta(seconds=n)).isoformat()
        docs.append(
            json.dumps(order_change(f"111-{n:07d}-0000001", "Unshipped", at, [("FBM-1", 1)], market=markets[n % 3]))
        )
    docs += [json.dumps(offer_change(f"B0{n:08d}", f"2026-11-29T10:{n:02d}:00Z")) for n in range(30)]
    docs += [f"not json {n}" for n in range(12)]
    docs += docs[:20]  # redelivered
    expected = set()
    for note in prepare_batch([Received(str(n), "", d) for n, d in enumerate(docs)], CHANNELS, datetime.now(UTC)).rows[
        "notifications"
    ]:
        expected.add((note["notification_id"], note["channel"]))
    return [(f"msg-{n}", d) for n, d in enumerate(docs)], expected, 12


def test_the_sensor_and_another_process_share_the_store_exactly_once_and_lock_nothing(
    data_dir, moto_sqs, monkeypatch, tmp_path
):
    monkeypatch.setenv("SALES_CHANNEL_SQS_ENDPOINT", moto_sqs)
    monkeypatch.setenv("SALES_CHANNEL_SQS_WAIT_SECONDS", "1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setattr(sensors, "CHANNELS", CHANNELS)
    sensor_fresh: list[tuple[str, str]] = []

    def recording(con, batch):  # the real store_batch, remembering what it reported new
        (tmp_path / "go").touch()  # the other process starts with the sensor's first batch
        fresh = store_batch(con, batch)
        sensor_fresh.extend((r["notification_id"], r["channel"]) for r in fresh)
        return fresh

    monkeypatch.setattr(sensors, "store_batch", recording)
    bodies, expected, dead = _bodies()
    client = sqs(moto_sqs)
    url = client.create_queue(QueueName=QUEUE)["QueueUrl"]
    for start in range(0, len(bodies), 10):
        entries = [{"Id": str(n), "MessageBody": b} for n, (_, b) in enumerate(bodies[start : start + 10])]
        client.send_message_batch(QueueUrl=url, Entries=entries)
    orders = [
        {
            "orderId": f"222-{n:07d}-0000001",
            "createdTime": "2026-11-29T08:00:00Z",
            "lastUpdatedTime": f"2026-11-29T08:{n:02d}:00Z",
            "salesChannel": {"marketplaceId": "ATVPDKIKX0DER"},
            "fulfillment": {"fulfillmentStatus": "UNSHIPPED", "fulfilledBy": "MERCHANT"},
            "orderItems": [{"orderItemId": f"{n}-1", "quantityOrdered": 1, "product": {"sellerSku": "FBM-2"}}],
        }
        for n in range(30)
    ]
    spec = {
        "data_dir": str(data_dir),
        "ready": str(tmp_path / "ready"),
        "go": str(tmp_path / "go"),
        "bodies": list(reversed(bodies)),  # the same notifications, the other way round: every one contended
        "batch": 10,
        "pause": 0.2,  # 29 batches over ~6 s: the sensor drains the queue meanwhile
        "orders": orders,
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.deploy.store_worker", str(tmp_path / "spec.json"), str(tmp_path / "out.json")],
        cwd=REPO,
        env=os.environ.copy(),
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "ready").exists():
            assert worker.poll() is None, worker.communicate()[1].decode()[-3000:]
            assert time.monotonic() < deadline, "the worker never connected"
            time.sleep(0.05)
        with dg.instance_for_test() as instance:
            cursor = None
            for _ in range(5):
                cursor = run_sensor(data_dir, instance, cursor).cursor
                left = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
                if not int(left["ApproximateNumberOfMessages"]) + int(left["ApproximateNumberOfMessagesNotVisible"]):
                    break
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err.decode()[-3000:]
    finally:
        if worker.poll() is None:
            worker.kill()
    out = json.loads((tmp_path / "out.json").read_text())
    worker_fresh = [tuple(r) for r in out["fresh"]]

    # Each notification stored once, and reported new by exactly one of the two processes.
    stored = store_rows(data_dir, "SELECT notification_id, channel FROM notifications")
    assert len(stored) == len(set(stored)) and set(stored) == expected
    assert sorted(sensor_fresh + worker_fresh) == sorted(expected), "a notification lost or reported new twice"
    print(f"\nnew from the sensor: {len(sensor_fresh)}, from the other process: {len(worker_fresh)}")
    assert sensor_fresh and worker_fresh  # both processes stored some: they really ran side by side
    assert store_rows(data_dir, "SELECT count(*), count(DISTINCT notification_id) FROM order_change_items") == [
        (240, 240)
    ]
    assert store_rows(data_dir, "SELECT count(DISTINCT notification_id) FROM offer_change_summaries") == [(30,)]
    assert store_rows(data_dir, "SELECT count(*) FROM dead_letters") == [(dead,)]
    # The other process's order poll, beside the sensor's writes.
    assert out["polled"] == 30 and out["reads"] > 0
    assert store_rows(data_dir, "SELECT count(*), count(DISTINCT amazon_order_id) FROM polled_orders") == [(30, 30)]
    assert store_rows(data_dir, "SELECT seller_id, region, last_outcome FROM order_poll_state") == [
        (SELLER, "na", "complete")
    ]
    # No store file, no lock file: nothing under the data directory at all.
    assert files_under(data_dir) == []
