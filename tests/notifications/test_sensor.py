"""`sqs_notifications_sensor` on a real moto SQS server and a real Dagster instance: notifications for a channel that
is not enabled are stored and held (counted in the cursor) until an `enable_channel` run, then lead to one run per
job; and with 100 sellers, every queue is drained within a bound of ticks."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

import pipelines.sensors as sensors
from pipelines.sensors import SensorCursor, plan_runs
from seller.config import parse_channels
from tests.notifications.helpers import (
    SELLER,
    UK,
    US,
    enable,
    offer_change,
    order_change,
    run_sensor,
    spapi_for,
    sqs,
    store_rows,
)

QUEUE = f"sales-channel-{SELLER}"


def test_a_channel_not_enabled_is_held_until_enable_channel_then_run_once_per_job(
    server, sqs_env, data_dir, tmp_path, instance
):
    spapi = spapi_for(server, tmp_path)
    enable("us", spapi, instance)  # us only: uk is in the channels config but was never enabled
    client = sqs(sqs_env)
    url = client.get_queue_url(QueueName=QUEUE)["QueueUrl"]

    def send(*documents):
        for document in documents:
            client.send_message(QueueUrl=url, MessageBody=json.dumps(document))

    send(
        order_change("111-0000001-0000001", "Unshipped", "2026-11-29T10:00:00Z", [("FBM-1", 1)]),
        order_change("222-0000001-0000001", "Unshipped", "2026-11-29T10:00:00Z", [("FBM-1", 1)], market=UK),
        offer_change("B000000001", "2026-11-29T10:00:00Z", market=UK),
    )
    first = run_sensor(data_dir, instance)
    # An ORDER_CHANGE concerns every channel of the seller (its stock): us runs, uk and de (not enabled) hold it.
    assert [(r.job_name, r.partition_key, r.tags["notifications"]) for r in first.run_requests] == [
        ("inventory_job", "us", "2")
    ]
    assert SensorCursor.parse(first.cursor).held == {
        "de": {"inventory_job": 2},
        "uk": {"inventory_job": 2, "prices_job": 1},
    }
    # stored all the same, and gone from the queue
    assert store_rows(data_dir, "SELECT channel, count(*) FROM notifications GROUP BY ALL ORDER BY ALL") == [
        ("uk", 2),
        ("us", 1),
    ]
    assert (
        client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]["ApproximateNumberOfMessages"]
        == "0"
    )

    # Still not enabled: nothing runs, the hold is reported and keeps counting.
    second = run_sensor(data_dir, instance, first.cursor)
    assert second.run_requests == [] and second.cursor == first.cursor
    assert (
        "held until enable_channel runs for the channel: de (inventory_job 2); uk (inventory_job 2, prices_job 1)"
        in (second.skip_reason.skip_message)
    )
    send(order_change("222-0000002-0000001", "Unshipped", "2026-11-29T10:05:00Z", [("FBM-1", 2)], market=UK))
    third = run_sensor(data_dir, instance, second.cursor)
    assert [(r.job_name, r.partition_key) for r in third.run_requests] == [("inventory_job", "us")]
    assert SensorCursor.parse(third.cursor).held == {
        "de": {"inventory_job": 3},
        "uk": {"inventory_job": 3, "prices_job": 1},
    }

    # The seller enables uk: the next tick runs it, once per job, with everything held; then the hold is gone.
    enable("uk", spapi, instance)
    fourth = run_sensor(data_dir, instance, third.cursor)
    assert [(r.job_name, r.partition_key, r.tags["notifications"]) for r in fourth.run_requests] == [
        ("inventory_job", "uk", "3"),
        ("prices_job", "uk", "1"),
    ]
    assert SensorCursor.parse(fourth.cursor).held == {"de": {"inventory_job": 3}}
    fifth = run_sensor(data_dir, instance, fourth.cursor)
    assert fifth.run_requests == [] and fifth.cursor == fourth.cursor
    # a new notification for uk now runs at once
    send(order_change("222-0000003-0000001", "Shipped", "2026-11-29T10:10:00Z", [("FBM-1", 2)], market=UK))
    sixth = run_sensor(data_dir, instance, fifth.cursor)
    assert [(r.job_name, r.partition_key) for r in sixth.run_requests] == [
        ("inventory_job", "uk"),
        ("inventory_job", "us"),
    ]
    keys = [r.run_key for r in (*first.run_requests, *third.run_requests, *fourth.run_requests, *sixth.run_requests)]
    assert len(set(keys)) == len(keys)


QUEUED_RUNS = {"run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}}


def _create(instance: dg.DagsterInstance, request: dg.RunRequest) -> dg.DagsterRun:
    """What the sensor daemon does with a request: the run, created NOT_STARTED from the code location's job."""
    from pipelines.definitions import defs

    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name="pipelines.definitions", attribute="defs"))
    repository = ReconstructableRepository.for_module("pipelines.definitions", "defs")
    return instance.create_run_for_job(
        job_def=defs.resolve_job_def(request.job_name),
        run_config=request.run_config,
        tags={**request.tags, "dagster/partition": request.partition_key},
        remote_job_origin=RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), request.job_name),
        job_code_origin=repository.get_reconstructable_job(request.job_name).get_python_origin(),
    )


def test_no_second_run_while_the_channels_run_of_the_job_is_queued(server, sqs_env, data_dir, tmp_path):
    with dg.instance_for_test(overrides=QUEUED_RUNS) as instance:
        enable("us", spapi_for(server, tmp_path), instance)
        client = sqs(sqs_env)
        url = client.get_queue_url(QueueName=QUEUE)["QueueUrl"]

        def send(*documents):
            for document in documents:
                client.send_message(QueueUrl=url, MessageBody=json.dumps(document))

        send(offer_change("B000000001", "2026-11-29T10:00:00Z"))
        first = run_sensor(data_dir, instance)
        assert [(r.job_name, r.partition_key) for r in first.run_requests] == [("prices_job", "us")]
        prices = _create(instance, first.run_requests[0])  # not started: NOT_STARTED until the coordinator has it

        send(order_change("111-0000001-0000001", "Unshipped", "2026-11-29T10:01:00Z", [("FBM-1", 1)]))
        send(offer_change("B000000002", "2026-11-29T10:01:00Z"), offer_change("B000000003", "2026-11-29T10:01:00Z"))
        second = run_sensor(data_dir, instance, first.cursor)
        # prices_job us will read these offers when it starts: only the inventory run (another job) is requested.
        assert [(r.job_name, r.partition_key) for r in second.run_requests] == [("inventory_job", "us")]
        assert SensorCursor.parse(second.cursor).since > SensorCursor.parse(first.cursor).since  # acted on
        instance.submit_run(prices.run_id, workspace=None)  # the queued run coordinator: QUEUED
        assert instance.get_run_by_id(prices.run_id).status == dg.DagsterRunStatus.QUEUED

        send(offer_change("B000000004", "2026-11-29T10:02:00Z"))
        third = run_sensor(data_dir, instance, second.cursor)
        assert third.run_requests == []
        assert "1 runs not requested, a queued run of the job covers them: us prices_job (1 notifications)" in (
            third.skip_reason.skip_message
        )
        assert SensorCursor.parse(third.cursor).since > SensorCursor.parse(second.cursor).since

        # The run starts (its worker reports RUN_START): what arrives now may come after its read, so a new run.
        instance.report_dagster_event(
            DagsterEvent(DagsterEventType.RUN_START.value, job_name=prices.job_name), run_id=prices.run_id
        )
        assert instance.get_run_by_id(prices.run_id).status == dg.DagsterRunStatus.STARTED
        send(offer_change("B000000005", "2026-11-29T10:03:00Z"))
        fourth = run_sensor(data_dir, instance, third.cursor)
        assert [(r.job_name, r.partition_key, r.tags["notifications"]) for r in fourth.run_requests] == [
            ("prices_job", "us", "1")
        ]
        assert fourth.run_requests[0].run_key != first.run_requests[0].run_key


def test_plan_runs_and_the_earlier_cursor():
    channels = parse_channels(
        {
            "channels": [
                {"name": "us", "seller_id": SELLER, "marketplace_id": US, "region": "na"},
                {"name": "uk", "seller_id": SELLER, "marketplace_id": UK, "region": "eu"},
            ]
        }
    )
    runs, held = plan_runs(
        {("us", "inventory_job"): 2, ("uk", "prices_job"): 1},
        {"uk": {"prices_job": 4}, "gone": {"inventory_job": 1}},  # `gone` left the config: dropped
        {"us"},
        channels,
    )
    assert runs == {("us", "inventory_job"): 2} and held == {"uk": {"prices_job": 5}}
    runs, held = plan_runs({}, held, {"us", "uk"}, channels)
    assert runs == {("uk", "prices_job"): 5} and held == {}
    # the cursor before this one was the bare timestamp
    assert SensorCursor.parse("2026-11-29T10:00:00+00:00") == SensorCursor(since="2026-11-29T10:00:00+00:00")


SELLERS = 100
BUSY = 5  # the last sellers in the rotation's order: the ones a tick that always starts at the first never reaches
NOTIFY = {"enable_notifications": True}
BUDGET = 2.5  # seconds per tick (the sensor's 40, shrunk with the 1 s long poll)


@pytest.fixture
def hundred_sellers(sqs_env, monkeypatch, tmp_path: Path):
    """A channels config of 100 sellers (one US channel each, notifications on), their 100 queues on the moto server,
    and 3 ORDER_CHANGE notifications in each of the last 5 queues; the others idle."""
    sellers = [f"A{n:03d}LOADTEST01" for n in range(SELLERS)]
    channels = parse_channels(
        {
            "channels": [
                {"name": f"s{n:03d}", "seller_id": s, "marketplace_id": US, "region": "na", **NOTIFY}
                for n, s in enumerate(sellers)
            ]
        },
        source="generated",
    )
    monkeypatch.setattr(sensors, "CHANNELS", channels)
    monkeypatch.setattr(sensors, "TICK_BUDGET_SECONDS", BUDGET)
    client = sqs(sqs_env)
    urls = {s: client.create_queue(QueueName=f"sales-channel-{s}")["QueueUrl"] for s in sellers}
    for n, seller in enumerate(sellers[-BUSY:]):
        for k in range(3):
            document = order_change(f"{300 + n}-{k:07d}-0000001", "Unshipped", "2026-11-29T10:00:00Z", seller=seller)
            client.send_message(QueueUrl=urls[seller], MessageBody=json.dumps(document))
    return client, urls


def test_every_queue_of_100_sellers_is_drained_within_a_bound_of_ticks(hundred_sellers, data_dir, instance):
    client, urls = hundred_sellers

    def waiting() -> dict[str, int]:
        """Seller → messages still on its queue (visible or in flight)."""
        counts = {}
        for seller, url in urls.items():
            attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            counts[seller] = sum(
                int(attributes[n]) for n in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
            )
        return {s: c for s, c in counts.items() if c}

    assert len(waiting()) == BUSY
    # Every worker starts at least one queue per tick: ceil(100 / 10) = 10 ticks at most, whatever the timing.
    bound = math.ceil(SELLERS / sensors.POLL_WORKERS)
    started, cursor, ticks = time.monotonic(), None, 0
    while waiting() and ticks < bound:
        result = run_sensor(data_dir, instance, cursor)
        cursor, ticks = result.cursor, ticks + 1
    elapsed = time.monotonic() - started
    assert not waiting(), f"not drained in {ticks} ticks of {BUDGET} s: {waiting()}"
    busy = range(SELLERS - BUSY, SELLERS)
    print(f"\n100 sellers drained in {ticks} ticks of {BUDGET} s ({elapsed:.1f} s)")
    assert store_rows(data_dir, "SELECT channel, count(*) FROM notifications GROUP BY ALL ORDER BY ALL") == [
        (f"s{n:03d}", 3) for n in busy
    ]
    # none of these channels is enabled: every notification is held, counted per channel
    assert SensorCursor.parse(cursor).held == {f"s{n:03d}": {"inventory_job": 3} for n in busy}
