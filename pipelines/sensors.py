"""`sqs_notifications_sensor`: drain each seller's SQS queue into the notification store and request channel runs.

Per tick, the sellers with a notifications-enabled channel are polled in rotation, starting where the last tick
stopped (`next_seller` in the cursor), `POLL_WORKERS` queues at a time (a thread and a boto3 client each), within
`TICK_BUDGET_SECONDS`: a worker takes the next seller only while its long poll still fits in the budget. For each
queue: receive messages (the first receive long-polls `SALES_CHANNEL_SQS_WAIT_SECONDS`, then until the queue is empty,
`SALES_CHANNEL_SQS_MAX_PER_TICK` messages or the budget), parse and route them, store them in
`warehouse/_notifications.duckdb` in one short transaction per batch (one transaction at a time; duplicates by
NotificationId ignored, malformed or unroutable ones kept in `dead_letters` with the reason), and only then delete
them from the queue. A crash before the delete means redelivery, which the dedup absorbs: at-least-once in, exactly
once stored. A queue SQS fails on is reported and left for its next turn; the others go on.

An idle queue costs one long poll, so a tick covers about POLL_WORKERS × TICK_BUDGET_SECONDS / wait idle queues
(10 × 40 / 2 = 200 with the defaults), and every worker starts at least one queue per tick (the budget exceeds SQS's
longest long poll, 20 s): with N sellers, every queue is polled at least once every ceil(N / POLL_WORKERS) ticks.

Runs are requested from what was stored since the cursor's `since` (the newest `received_at` acted on), so
notifications stored by a tick that failed before its runs were submitted are acted on by the next tick: ORDER_CHANGE
→ `inventory_job` on every channel of the order's seller (an order reserves the seller's stock everywhere),
FBA_INVENTORY_AVAILABILITY_CHANGES → `inventory_job` (reservations, FBA pull, reconcile, push), ANY_OFFER_CHANGED →
`prices_job` (competitor offers, reprice, push); one run per channel and job per tick, tagged `seller=<id>`, only for
channels an `enable_channel` run has enabled. Notifications for a channel not enabled yet are stored all the same and
counted in the cursor's `held` (channel → job → notifications; also in the skip reason and the log); the first tick
after the channel's enable run requests one run per held job, which reads everything stored for the channel.

No run is requested for a channel and job while a run of that job for the channel is queued and not started yet: it
reads everything stored when it starts, so the new notifications are acted on by it (counted as coalesced in the skip
reason and the log) instead of queueing one more run per tick behind it.
"""

import bisect
import json
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from botocore.exceptions import BotoCoreError, ClientError

from assets.notifications import SqsSettings, queue_url, sqs_client
from pipelines.enablement import enabled_channels
from pipelines.jobs import inventory_job, prices_job
from pipelines.partitions import CHANNELS
from resources.warehouse import Warehouse
from seller.config import Channel
from sync.notifications import Received, ensure_schema, prepare_batch, store_batch
from sync.order_poll import stock_changes_since

__all__ = [
    "DrainStats",
    "SellerPoll",
    "SensorCursor",
    "drain_queue",
    "poll_sellers",
    "plan_runs",
    "queued_runs",
    "sqs_notifications_sensor",
    "order_poll_sensor",
    "SENSORS",
]

MAX_PER_TICK_ENV = "SALES_CHANNEL_SQS_MAX_PER_TICK"
TICK_BUDGET_SECONDS = 40.0  # a sensor evaluation may take at most 60 s
POLL_WORKERS = 10  # queues long-polled at once (threads waiting on SQS; the store takes one batch at a time)
# Messages per store transaction (and per delete round). Received messages stay in flight until stored and deleted;
# 100 keeps that window short (less to redeliver after a crash; moto's SQS, which recounts its in-flight messages
# for every message it hands out, drains a 10,000-message burst ~15 % faster than with 200) for one more
# ~0.1 s DuckDB transaction per 100 messages.
STORE_EVERY = 100

_JOB_FOR_TYPE = {
    "ORDER_CHANGE": inventory_job.name,
    "FBA_INVENTORY_AVAILABILITY_CHANGES": inventory_job.name,
    "ANY_OFFER_CHANGED": prices_job.name,
}


@dataclass
class DrainStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    deleted: int = 0
    delete_failures: list[str] = field(default_factory=list)


def _flush(
    sqs: Any,
    url: str,
    pending: list[Received],
    warehouse: Warehouse,
    channels: Mapping[str, Channel],
    stats: DrainStats,
    store_lock: AbstractContextManager[Any],
) -> None:
    batch = prepare_batch(pending, channels, datetime.now(UTC))
    with store_lock, warehouse.connect_notifications() as con:
        fresh = store_batch(con, batch)
    stats.stored += len(fresh)
    stats.dead_letters += len(batch.rows["dead_letters"])
    stats.duplicates += len(batch.rows["notifications"]) - len(fresh)
    # Stored (or dead-lettered): now the messages may go.
    for start in range(0, len(pending), 10):
        chunk = pending[start : start + 10]
        entries = [{"Id": str(n), "ReceiptHandle": m.receipt_handle} for n, m in enumerate(chunk)]
        result = sqs.delete_message_batch(QueueUrl=url, Entries=entries)
        stats.deleted += len(result.get("Successful", []))
        stats.delete_failures += [f"{f.get('Code')}: {f.get('Message')}" for f in result.get("Failed", [])]
    pending.clear()


def drain_queue(
    sqs: Any,
    url: str,
    warehouse: Warehouse,
    channels: Mapping[str, Channel],
    *,
    wait_seconds: int,
    max_messages: int,
    deadline: float,
    store_lock: AbstractContextManager[Any] | None = None,
) -> DrainStats:
    """Receive, store, then delete, until the queue is empty, `max_messages` or the monotonic `deadline`;
    `store_lock` serialises the store transactions of queues drained at the same time."""
    stats = DrainStats()
    pending: list[Received] = []
    lock = store_lock or nullcontext()
    wait = wait_seconds
    while stats.received < max_messages and time.monotonic() < deadline:
        response = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(10, max_messages - stats.received),
            WaitTimeSeconds=wait,
            VisibilityTimeout=120,
        )
        messages = response.get("Messages") or []
        if not messages:
            break
        wait = min(wait, 1)  # after the first receive: just enough to see the rest of a backlog
        stats.received += len(messages)
        pending += [Received(m["MessageId"], m["ReceiptHandle"], m.get("Body", "")) for m in messages]
        if len(pending) >= STORE_EVERY:
            _flush(sqs, url, pending, warehouse, channels, stats, lock)
    if pending:
        _flush(sqs, url, pending, warehouse, channels, stats, lock)
    return stats


@dataclass
class SellerPoll:
    """One seller's queue in one tick: what draining it did, or why it was not drained (`problem`)."""

    seller: str
    stats: DrainStats = field(default_factory=DrainStats)
    problem: str | None = None


def _poll(
    sqs: Any,
    seller: str,
    settings: SqsSettings,
    warehouse: Warehouse,
    channels: Mapping[str, Channel],
    *,
    max_messages: int,
    deadline: float,
    store_lock: AbstractContextManager[Any],
) -> SellerPoll:
    name = settings.queue_name(seller)
    try:
        url = queue_url(sqs, name)
        if url is None:
            return SellerPoll(seller, problem=f"no queue {name} (run enable_channel for the seller's channels)")
        stats = drain_queue(
            sqs,
            url,
            warehouse,
            channels,
            wait_seconds=settings.wait_seconds,
            max_messages=max_messages,
            deadline=deadline,
            store_lock=store_lock,
        )
    except (BotoCoreError, ClientError) as exc:  # what was stored stays stored; the rest is redelivered next turn
        return SellerPoll(seller, problem=f"SQS failed on {name}: {exc}")
    return SellerPoll(seller, stats)


def poll_sellers(
    sellers: Sequence[str],
    start: str | None,
    settings: SqsSettings,
    warehouse: Warehouse,
    channels: Mapping[str, Channel],
    *,
    budget_seconds: float,
    max_messages: int,
    workers: int = POLL_WORKERS,
) -> tuple[list[SellerPoll], str | None]:
    """Drain the sellers' queues in rotation (sorted, from `start`, or the seller after it when it left the config),
    `workers` at a time, each worker taking the next seller while a long poll still fits in `budget_seconds`.
    Returns the polls in rotation order and the seller the next tick starts from (the first one not polled)."""
    ordered = sorted(set(sellers))
    first = bisect.bisect_left(ordered, start) % len(ordered) if start and ordered else 0
    order = ordered[first:] + ordered[:first]
    # One client per thread (boto3 clients are not shared between threads), made here one after the other: the
    # first loads SQS's service model, the others reuse it.
    clients = [sqs_client(settings) for _ in range(min(workers, len(order)))]
    deadline = time.monotonic() + budget_seconds
    handout, store_lock = threading.Lock(), threading.Lock()
    queue = iter(order)
    polls: dict[str, SellerPoll] = {}

    def work(sqs: Any) -> None:
        while True:
            with handout:  # sellers are handed out in order: the polled ones are a prefix of `order`
                if time.monotonic() + settings.wait_seconds >= deadline:
                    return
                seller = next(queue, None)
            if seller is None:
                return
            polls[seller] = _poll(
                sqs,
                seller,
                settings,
                warehouse,
                channels,
                max_messages=max_messages,
                deadline=deadline,
                store_lock=store_lock,
            )

    if clients:
        with ThreadPoolExecutor(max_workers=len(clients), thread_name_prefix="sqs-poll") as pool:
            for future in [pool.submit(work, sqs) for sqs in clients]:
                future.result()
    polled = [polls[s] for s in order if s in polls]
    return polled, (order[len(polled) % len(order)] if order else None)


@dataclass
class SensorCursor:
    """The sensor's cursor (JSON): `since`, the newest received_at acted on; `held`, channel → job → notifications
    stored for a channel not enabled yet; `next_seller`, where the next tick's rotation starts."""

    since: str | None = None
    held: dict[str, dict[str, int]] = field(default_factory=dict)
    next_seller: str | None = None

    @classmethod
    def parse(cls, text: str | None) -> "SensorCursor":
        if not text:
            return cls()
        if not text.startswith("{"):  # the earlier cursor: the bare timestamp
            return cls(since=text)
        doc = json.loads(text)
        return cls(doc.get("since"), doc.get("held") or {}, doc.get("next_seller"))

    def dump(self) -> str:
        return json.dumps({"since": self.since, "held": self.held, "next_seller": self.next_seller}, sort_keys=True)


def stored_since(
    warehouse: Warehouse, since: str | None, channels: Mapping[str, Channel]
) -> tuple[dict[tuple[str, str], int], str | None]:
    """(channel, job) → notifications stored after `since` (an ISO received_at), and the newest received_at."""
    if not warehouse.has_notifications():
        return {}, since
    after = datetime.fromisoformat(since) if since else datetime(1970, 1, 1, tzinfo=UTC)
    with warehouse.connect_notifications() as con:
        ensure_schema(con)
        rows = con.execute(
            "SELECT channel, notification_type, count(*), max(received_at) FROM notifications "
            "WHERE received_at > $since AND channel <> '' GROUP BY ALL ORDER BY ALL",
            {"since": after},
        ).fetchall()
    if not rows:
        return {}, since
    wanted: dict[tuple[str, str], int] = {}
    for channel, kind, count, _ in rows:
        job = _JOB_FOR_TYPE.get(kind)
        if not job or channel not in channels:
            continue
        targets = [channel]
        if kind == "ORDER_CHANGE":  # an order reserves the seller's stock on every channel (sync.orders)
            seller = channels[channel].seller_id
            targets = [name for name, c in channels.items() if c.seller_id == seller]
        for target in targets:
            wanted[(target, job)] = wanted.get((target, job), 0) + count
    return wanted, max(r[3] for r in rows).isoformat()


def plan_runs(
    wanted: Mapping[tuple[str, str], int],
    held: Mapping[str, Mapping[str, int]],
    enabled: set[str],
    channels: Mapping[str, Channel],
) -> tuple[dict[tuple[str, str], int], dict[str, dict[str, int]]]:
    """Split the new notifications (`wanted`, (channel, job) → count) and those already `held` into runs to request
    now (enabled channels; (channel, job) → count) and what stays held (channel → job → count). A held channel no
    longer in the config is dropped: it has no partition to run."""
    merged: dict[str, dict[str, int]] = {channel: dict(jobs) for channel, jobs in held.items() if channel in channels}
    for (channel, job), count in wanted.items():
        merged.setdefault(channel, {})
        merged[channel][job] = merged[channel].get(job, 0) + count
    runs = {(c, job): n for c, jobs in merged.items() if c in enabled for job, n in jobs.items()}
    return runs, {c: jobs for c, jobs in sorted(merged.items()) if c not in enabled}


# A run in these states has not read the store yet: whatever is stored before it starts is its to act on.
_UNSTARTED = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED]


def queued_runs(instance: dg.DagsterInstance, jobs: Iterable[str]) -> set[tuple[str, str]]:
    """(channel, job) of every run of `jobs` that is queued and not started yet (its partition is the channel)."""
    waiting: set[tuple[str, str]] = set()
    for job in sorted(set(jobs)):
        for run in instance.get_runs(filters=dg.RunsFilter(job_name=job, statuses=_UNSTARTED)):
            channel = run.tags.get("dagster/partition")
            if channel:
                waiting.add((channel, job))
    return waiting


def _coalesced_note(coalesced: Mapping[tuple[str, str], int]) -> str:
    parts = [f"{channel} {job} ({n} notifications)" for (channel, job), n in sorted(coalesced.items())]
    return f"{len(coalesced)} runs not requested, a queued run of the job covers them: {'; '.join(parts)}"


def _describe(polls: Sequence[SellerPoll], sellers: int, next_seller: str | None) -> str:
    total = DrainStats()
    for poll in polls:
        for name in ("received", "stored", "duplicates", "dead_letters", "deleted"):
            setattr(total, name, getattr(total, name) + getattr(poll.stats, name))
    where = f"from {polls[0].seller}, " if polls and len(polls) < sellers else ""
    then = f"; the next tick starts at {next_seller}" if len(polls) < sellers else ""
    return (
        f"polled {len(polls)} of {sellers} sellers' queues ({where}{POLL_WORKERS} at a time): received "
        f"{total.received}, stored {total.stored}, duplicates {total.duplicates}, dead letters {total.dead_letters}, "
        f"deleted {total.deleted}{then}"
    )


def _held_note(held: Mapping[str, Mapping[str, int]]) -> str:
    parts = [f"{c} ({', '.join(f'{job} {n}' for job, n in sorted(jobs.items()))})" for c, jobs in held.items()]
    return f"held until enable_channel runs for the channel: {'; '.join(parts)}"


@dg.sensor(
    name="sqs_notifications_sensor",
    jobs=[inventory_job, prices_job],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Drain each seller's SQS queue into the notification store; request inventory/price runs per "
    "enabled channel.",
)
def sqs_notifications_sensor(context: dg.SensorEvaluationContext, warehouse: Warehouse) -> dg.SensorResult:
    channels = CHANNELS
    sellers = sorted({c.seller_id for c in channels.values() if c.enable_notifications})
    settings = SqsSettings.from_env()
    if not sellers:
        return dg.SensorResult(skip_reason="no channel has enable_notifications: true")
    if not settings.configured:
        return dg.SensorResult(
            skip_reason="SALES_CHANNEL_SQS_ENDPOINT is not set (with the emulator target, point it at a moto server)"
        )
    previous = SensorCursor.parse(context.cursor)
    polls, next_seller = poll_sellers(
        sellers,
        previous.next_seller,
        settings,
        warehouse,
        channels,
        budget_seconds=TICK_BUDGET_SECONDS,
        max_messages=int(os.environ.get(MAX_PER_TICK_ENV) or 5000),
    )
    for poll in polls:
        if poll.problem:
            context.log.warning(f"{poll.seller}: {poll.problem}")
        elif poll.stats.received:
            s = poll.stats
            context.log.info(
                f"{poll.seller}: received {s.received}, stored {s.stored}, duplicates {s.duplicates}, "
                f"dead letters {s.dead_letters}, deleted {s.deleted}"
            )
        for failure in poll.stats.delete_failures[:5]:
            context.log.warning(
                f"{poll.seller}: delete failed ({failure}); the message will be redelivered and deduplicated"
            )
    wanted, since = stored_since(warehouse, previous.since, channels)
    runs, held = plan_runs(wanted, previous.held, enabled_channels(context.instance), channels)
    waiting = queued_runs(context.instance, {job for _, job in runs})
    coalesced = {key: count for key, count in runs.items() if key in waiting}
    runs = {key: count for key, count in runs.items() if key not in waiting}
    notes = [_describe(polls, len(sellers), next_seller)] + ([_held_note(held)] if held else [])
    notes += [_coalesced_note(coalesced)] if coalesced else []
    for note in notes:
        context.log.info(note)
    notes += [f"{p.seller}: {p.problem}" for p in polls if p.problem]  # logged as warnings above
    cursor = SensorCursor(since, held, next_seller).dump()
    stamp = datetime.fromisoformat(since).astimezone(UTC).strftime("%Y%m%dT%H%M%S.%f") if since else "start"
    requests = [
        dg.RunRequest(
            run_key=f"notifications-{job}-{channel}-{stamp}",
            job_name=job,
            partition_key=channel,
            tags={"seller": channels[channel].seller_id, "trigger": "notifications", "notifications": str(count)},
        )
        for (channel, job), count in sorted(runs.items())
    ]
    if not requests:
        return dg.SensorResult(skip_reason="; ".join(notes), cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)


@dg.sensor(
    name="order_poll_sensor",
    jobs=[inventory_job],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Request inventory runs for every enabled channel of a seller whose order poll found an MFN order "
    "change the notifications had not brought.",
)
def order_poll_sensor(context: dg.SensorEvaluationContext, warehouse: Warehouse) -> dg.SensorResult:
    """The order poll stores orders in the notification store; an MFN order version it stored that no notification
    had brought (a new open order, or one closed) changes the seller's reservations, so each enabled channel of the
    seller gets an `inventory_job` run (reservations, reconcile, push). The cursor is the newest `stored_at` acted on
    (our clock), so versions stored by a poll whose run died later are acted on all the same. A channel whose
    inventory run is queued and not started is skipped: that run reads the store when it starts."""
    since = datetime.fromisoformat(context.cursor) if context.cursor else None
    if not warehouse.has_notifications():
        return dg.SensorResult(skip_reason="no notification store yet (no order poll has run)")
    with warehouse.connect_notifications(read_only=True) as store:
        changed, newest = stock_changes_since(store, since)
    cursor = newest.isoformat() if newest else context.cursor
    if not changed:
        reason = "no MFN order change found by the poll alone since the last tick"
        return dg.SensorResult(skip_reason=reason, cursor=cursor)
    enabled = enabled_channels(context.instance)
    waiting = queued_runs(context.instance, [inventory_job.name])
    stamp = newest.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%f") if newest else "start"
    requests = [
        dg.RunRequest(
            run_key=f"order-poll-{inventory_job.name}-{name}-{stamp}",
            job_name=inventory_job.name,
            partition_key=name,
            tags={"seller": channel.seller_id, "trigger": "order_poll", "orders": str(changed[channel.seller_id])},
        )
        for name, channel in CHANNELS.items()
        if channel.seller_id in changed and name in enabled and (name, inventory_job.name) not in waiting
    ]
    context.log.info(f"poll-only MFN order changes by seller: {changed}; {len(requests)} inventory runs requested")
    if not requests:
        reason = f"poll-only MFN order changes {changed}: no enabled channel without a queued inventory run"
        return dg.SensorResult(skip_reason=reason, cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)


SENSORS = [sqs_notifications_sensor, order_poll_sensor]
