"""The S3 archive of a channel's feed documents and Amazon's processing reports. Dagster-free.

What is archived, from the channel's feeds folder (`feeds.store`: `<data>/feeds/<channel>/`, or the S3 prefix
`<lake>/feeds/<channel>/` in the deployed mode):
- the feed documents the run generated: the two flat files and every `JSON_LISTINGS_FEED/JSON_LISTINGS_FEED-NNNN.json`;
- the processing reports of finished feeds, kept by the push as `reports/<feed_id>.json` (`.txt` for a flat-file
  report), each uploaded once.

Key layout (deterministic: a retried step of the same run overwrites its objects instead of adding new ones):

    <prefix>/<seller_id>/<channel>/<YYYY-MM-DD>/<run_id>/<file name>    documents; the date is the run's (UTC)
    <prefix>/<seller_id>/<channel>/reports/<feed_id>.<json|txt>         reports, one object per feed

One S3 lifecycle rule (ID `<prefix>-expiration`) expires everything under `<prefix>/` after the retention days; it is
created or updated only when it differs, and other rules of the bucket are kept.

Configuration (`ArchiveSettings.from_env`): `SALES_CHANNEL_ARCHIVE_BUCKET` (unset: the archive is off),
`SALES_CHANNEL_ARCHIVE_PREFIX` (default `sales-channel`), `SALES_CHANNEL_ARCHIVE_RETENTION_DAYS` (default 90; `0`:
no expiration rule, and ours is removed).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from feeds.flat_files import INVENTORY_LOADER, PRICE_QUANTITY
from feeds.listings_json import FEED_TYPE
from feeds.store import FeedStore, StoredFile

__all__ = [
    "ArchiveSettings",
    "ArchiveSummary",
    "BUCKET_ENV",
    "PREFIX_ENV",
    "RETENTION_ENV",
    "REPORTS_DIR",
    "archive_channel",
    "document_key",
    "ensure_retention",
    "feed_documents",
    "report_key",
    "reports",
    "write_report",
]

BUCKET_ENV = "SALES_CHANNEL_ARCHIVE_BUCKET"
PREFIX_ENV = "SALES_CHANNEL_ARCHIVE_PREFIX"
RETENTION_ENV = "SALES_CHANNEL_ARCHIVE_RETENTION_DAYS"
DEFAULT_PREFIX = "sales-channel"
DEFAULT_RETENTION_DAYS = 90
REPORTS_DIR = "reports"

_CONTENT_TYPES = {".json": "application/json", ".txt": "text/tab-separated-values; charset=UTF-8"}
_FEED_ID = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class ArchiveSettings:
    """Where the archive goes. `bucket` None: the archive is off."""

    bucket: str | None
    prefix: str = DEFAULT_PREFIX
    retention_days: int = DEFAULT_RETENTION_DAYS

    def __post_init__(self) -> None:
        prefix = self.prefix.strip("/")
        # The lifecycle rule filters on the prefix: an empty one would expire every object in the bucket.
        if not prefix:
            raise ValueError(f"{PREFIX_ENV} must not be empty: the expiration rule would cover the whole bucket")
        object.__setattr__(self, "prefix", prefix)
        if self.retention_days < 0:
            raise ValueError(f"{RETENTION_ENV} must be a whole number of days >= 0, not {self.retention_days}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ArchiveSettings:
        raw = (environ.get(RETENTION_ENV) or "").strip()
        try:
            days = int(raw) if raw else DEFAULT_RETENTION_DAYS
        except ValueError:
            raise ValueError(f"{RETENTION_ENV} must be a whole number of days, not {raw!r}") from None
        return cls(
            bucket=(environ.get(BUCKET_ENV) or "").strip() or None,
            prefix=environ.get(PREFIX_ENV) or DEFAULT_PREFIX,
            retention_days=days,
        )

    @property
    def enabled(self) -> bool:
        return self.bucket is not None

    @property
    def rule_id(self) -> str:
        return f"{self.prefix}-expiration"


@dataclass
class ArchiveSummary:
    """What one archive pass did. `objects`/`bytes` count what was uploaded."""

    key_prefix: str
    documents: int = 0
    reports_uploaded: int = 0
    reports_already_archived: int = 0
    reports_past_retention: int = 0
    objects: int = 0
    bytes: int = 0
    lifecycle: str = "unchanged"


# -- the channel's feeds folder --------------------------------------------------------------------------------------
def write_report(feeds: FeedStore, feed_id: str, text: str) -> str:
    """Keep a finished feed's processing report as `reports/<feed_id>.json` in the channel's feeds folder (`.txt`
    when it is not JSON: a flat-file report), written atomically; returns its location."""
    if not _FEED_ID.fullmatch(feed_id):
        raise ValueError(f"unexpected feed id {feed_id!r}")
    suffix = ".json" if text.lstrip("\ufeff \t\r\n").startswith("{") else ".txt"
    return feeds.write(f"{REPORTS_DIR}/{feed_id}{suffix}", text.encode("utf-8"))


def feed_documents(feeds: FeedStore) -> list[StoredFile]:
    """The feed documents the feed assets wrote: the two flat files, then the JSON_LISTINGS_FEED documents."""
    top = {stored.name: stored for stored in feeds.files()}
    flat = [top[f"{feed_type}.txt"] for feed_type in (PRICE_QUANTITY, INVENTORY_LOADER) if f"{feed_type}.txt" in top]
    return flat + [stored for stored in feeds.files(FEED_TYPE) if stored.name.endswith(".json")]


def reports(feeds: FeedStore) -> list[StoredFile]:
    """The processing reports kept by the push (temporary files of an unfinished write excluded)."""
    return [stored for stored in feeds.files(REPORTS_DIR) if "." in stored.name.rsplit("/", 1)[-1]]


# -- keys -------------------------------------------------------------------------------------------------------------
def run_prefix(settings: ArchiveSettings, seller_id: str, channel: str, run_date: date, run_id: str) -> str:
    return f"{settings.prefix}/{seller_id}/{channel}/{run_date.isoformat()}/{run_id}/"


def document_key(
    settings: ArchiveSettings, seller_id: str, channel: str, run_date: date, run_id: str, name: str
) -> str:
    return run_prefix(settings, seller_id, channel, run_date, run_id) + name


def report_key(settings: ArchiveSettings, seller_id: str, channel: str, name: str) -> str:
    return f"{settings.prefix}/{seller_id}/{channel}/{REPORTS_DIR}/{name}"


# -- S3 ---------------------------------------------------------------------------------------------------------------
def ensure_retention(s3: Any, settings: ArchiveSettings) -> str:
    """Make the bucket's lifecycle hold our expiration rule for `settings.retention_days` (none when 0), keeping
    every other rule. Returns `created`, `updated`, `removed` or `unchanged` (nothing written)."""
    bucket = settings.bucket
    try:
        rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", [])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchLifecycleConfiguration":
            raise
        rules = []
    ours = [rule for rule in rules if rule.get("ID") == settings.rule_id]
    others = [rule for rule in rules if rule.get("ID") != settings.rule_id]
    if settings.retention_days == 0:
        if not ours:
            return "unchanged"
        if others:
            s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": others})
        else:
            s3.delete_bucket_lifecycle(Bucket=bucket)
        return "removed"
    wanted = {
        "ID": settings.rule_id,
        "Filter": {"Prefix": f"{settings.prefix}/"},
        "Status": "Enabled",
        "Expiration": {"Days": settings.retention_days},
    }
    if len(ours) == 1 and _same_rule(ours[0], wanted):
        return "unchanged"
    # PutBucketLifecycleConfiguration replaces the whole configuration: send the other rules back with ours.
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [*others, wanted]})
    return "updated" if ours else "created"


def _same_rule(rule: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    prefix = (rule.get("Filter") or {}).get("Prefix", rule.get("Prefix"))
    return (
        rule.get("Status") == "Enabled"
        and (rule.get("Expiration") or {}).get("Days") == wanted["Expiration"]["Days"]
        and prefix == wanted["Filter"]["Prefix"]
    )


def _existing_keys(s3: Any, bucket: str, prefix: str) -> set[str]:
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.update(item["Key"] for item in page.get("Contents", []))
    return keys


def _upload(s3: Any, bucket: str, feeds: FeedStore, stored: StoredFile, key: str, summary: ArchiveSummary) -> None:
    suffix = "." + stored.name.rsplit(".", 1)[-1] if "." in stored.name else ""
    content_type = _CONTENT_TYPES.get(suffix, "application/octet-stream")
    with feeds.open(stored.name) as body:
        s3.upload_fileobj(body, bucket, key, ExtraArgs={"ContentType": content_type})
    summary.objects += 1
    summary.bytes += stored.size


def archive_channel(
    s3: Any,
    settings: ArchiveSettings,
    feeds: FeedStore,
    *,
    seller_id: str,
    channel: str,
    run_id: str,
    run_date: date,
    now: datetime | None = None,
) -> ArchiveSummary:
    """Upload the channel's feed documents under the run's prefix and every report not archived yet; apply the
    retention rule first. A report older than the retention is not uploaded (S3 would already have expired it, and
    uploading it again would keep it forever)."""
    if settings.bucket is None:
        raise ValueError(f"the archive is off ({BUCKET_ENV} is not set)")
    bucket = settings.bucket
    summary = ArchiveSummary(key_prefix=run_prefix(settings, seller_id, channel, run_date, run_id))
    summary.lifecycle = ensure_retention(s3, settings)
    for stored in feed_documents(feeds):
        _upload(s3, bucket, feeds, stored, summary.key_prefix + stored.name.rsplit("/", 1)[-1], summary)
        summary.documents += 1
    kept = reports(feeds)
    if not kept:
        return summary
    archived = _existing_keys(s3, bucket, report_key(settings, seller_id, channel, ""))
    oldest = (now or datetime.now(UTC)) - timedelta(days=settings.retention_days)
    for stored in kept:
        key = report_key(settings, seller_id, channel, stored.name.rsplit("/", 1)[-1])
        if key in archived:
            summary.reports_already_archived += 1
        elif settings.retention_days and stored.modified < oldest:
            summary.reports_past_retention += 1
        else:
            _upload(s3, bucket, feeds, stored, key, summary)
            summary.reports_uploaded += 1
    return summary
