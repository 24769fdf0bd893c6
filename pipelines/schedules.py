"""The three cadences, one run per configured channel each: prices every 15 minutes, inventory hourly, the full
pipeline daily. Every run is tagged `seller=<seller_id>` (for run-queue tag limits) and keyed by time and channel, so
a tick that is retried never launches a second run.

Concurrency (see dagster-notes §7): steps that call SP-API run in pool `spapi` (`dagster instance concurrency set
spapi N`); pools are fixed per definition, so a pool cannot be per seller: per-seller fairness comes from the run
queue's tag limit on `seller` (dagster.yaml `tag_concurrency_limits`, queued runs only: schedules, sensors, backfills
and UI launches, not `dagster asset materialize`), and Amazon's request rates from the SP-API resource's shared
token buckets.
"""

from collections.abc import Iterator

import dagster as dg

from pipelines.jobs import channel_pipeline_job, inventory_job, prices_job
from pipelines.partitions import CHANNELS

__all__ = ["SCHEDULES", "channel_pipeline_schedule", "inventory_schedule", "prices_schedule"]


def _fan_out(context: dg.ScheduleEvaluationContext, job: str) -> Iterator[dg.RunRequest]:
    stamp = context.scheduled_execution_time.strftime("%Y-%m-%dT%H:%M")
    for name, channel in CHANNELS.items():
        yield dg.RunRequest(
            run_key=f"{job}-{stamp}-{name}",
            partition_key=name,
            tags={"seller": channel.seller_id, "trigger": "schedule"},
        )


@dg.schedule(
    cron_schedule="*/15 * * * *",
    job=prices_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 15 minutes: competitor offers, Buy Box prices and the price push, per channel.",
)
def prices_schedule(context: dg.ScheduleEvaluationContext):
    yield from _fan_out(context, prices_job.name)


@dg.schedule(
    cron_schedule="5 * * * *",
    job=inventory_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly (at :05): inputs, FBA stock, reservations, reconcile, push and shipment confirmations.",
)
def inventory_schedule(context: dg.ScheduleEvaluationContext):
    yield from _fan_out(context, inventory_job.name)


@dg.schedule(
    cron_schedule="30 3 * * *",
    job=channel_pipeline_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily (03:30): the full reconcile, every asset of every channel.",
)
def channel_pipeline_schedule(context: dg.ScheduleEvaluationContext):
    yield from _fan_out(context, channel_pipeline_job.name)


SCHEDULES = [prices_schedule, inventory_schedule, channel_pipeline_schedule]
