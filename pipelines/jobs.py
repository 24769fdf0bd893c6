"""Jobs and schedules over the channel partitions."""

import dagster as dg

from pipelines.partitions import CHANNELS, channel_partitions

__all__ = ["channel_pipeline_job", "channel_pipeline_schedule"]

channel_pipeline_job = dg.define_asset_job(
    "channel_pipeline_job",
    selection=dg.AssetSelection.all(),
    partitions_def=channel_partitions,
    description="Validate inputs, reconcile stock, price and write every feed document for one channel.",
)


@dg.schedule(
    cron_schedule="0 * * * *",
    job=channel_pipeline_job,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Hourly: one run per configured channel (a partition each).",
)
def channel_pipeline_schedule(context: dg.ScheduleEvaluationContext):
    hour = context.scheduled_execution_time.strftime("%Y-%m-%dT%H")
    for name in CHANNELS:
        yield dg.RunRequest(run_key=f"{hour}-{name}", partition_key=name)
