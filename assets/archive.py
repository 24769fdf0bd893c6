"""The S3 archive of a channel's feed documents and processing reports (key layout: `resources.archive`)."""

from datetime import UTC, datetime

import dagster as dg
from dagster_aws.s3 import S3Resource

from assets.feed_files import feed_assets
from feeds.store import channel_feeds
from pipelines.partitions import channel_for, channel_partitions
from resources.archive import BUCKET_ENV, ArchiveSettings, archive_channel
from resources.warehouse import Warehouse

__all__ = ["feed_archive"]


@dg.asset(
    partitions_def=channel_partitions,
    group_name="sync",
    kinds={"s3"},
    deps=["listings_submission", *(asset.key for asset in feed_assets)],
)
def feed_archive(context: dg.AssetExecutionContext, warehouse: Warehouse, s3: S3Resource) -> dg.MaterializeResult:
    """The channel's feed documents and Amazon's processing reports, archived in S3: the documents this run wrote
    under `<prefix>/<seller_id>/<channel>/<YYYY-MM-DD>/<run_id>/`, each finished feed's report once under
    `<prefix>/<seller_id>/<channel>/reports/<feed_id>.json`, everything expired by a lifecycle rule after the
    retention days. Grain: one S3 object per document and run, one per report. Source: the feeds folder the feed
    assets and listings_submission write (`<data>/feeds/<channel>/`; `<lake>/feeds/<channel>/` in S3 when
    deployed). Off (nothing uploaded) while SALES_CHANNEL_ARCHIVE_BUCKET is unset."""
    channel = channel_for(context.partition_key)
    settings = ArchiveSettings.from_env()
    if not settings.enabled:
        return dg.MaterializeResult(
            metadata={"archive": "off", "reason": f"{BUCKET_ENV} is not set", "objects": 0, "bytes": 0}
        )
    # Keyed by the run's creation date, not the clock: a step retried after midnight overwrites the same objects.
    record = context.instance.get_run_record_by_id(context.run_id)
    created = record.create_timestamp if record is not None else datetime.now(UTC)
    summary = archive_channel(
        s3.get_client(),
        settings,
        channel_feeds(channel.name, warehouse.feeds_dir(channel.name)),
        seller_id=channel.seller_id,
        channel=channel.name,
        run_id=context.run_id,
        run_date=created.astimezone(UTC).date(),
    )
    return dg.MaterializeResult(
        metadata={
            "archive": "on",
            "bucket": settings.bucket,
            "key_prefix": summary.key_prefix,
            "objects": summary.objects,
            "bytes": summary.bytes,
            "documents": summary.documents,
            "reports_uploaded": summary.reports_uploaded,
            "reports_already_archived": summary.reports_already_archived,
            "reports_past_retention": summary.reports_past_retention,
            "retention_days": settings.retention_days,
            "lifecycle_rule": summary.lifecycle,
        }
    )
