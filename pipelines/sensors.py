"""`sqs_notifications_sensor`: drain each seller's SQS queue into the notification store and request channel runs.

Per tick, for every seller with a notifications-enabled channel: receive messages (the first receive long-polls
`SALES_CHANNEL_SQS_WAIT_SECONDS`, then until the queue is empty, the tick's message cap or its time budget), parse and
route them, store them in `warehouse/_notifications.duckdb` in one short transaction per batch (duplicates by
NotificationId ignored, malformed or unroutable ones kept in `dead_letters` with the reason), and only then delete
them from the queue. A crash before the delete means redelivery, which the dedup absorbs: at-least-once in, exactly
once stored.

Runs are requested from what was stored since the cursor (the newest `received_at` acted on), so notifications
stored by a tick that failed before its runs were submitted are acted on by the next tick: ORDER_CHANGE and
FBA_INVENTORY_AVAILABILITY_CHANGES → `inventory_job` (reservations, FBA pull, reconcile, push), ANY_OFFER_CHANGED →
`prices_job` (competitor offers, reprice, push); one run per channel and job per tick, tagged `seller=<id>`.
"""

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from assets.notifications import SqsSettings, queue_url, sqs_client
from pipelines.jobs import inventory_job, prices_job
from pipelines.partitions import CHANNELS
from resources.warehouse import Warehouse
from seller.config import Channel
from sync.notifications import Received, ensure_schema, prepare_batch, store_batch

__all__ = ["DrainStats", "drain_queue", "sqs_notifications_sensor", "SENSORS"]

MAX_PER_TICK_ENV = "SALES_CHANNEL_SQS_MAX_PER_TICK"
TICK_BUDGET_SECONDS = 40.0  # a sensor evaluation may take at most 60 s
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
) -> None:
    batch = prepare_batch(pending, channels, datetime.now(UTC))
    with warehouse.connect_notifications() as con:
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
) -> DrainStats:
    """Receive, store, then delete, until the queue is empty, `max_messages` or the monotonic `deadline`."""
    stats = DrainStats()
    pending: list[Received] = []
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
            _flush(sqs, url, pending, warehouse, channels, stats)
    if pending:
        _flush(sqs, url, pending, warehouse, channels, stats)
    return stats


def run_requests_since(warehouse: Warehouse, cursor: str | None, channels: Mapping[str, Channel]) -> tuple[list, str]:
    """Run requests for notifications stored after `cursor` (an ISO received_at), and the new cursor."""
    if not warehouse.notifications_path().exists():
        return [], cursor or ""
    since = datetime.fromisoformat(cursor) if cursor else datetime(1970, 1, 1, tzinfo=UTC)
    with warehouse.connect_notifications() as con:
        ensure_schema(con)
        rows = con.execute(
            "SELECT channel, notification_type, count(*), max(received_at) FROM notifications "
            "WHERE received_at > $since AND channel <> '' GROUP BY ALL ORDER BY ALL",
            {"since": since},
        ).fetchall()
    newest = max((r[3] for r in rows), default=since)
    wanted: dict[tuple[str, str], int] = {}
    for channel, kind, count, _ in rows:
        job = _JOB_FOR_TYPE.get(kind)
        if job and channel in channels:
            wanted[(channel, job)] = wanted.get((channel, job), 0) + count
    stamp = newest.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%f")
    requests = [
        dg.RunRequest(
            run_key=f"notifications-{job}-{channel}-{stamp}",
            job_name=job,
            partition_key=channel,
            tags={"seller": channels[channel].seller_id, "trigger": "notifications", "notifications": str(count)},
        )
        for (channel, job), count in sorted(wanted.items())
    ]
    return requests, newest.isoformat()


@dg.sensor(
    name="sqs_notifications_sensor",
    jobs=[inventory_job, prices_job],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Drain each seller's SQS queue into the notification store; request inventory/price runs per channel.",
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
    sqs = sqs_client(settings)
    deadline = time.monotonic() + TICK_BUDGET_SECONDS
    max_messages = int(os.environ.get(MAX_PER_TICK_ENV) or 5000)
    notes: list[str] = []
    for seller in sellers:
        url = queue_url(sqs, settings.queue_name(seller))
        if url is None:
            notes.append(f"{seller}: no queue {settings.queue_name(seller)} (materialize notification_subscriptions)")
            continue
        stats = drain_queue(
            sqs,
            url,
            warehouse,
            channels,
            wait_seconds=settings.wait_seconds,
            max_messages=max_messages,
            deadline=deadline,
        )
        notes.append(
            f"{seller}: received {stats.received}, stored {stats.stored}, duplicates {stats.duplicates}, "
            f"dead letters {stats.dead_letters}, deleted {stats.deleted}"
        )
        for failure in stats.delete_failures[:5]:
            context.log.warning(
                f"{seller}: delete failed ({failure}); the message will be redelivered and deduplicated"
            )
    for note in notes:
        context.log.info(note)
    requests, cursor = run_requests_since(warehouse, context.cursor, channels)
    if not requests:
        return dg.SensorResult(skip_reason="; ".join(notes) or "nothing new", cursor=cursor or context.cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)


SENSORS = [sqs_notifications_sensor]
