"""Enabling a channel: the one-time step Amazon asks for per marketplace, as a job (`enable_channel`).

A channel is added by adding its entry to the channels config (no code change). `enable_channel` then checks the
seller's authorization covers that marketplace (getMarketplaceParticipations), wires its notifications (the seller's
SQS queue, destination and subscriptions) and records the channel as enabled: the schedules run only channels that an
`enable_channel` run has enabled, so a channel whose connection was never checked is never synced on a timer.
Removing an entry from the config stops its schedules; its DuckDB file and its run and materialization history stay.
"""

import dagster as dg

from assets.notifications import SqsSettings, wire_notifications
from resources.spapi import SpApiError, Unauthorized
from resources.spapi_resource import SpApiResource
from seller.config import load_channels

__all__ = ["ENABLE_JOB", "enable_channel", "enabled_channels"]

ENABLE_JOB = "enable_channel"


class EnableChannelConfig(dg.Config):
    """`channel`: the entry's `name` in the channels config."""

    channel: str


@dg.op(pool="spapi")
def enable_channel_op(context: dg.OpExecutionContext, config: EnableChannelConfig, spapi: SpApiResource) -> None:
    """Check the channel's connection and wire its notifications; fails with what the seller must fix."""
    channels = load_channels()  # read now, not at code-location load: the entry may be minutes old
    channel = channels.get(config.channel)
    if channel is None:
        configured = ", ".join(channels)
        raise dg.Failure(f"channel {config.channel!r} is not in the channels config (configured: {configured})")
    context.instance.add_run_tags(
        context.run_id, {"channel": channel.name, "seller": channel.seller_id, "region": channel.region}
    )
    client = spapi.client_for(channel.seller_id, region=channel.region)
    try:
        participations = client.get_marketplace_participations()
    except Unauthorized as exc:
        raise dg.Failure(
            f"channel {channel.name}: seller {channel.seller_id} did not authorize this application in region "
            f"{channel.region} ({exc.code}); the seller must authorize it in Seller Central, then run enable_channel"
        ) from exc
    except SpApiError as exc:
        raise dg.Failure(f"channel {channel.name}: getMarketplaceParticipations failed: {exc}") from exc
    marketplaces = {
        p.get("marketplace", {}).get("id"): p.get("participation", {}).get("isParticipating") for p in participations
    }
    if not marketplaces.get(channel.marketplace_id):
        selling = ", ".join(m for m, on in marketplaces.items() if on) or "none"
        raise dg.Failure(
            f"channel {channel.name}: seller {channel.seller_id} does not sell in marketplace "
            f"{channel.marketplace_id} (participating: {selling})"
        )
    metadata: dict[str, dg.RawMetadataValue] = {
        "channel": channel.name,
        "seller_id": channel.seller_id,
        "marketplace_id": channel.marketplace_id,
        "region": channel.region,
    }
    settings = SqsSettings.from_env()
    if channel.enable_notifications and settings.configured:
        wired = wire_notifications(channel, client, settings)
        metadata.update(queue_arn=wired["queue_arn"], created=", ".join(wired["created"]) or "nothing")
    else:
        metadata["notifications"] = "off" if not channel.enable_notifications else "no SQS endpoint configured"
    context.log.info(f"channel {channel.name} enabled: {metadata}")
    context.add_output_metadata(metadata)


@dg.job(
    name=ENABLE_JOB,
    description="Check a newly configured channel's connection, wire its notifications and let the schedules run it.",
)
def enable_channel() -> None:
    enable_channel_op()


def enabled_channels(instance: dg.DagsterInstance) -> set[str]:
    """Channels that an `enable_channel` run has enabled (a successful run tagged with the channel)."""
    records = instance.get_run_records(dg.RunsFilter(job_name=ENABLE_JOB, statuses=[dg.DagsterRunStatus.SUCCESS]))
    return {name for record in records if (name := record.dagster_run.tags.get("channel"))}
