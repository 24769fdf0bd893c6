"""The lake's upkeep in the deployed mode, daily: `lake_maintenance_job` expires old snapshots, merges small files and
deletes the files nothing references any more (`resources.lake.maintain`). Every commit of a run writes small
Parquet files and a snapshot, and DuckLake deletes nothing by itself, so without it the lake's file count and catalog
only grow. The embedded default has no lake: the job logs so and does nothing.

Cadence: `SALES_CHANNEL_LAKE_MAINTENANCE_CRON` (default daily at 04:15, read when the code location loads); how old a
snapshot must be to expire: run config `expire_older_than_days` (default 7: time travel reaches back that far).
"""

import os
from datetime import timedelta

import dagster as dg

from resources import lake
from resources.state import state_from_env

__all__ = ["LakeMaintenanceConfig", "lake_maintenance_job", "lake_maintenance_schedule"]


class LakeMaintenanceConfig(dg.Config):
    """`expire_older_than_days`: snapshots (and the files only they reference) older than this are removed."""

    expire_older_than_days: float = 7.0


@dg.op
def lake_maintenance(context: dg.OpExecutionContext, config: LakeMaintenanceConfig) -> dict[str, int]:
    """Expire the lake's snapshots older than `expire_older_than_days`, merge adjacent small files, rewrite files
    with many deleted rows and delete the files no snapshot references; a no-op in the embedded mode."""
    state = state_from_env()
    if not state.deployed:
        context.log.info("lake maintenance: nothing to do in the embedded mode (no lake: SALES_CHANNEL_STATE is unset)")
        return {}
    summary = lake.maintain(state, timedelta(days=config.expire_older_than_days)).as_dict()
    context.log.info(
        "lake maintenance: "
        + ", ".join(f"{value} {name.replace('_', ' ')}" for name, value in summary.items())
        + f" (snapshots older than {config.expire_older_than_days:g} days expired)"
    )
    context.add_output_metadata({name: dg.MetadataValue.int(value) for name, value in summary.items()})
    return summary


@dg.job(description="The lake's upkeep (deployed mode): expire old snapshots, merge small files, delete unused ones.")
def lake_maintenance_job() -> None:
    lake_maintenance()


@dg.schedule(
    cron_schedule=os.environ.get("SALES_CHANNEL_LAKE_MAINTENANCE_CRON") or "15 4 * * *",
    job=lake_maintenance_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily (04:15): the lake's upkeep (a no-op in the embedded mode).",
)
def lake_maintenance_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    return dg.RunRequest(run_key=f"lake_maintenance-{context.scheduled_execution_time:%Y-%m-%d}")
