"""Notifications: duplicates, out-of-order delivery, malformed bodies, unknown types, SNS-wrapped bodies and a burst of
ORDER_CHANGE notifications reach the seller's SQS queue (a moto server, the real SQS protocol); the
`sqs_notifications_sensor` drains it tick by tick, then the channel pipeline (with `reservations`) pushes to the
emulator. Asserted: invariant 3's notification part (no NotificationId stored twice), invariant 4 (every message that
reached the queue is stored or dead-lettered, none deleted unprocessed, the queue ends empty), invariant 2 for the push
that follows (FBM quantity ≤ master − reservations, the reservations recomputed here from what was sent, not read
back from the pipeline), and out-of-order delivery never reopening a closed order."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import dagster as dg
import pytest

from assets.notifications import ensure_queue
from assets.orders import reservations
from pipelines.sensors import sqs_notifications_sensor
from resources.warehouse import Warehouse
from sync.notifications import OPEN_ORDER_STATUSES
from tests.notifications.helpers import SELLER, enable, fba_change, order_change, sns
from tests.sync.helpers import ALL_ASSETS, MARKETPLACE, query

QUEUE = f"sales-channel-{SELLER}"
ASSETS = [reservations, *ALL_ASSETS]
MASTER = {"FBM-1": 7, "FBM-FLOOR": 3, "FBM-CEIL": 0, "SKU ü-7": 4}
FBM_SENT = ("FBM-1", "FBM-FLOOR", "FBM-CEIL")  # master_wins FBM SKUs of the small seller: a quantity is sent
BURST_ENV = "RELIABILITY_NOTIFICATION_BURST"
QUEUED_ENV = "RELIABILITY_NOTIFICATION_QUEUED"  # 0: the whole burst queued before the first tick


class Queue:
    """The seller's queue on the moto server, what the test put on it (body → NotificationId) and the sensor ticks."""

    def __init__(self, endpoint: str, scenario: Any, instance: dg.DagsterInstance) -> None:
        self.scenario = scenario
        self.instance = instance  # where the channel's enable_channel run is recorded
        self.endpoint = endpoint
        self.client = self.new_client()
        self.url, _, _ = ensure_queue(self.client, QUEUE)
        self.sent: dict[str, str] = {}
        self.messages = 0
        self.cursor: str | None = None
        self.run_requests: list[dg.RunRequest] = []
        self.ticks = 0
        self.stop = threading.Event()  # tells a sender still at work to give up (the test failed)

    def send(self, bodies: Iterable[tuple[str, str]], threads: int = 1, client: Any = None) -> None:
        """Put (body, NotificationId) pairs on the queue with SendMessageBatch (10 per request)."""
        pairs = list(bodies)
        batches = [pairs[i : i + 10] for i in range(0, len(pairs), 10)]
        client = client or self.client

        def put(batch: list[tuple[str, str]]) -> None:
            result = client.send_message_batch(
                QueueUrl=self.url, Entries=[{"Id": str(n), "MessageBody": b} for n, (b, _) in enumerate(batch)]
            )
            assert not result.get("Failed"), result["Failed"]

        if threads > 1:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(put, batches))
        else:
            for batch in batches:
                put(batch)
        for body, nid in pairs:
            self.sent[body] = nid
        self.messages += len(pairs)

    def send_while_draining(self, bodies: list[tuple[str, str]], queued_at_most: int) -> Future:
        """Put the pairs on the queue from a background thread, back to back while the sensor drains, keeping at most
        `queued_at_most` messages visible (a wave of half that whenever no more than half are); returns the sender's
        future (its result: the seconds it took)."""
        wave = max(10, queued_at_most // 2)
        refill_at = max(queued_at_most - wave, 0)

        def sender(client: Any) -> float:
            started = time.monotonic()
            for start in range(0, len(bodies), wave):
                while self.visible(client) > refill_at:
                    if self.stop.wait(0.1):
                        return time.monotonic() - started
                self.send(bodies[start : start + wave], client=client)
            return time.monotonic() - started

        client = self.new_client()  # boto3 clients are not shared between threads
        pool = ThreadPoolExecutor(1, thread_name_prefix="amazon-sender")
        future = pool.submit(sender, client)
        pool.shutdown(wait=False)
        return future

    def new_client(self) -> Any:
        return boto3.client(
            "sqs", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
        )

    def attributes(self, client: Any) -> dict[str, str]:
        # "All": moto recounts the queue once for it, three times for a single attribute name.
        return client.get_queue_attributes(QueueUrl=self.url, AttributeNames=["All"])["Attributes"]

    def visible(self, client: Any) -> int:
        return int(self.attributes(client)["ApproximateNumberOfMessages"])

    def left(self) -> int:
        attributes = self.attributes(self.client)
        return sum(
            int(attributes.get(name, 0))
            for name in (
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            )
        )

    def drain(self, max_ticks: int = 40, sending: Future | None = None) -> int:
        """Sensor ticks until the queue is empty (and `sending`, a sender still at work, has finished); returns the
        ticks taken."""
        warehouse = Warehouse(data_dir=str(self.scenario.data))
        try:
            for tick in range(1, max_ticks + 1):
                context = dg.build_sensor_context(
                    instance=self.instance, cursor=self.cursor, resources={"warehouse": warehouse}
                )
                result = sqs_notifications_sensor(context)
                self.ticks += 1
                self.cursor = result.cursor or self.cursor
                self.run_requests += list(result.run_requests or [])
                if sending is not None and sending.done():
                    sending.result()  # the sender's error, if any, fails the test here
                if (sending is None or sending.done()) and self.left() == 0:
                    return tick
            raise AssertionError(f"the queue was not drained in {max_ticks} sensor ticks ({self.left()} left)")
        except BaseException:
            self.stop.set()
            raise

    def check(self) -> int:
        """Invariants 3 (notification part) and 4 for everything sent so far."""
        store = self.scenario.data / "warehouse" / "_notifications.duckdb"
        return self.scenario.check_notifications(store, self.sent, self.left(), self.run_requests, self.ticks)


@pytest.fixture
def queue(scenario, moto_sqs, monkeypatch) -> Iterator[Queue]:
    monkeypatch.setenv("SALES_CHANNEL_SQS_ENDPOINT", moto_sqs)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("SALES_CHANNEL_SQS_WAIT_SECONDS", "1")
    monkeypatch.setenv("SALES_CHANNEL_SQS_MAX_PER_TICK", "20000")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    # The seller wrote the master file two hours ago: the orders (placed an hour ago) are not in its figures yet.
    written = time.time() - 7200
    os.utime(scenario.data / "master_inventory.csv", (written, written))
    scenario.start()
    with dg.instance_for_test() as instance:
        queue = Queue(moto_sqs, scenario, instance)
        enable("us", scenario.spapi(), instance)  # the sensor runs only enabled channels
        yield queue


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def order(
    order_id: str, status: str, at: datetime, sku: str, quantity: int = 1, fulfillment: str = "MFN", nid: str = ""
) -> tuple[dict[str, Any], str]:
    """An ORDER_CHANGE document and its NotificationId; the order was placed at `at` − 1 h at the latest (after the
    seller's master file was written, so it reserves until closed)."""
    nid = nid or f"{order_id}:{status}:{at.timestamp():.0f}"
    document = order_change(
        order_id,
        status,
        iso(at),
        [(sku, quantity)],
        fulfillment=fulfillment,
        notification_id=nid,
        purchase_date=iso(PLACED),
    )
    return document, nid


PLACED = datetime.now(UTC) - timedelta(hours=1)


def expected_reservations(events: Iterable[tuple[str, str, datetime, str, int, str]]) -> dict[str, int]:
    """sku → reserved units, from (order_id, status, event time, sku, quantity, fulfillment): for each order the
    latest event wins (ties: the more final status), an open MFN order reserves its quantity."""
    rank = ["PendingAvailability", "Pending", "Unshipped", "PartiallyShipped", "Shipped", "Canceled"]
    latest: dict[str, tuple[datetime, int, str, str, int, str]] = {}
    for order_id, status, at, sku, quantity, fulfillment in events:
        key = (at, rank.index(status) if status in rank else 0, status, sku, quantity, fulfillment)
        if order_id not in latest or key[:2] > latest[order_id][:2]:
            latest[order_id] = key
    held: dict[str, int] = {}
    for _, _, status, sku, quantity, fulfillment in latest.values():
        if status in OPEN_ORDER_STATUSES and fulfillment == "MFN":
            held[sku] = held.get(sku, 0) + quantity
    return held


def check_reserved_push(scenario, run: dg.ExecuteInProcessResult, held: dict[str, int], since: int) -> dict:
    """The run's reservations equal the ones derived from what was sent, and no FBM quantity pushed from exchange
    `since` on exceeds master − those reservations (invariant 2 with an independent reservation figure)."""
    assert run.success, [str(e) for e in run.all_events if e.is_failure]
    table = dict(query(scenario.data, "us", "SELECT sku, reserved_quantity FROM reservations"))
    assert table == {s: q for s, q in held.items() if q}, f"reservations {table}, expected {held}"
    sent: dict[str, int] = {}
    for sku, markets, patches in scenario.tap.patches(since):
        if MARKETPLACE["us"] not in markets:
            continue
        for patch in patches:
            if patch.get("path") == "/attributes/fulfillment_availability":
                sent[sku] = int(patch["value"][0]["quantity"])
    over = {s: q for s, q in sent.items() if q > max(MASTER[s] - held.get(s, 0), 0)}
    assert not over, f"invariant 2: FBM quantity above master − reservations: {over} (held {held})"
    scenario.check_bounds()
    return sent


def sku_row(scenario) -> None:
    scenario.skus |= {f"us:{sku}" for sku in MASTER}


# -- duplicates and SNS-wrapped bodies --------------------------------------------------------------------------------
def test_notifications_duplicates_and_sns_wrapped(scenario, queue):
    scenario.not_applicable(5, "notifications only: no offer is pushed, so nothing on Amazon to converge to")
    now = datetime.now(UTC)
    a, a_id = order("111-0000001-0000001", "Unshipped", now, "FBM-1", 2)
    b, b_id = order("111-0000002-0000001", "Unshipped", now, "FBM-FLOOR", 1)
    fba = fba_change("FBA-1", 40, iso(now))
    fba["NotificationMetadata"] = {"PublishTime": iso(now), "NotificationId": "fba-1"}
    raw_a, raw_fba = json.dumps(a), json.dumps(fba)
    # Amazon delivers at least once: A three times raw and twice through SNS; B only through SNS; the FBA change twice.
    bodies = [(raw_a, a_id)] * 3 + [(sns(a), a_id), (sns(a), a_id), (sns(b), b_id)] + [(raw_fba, "fba-1")] * 2
    scenario.note_fault("ORDER_CHANGE ×5 (3 raw, 2 SNS), SNS-only order, FBA change ×2")
    queue.send(bodies)
    queue.drain()
    stored = queue.check()
    assert stored == 3, f"{stored} notifications stored for 3 distinct NotificationIds"
    assert {(r.job_name, r.partition_key) for r in queue.run_requests} == {("inventory_job", "us")}
    since = len(scenario.tap.exchanges)
    run = scenario.run(assets=ASSETS)
    sent = check_reserved_push(scenario, run, {"FBM-1": 2, "FBM-FLOOR": 1}, since)
    assert sent["FBM-1"] == 5 and sent["FBM-FLOOR"] == 2, sent
    sku_row(scenario)
    scenario.check_final_status(run.run_id)
    scenario.check_secrets()


# -- out of order -----------------------------------------------------------------------------------------------------
def test_notifications_out_of_order_never_reopen_a_closed_order(scenario, queue):
    scenario.not_applicable(6, "no SP-API call in this scenario (SQS and the store only): no token to leak")
    scenario.not_applicable(5, "notifications only: no offer is pushed, so nothing on Amazon to converge to")
    now = datetime.now(UTC)
    earlier = now - timedelta(minutes=5)
    # X: Shipped arrives in the first tick, its older Unshipped in the next one. Y: Canceled before Pending, one batch.
    # Z: Unshipped after its older Pending: stays open (1 unit of FBM-1).
    x_new, x_old = order("222-X", "Shipped", now, "FBM-1", 3), order("222-X", "Unshipped", earlier, "FBM-1", 3)
    y_new, y_old = order("222-Y", "Canceled", now, "FBM-FLOOR", 2), order("222-Y", "Pending", earlier, "FBM-FLOOR", 2)
    z_new, z_old = order("222-Z", "Unshipped", now, "FBM-1", 1), order("222-Z", "Pending", earlier, "FBM-1", 1)
    events = [
        ("222-X", "Shipped", now, "FBM-1", 3, "MFN"),
        ("222-X", "Unshipped", earlier, "FBM-1", 3, "MFN"),
        ("222-Y", "Canceled", now, "FBM-FLOOR", 2, "MFN"),
        ("222-Y", "Pending", earlier, "FBM-FLOOR", 2, "MFN"),
        ("222-Z", "Unshipped", now, "FBM-1", 1, "MFN"),
        ("222-Z", "Pending", earlier, "FBM-1", 1, "MFN"),
    ]
    held = expected_reservations(events)
    assert held == {"FBM-1": 1}
    scenario.note_fault("closing state before the older open one (same tick and next tick)")
    queue.send([(json.dumps(d), n) for d, n in (x_new, y_new, y_old, z_new, z_old)])
    queue.drain()
    # The late, older Unshipped of the shipped order arrives in a later tick: the order stays closed.
    queue.send([(json.dumps(x_old[0]), x_old[1])])
    queue.drain()
    queue.check()
    since = len(scenario.tap.exchanges)
    second = scenario.run(assets=ASSETS)
    sent = check_reserved_push(scenario, second, held, since)
    assert sent["FBM-1"] == 6 and sent["FBM-FLOOR"] == 3, sent
    states = dict(query(scenario.data, "us", "SELECT amazon_order_id, order_status FROM order_states"))
    assert states == {"222-X": "Shipped", "222-Y": "Canceled", "222-Z": "Unshipped"}, states
    sku_row(scenario)
    scenario.check_final_status(second.run_id)


# -- malformed and unknown --------------------------------------------------------------------------------------------
def test_notifications_malformed_and_unknown_types_dead_lettered(scenario, queue):
    scenario.not_applicable(6, "no SP-API call in this scenario (SQS and the store only): no token to leak")
    scenario.not_applicable(5, "notifications only: no offer is pushed, so nothing on Amazon to converge to")
    now = datetime.now(UTC)
    good, good_id = order("333-0000001-0000001", "Unshipped", now, "FBM-1", 1)
    unknown = dict(order("333-U", "Unshipped", now, "FBM-1", 5)[0], NotificationType="REPORT_PROCESSING_FINISHED")
    b2b = dict(order("333-B", "Unshipped", now, "FBM-1", 5)[0], NotificationType="B2B_ANY_OFFER_CHANGED")
    no_seller = order("333-N", "Unshipped", now, "FBM-1", 5)[0]
    del no_seller["Payload"]["OrderChangeNotification"]["SellerId"]
    elsewhere = order_change("333-J", "Unshipped", iso(now), [("FBM-1", 5)], market="A1VC38T7YXB528")
    bad_quantity = order("333-Q", "Unshipped", now, "FBM-1", 1)[0]
    bad_quantity["Payload"]["OrderChangeNotification"]["Summary"]["OrderItems"][0]["Quantity"] = "two"
    bad_sns = json.dumps({"Type": "Notification", "MessageId": "m", "Message": "{truncated"})
    junk = {
        "{not json": "not JSON",
        "[1, 2]": "not a JSON object",
        bad_sns: "SNS envelope's Message is not JSON",
        json.dumps(unknown): "unsupported notification type 'REPORT_PROCESSING_FINISHED'",
        sns(b2b): "unsupported notification type 'B2B_ANY_OFFER_CHANGED'",
        json.dumps(no_seller): "SellerId",
        json.dumps(elsewhere): "A1VC38T7YXB528",
        json.dumps(bad_quantity): "Quantity",
    }
    scenario.note_fault("malformed JSON, non-object, bad SNS, 2 unknown types, missing/bad field, unroutable")
    queue.send([(json.dumps(good), good_id), *((body, "") for body in junk)])
    queue.drain()
    stored = queue.check()
    assert stored == 1
    store = Warehouse(data_dir=str(scenario.data))
    with store.connect_notifications(read_only=True) as con:
        dead = dict(con.execute("SELECT body, reason FROM dead_letters").fetchall())
    for body, reason in junk.items():
        assert body in dead, f"not dead-lettered: {body[:60]!r}"
        assert reason in dead[body], f"{body[:40]!r}: reason {dead[body]!r}, expected it to mention {reason!r}"
    since = len(scenario.tap.exchanges)
    run = scenario.run(assets=ASSETS)
    sent = check_reserved_push(scenario, run, {"FBM-1": 1}, since)
    assert sent["FBM-1"] == 6, sent
    sku_row(scenario)
    scenario.check_final_status(run.run_id)


# -- a burst ----------------------------------------------------------------------------------------------------------
def burst(size: int, seed: int = 6) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """`size` ORDER_CHANGE messages: orders of one unit on the three FBM SKUs and the channel_wins one, each notified
    Pending/Unshipped then (mostly) Shipped or Canceled; 2 % redelivered; every tenth order FBA and left open (never
    reserves); shuffled, so the closing state often arrives first. Returns (body, id) pairs and the expected
    reservations."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    skus = ["FBM-1", "FBM-FLOOR", "FBM-CEIL", "SKU ü-7"]
    dups = size // 50
    orders = (size - dups) // 2
    pairs: list[tuple[str, str]] = []
    events = []
    for k in range(orders):
        oid = f"444-{k:07d}-0000001"
        sku = skus[k % len(skus)]
        fulfillment = "AFN" if k % 10 == 9 and k >= 12 else "MFN"
        opened = now - timedelta(minutes=30, seconds=k % 600)
        closing = "Shipped" if k % 3 else "Canceled"
        # Open: the first 12 (3 per SKU, MFN) and every FBA order (Amazon's stock, never reserved here).
        stays_open = k < 12 or fulfillment == "AFN"
        states = [("Pending", opened), ("Unshipped" if stays_open else closing, opened + timedelta(minutes=10))]
        for status, at in states:
            document, nid = order(oid, status, at, sku, 1, fulfillment)
            pairs.append((json.dumps(document), nid))
            events.append((oid, status, at, sku, 1, fulfillment))
    pairs += rng.sample(pairs, dups)
    while len(pairs) < size:  # odd sizes: one more redelivery
        pairs.append(pairs[0])
    rng.shuffle(pairs)
    return pairs, expected_reservations(events)


def run_burst(scenario, queue, size: int) -> None:
    pairs, held = burst(size)
    assert held["FBM-1"] == 3 and held["FBM-FLOOR"] == 3, held
    scenario.note_fault(f"{size:,} ORDER_CHANGE (shuffled, 2% redelivered)")
    started = time.monotonic()
    if QUEUED_AT_MOST:
        # Amazon keeps sending while the sensor drains, as in production (the sensor ticks every 30 s).
        sending = queue.send_while_draining(pairs, QUEUED_AT_MOST)
        ticks = queue.drain(max_ticks=1000, sending=sending)
        sent_s = sending.result()
        how = f"sent while draining, ≤ {QUEUED_AT_MOST} queued"
    else:
        queue.send(pairs, threads=8)
        sent_s = time.monotonic() - started
        ticks = queue.drain(max_ticks=1000)
        how = "all queued first"
    took = time.monotonic() - started
    scenario.note_fault(f"{how}: sent in {sent_s:.0f} s, drained in {took:.0f} s, {ticks} tick(s)")
    print(f"burst {size}: {how}; sent in {sent_s:.1f} s, drained in {took:.1f} s from the start ({ticks} ticks)")
    stored = queue.check()
    assert stored == len(set(queue.sent.values())), (stored, len(set(queue.sent.values())))
    # One inventory run per channel and tick, never one per notification.
    assert {(r.job_name, r.partition_key) for r in queue.run_requests} == {("inventory_job", "us")}
    assert len(queue.run_requests) <= ticks
    since = len(scenario.tap.exchanges)
    run = scenario.run(assets=ASSETS)
    sent = check_reserved_push(scenario, run, held, since)
    assert sent["FBM-1"] == 4 and sent["FBM-FLOOR"] == 0 and sent["FBM-CEIL"] == 0, sent
    sku_row(scenario)
    scenario.check_final_status(run.run_id)


# moto's SQS costs O(queue depth) per message: for every message sent, and three times for every message received
# (its retention check), it recounts the queue's visible, in-flight and delayed messages. With the whole burst queued
# before the first tick that is quadratic: 3,000 took 4.5 min, 10,000 took 54. Sent back to back while the sensor
# drains, at most 50 visible, 10,000 take 1-2 min. Real SQS has no such cost;
# RELIABILITY_NOTIFICATION_QUEUED=0 queues the whole burst first (the quadratic shape), another value sets the cap.
LARGE_BURST = int(os.environ.get(BURST_ENV) or 10_000)
QUEUED_AT_MOST = int(os.environ.get(QUEUED_ENV) or 50)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("size", [200, LARGE_BURST])
def test_notifications_burst_of_fbm_orders(scenario, queue, size):
    scenario.not_applicable(6, "no SP-API call in this scenario (SQS and the store only): no token to leak")
    scenario.not_applicable(5, "notifications only: no offer is pushed, so nothing on Amazon to converge to")
    run_burst(scenario, queue, size)
