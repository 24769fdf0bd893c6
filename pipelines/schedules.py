"""The six cadences: the order poll every 5 minutes (one run per seller x region), and one run per enabled channel
each for the offers pull every 5 minutes, prices every 15 minutes, inventory hourly, the full pipeline daily and the
channel's status (with the freshness checks) every 5 minutes. Runs carry the channel's `seller` and `seller_region`
tags (the pull: `offers_pull`, the status: `channel_status`; from the partition, see `pipelines.jobs`) and are keyed
by time and channel, so a tick that is retried never launches a second run. A channel is scheduled only once an
`enable_channel` run has checked it (`pipelines.enablement`), and only while its entry is in the channels config.

Each cadence can be changed without a code change: `SALES_CHANNEL_ORDER_POLL_CRON`, `SALES_CHANNEL_OFFERS_PULL_CRON`,
`SALES_CHANNEL_PRICES_CRON`, `SALES_CHANNEL_INVENTORY_CRON`, `SALES_CHANNEL_FULL_CRON` and `SALES_CHANNEL_STATUS_CRON`
(cron syntax, read when the code location loads). The pull's run lasts up to `pull_seconds` (270 s): keep its
cadence longer than that.

Concurrency (see dagster-notes §7): steps that call SP-API run in pool `spapi`; pools are fixed per definition, so
per-seller fairness comes from the run queue's tag limit on `seller_region` (deploy/dagster.yaml; queued runs only:
schedules, sensors, backfills and UI launches, not `dagster asset materialize`), and Amazon's request rates from the
SP-API resource's shared token buckets.
"""

import os
from collections.abc import Iterator

import dagster as dg

from pipelines.enablement import enabled_channels
from pipelines.jobs import (
    channel_pipeline_job,
    channel_status_job,
    inventory_job,
    offers_pull_job,
    order_poll_job,
    prices_job,
)
from pipelines.partitions import CHANNELS
from seller.config import load_channels

__all__ = [
    "SCHEDULES",
    "channel_pipeline_schedule",
    "channel_status_schedule",
    "inventory_schedule",
    "offers_pull_schedule",
    "order_poll_schedule",
    "poll_channels",
    "prices_schedule",
]


def _due(context: dg.ScheduleEvaluationContext) -> list[str]:
    enabled = enabled_channels(context.instance)
    configured = load_channels()  # read at every tick: an entry removed from the config stops at once
    return [name for name in CHANNELS if name in enabled and name in configured]


def poll_channels(due: list[str]) -> list[str]:
    """One channel per seller x region among `due` (the first in config order): its order poll covers every
    marketplace of the seller in the region."""
    chosen: dict[tuple[str, str], str] = {}
    for name in due:
        chosen.setdefault((CHANNELS[name].seller_id, CHANNELS[name].region), name)
    return list(chosen.values())


def _fan_out(
    context: dg.ScheduleEvaluationContext, job: str, per_seller_region: bool = False
) -> Iterator[dg.RunRequest | dg.SkipReason]:
    stamp = context.scheduled_execution_time.strftime("%Y-%m-%dT%H:%M")
    due = _due(context)
    if per_seller_region:
        due = poll_channels(due)
    if not due:
        yield dg.SkipReason(f"no enabled channel among {', '.join(CHANNELS)}: run the enable_channel job for each")
    for name in due:
        yield dg.RunRequest(run_key=f"{job}-{stamp}-{name}", partition_key=name, tags={"trigger": "schedule"})


def _cron(env: str, default: str) -> str:
    return os.environ.get(env) or default


@dg.schedule(
    cron_schedule=_cron("SALES_CHANNEL_ORDER_POLL_CRON", "*/5 * * * *"),
    job=order_poll_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 5 minutes: the order poll (searchOrders from the watermark), once per seller x region (the "
    "first enabled channel's run polls every marketplace of the seller in the region).",
)
def order_poll_schedule(context: dg.ScheduleEvaluationContext):
    yield from _fan_out(context, order_poll_job.name, per_seller_region=True)


@dg.schedule(
    cron_schedule=_cron("SALES_CHANNEL_OFFERS_PULL_CRON", "*/5 * * * *"),
    job=offers_pull_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 5 minutes: the budgeted offers pull (the stalest ASINs first), per enabled channel.",
)
def offers_pull_schedule(context: dg.ScheduleEvaluationContext):
    yield from _fan_out(context, offers_pull_job.name)


@dg.schedule(
    cron_schedule=_cron("SALES_CHANNEL_PRICES_CRON", "*/15 * * * *"),
    job=prices_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 15 minutes: the observed offers, Buy Box prices and the price push, per enabled channel.",
)
def prices_schedule(context: dg.ScheduleEvaluationContext):
    yield from _fan_out(context, prices_job.name)


@dg.schedule(
    cron_schedule=_cron("SALES_CHANNEL_INVENTORY_CRON", "5 * * * *"),
    job=inventory_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly (at :05): inputs, FBA stock, reservations, reconcile, push and shipment confirmations.",
)
def inventory_schedule(context: dg.ScheduleEvaluationContext):
    yield from _fan_out(context, inventory_job.name)


@dg.schedule(
    cron_schedule=_cron("SALES_CHANNEL_FULL_CRON", "30 3 * * *"),
    job=channel_pipeline_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily (03:30): the full reconcile, every asset of every enabled channel.",
)
def channel_pipeline_schedule(context: dg.ScheduleEvaluationContext):
    yield from _fan_out(context, channel_pipeline_job.name)


@dg.schedule(
    cron_schedule=_cron("SALES_CHANNEL_STATUS_CRON", "*/5 * * * *"),
    job=channel_status_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 5 minutes: channel_status and the freshness checks, per enabled channel (reads only).",
)
def channel_status_schedule(context: dg.ScheduleEvaluationContext):
    yield from _fan_out(context, channel_status_job.name)


SCHEDULES = [
    order_poll_schedule,
    offers_pull_schedule,
    prices_schedule,
    inventory_schedule,
    channel_pipeline_schedule,
    channel_status_schedule,
]
