"""The S3 feed archive: the keys a push by feed leaves in a moto bucket through real Dagster runs, reports uploaded
once, the retention rule, the archive switched off; and the Dagster-free pieces (settings, lifecycle, key layout)."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from botocore.exceptions import ClientError

from assets.archive import feed_archive
from feeds.store import LocalFeedStore
from pipelines.resources import s3_resource
from resources.archive import (
    BUCKET_ENV,
    PREFIX_ENV,
    RETENTION_ENV,
    ArchiveSettings,
    archive_channel,
    ensure_retention,
    write_report,
)
from resources.warehouse import Warehouse
from tests.aws.conftest import BUCKET
from tests.sync.helpers import ALL_ASSETS, materialization, spapi_for, start_emulator

BASE = "sales-channel/A3DEMOSELLER01/us"
DOCUMENTS = [
    "POST_FLAT_FILE_PRICEANDQUANTITYONLY_UPDATE_DATA.txt",
    "POST_FLAT_FILE_INVLOADER_DATA.txt",
    "JSON_LISTINGS_FEED-0001.json",
]


def run(data: Path, spapi: Any, push: dict[str, Any] | None = None) -> dg.ExecuteInProcessResult:
    config = {"poll_initial_seconds": 0.05, **(push or {})}
    return dg.materialize(
        [*ALL_ASSETS, feed_archive],
        partition_key="us",
        resources={"warehouse": Warehouse(data_dir=str(data)), "spapi": spapi, "s3": s3_resource()},
        run_config={"ops": {"listings_submission": {"config": config}}},
    )


def keys(s3: Any) -> set[str]:
    return {item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def rules(s3: Any) -> list[dict[str, Any]]:
    try:
        return s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchLifecycleConfiguration"
        return []


def test_a_push_by_feed_archives_documents_and_report_once(seller, tmp_path, emulator_factory, s3, bucket, monkeypatch):
    monkeypatch.setenv(BUCKET_ENV, bucket)
    monkeypatch.setenv(RETENTION_ENV, "30")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})  # to count uploads
    spapi = spapi_for(start_emulator(emulator_factory, seller), tmp_path)
    days = {datetime.now(UTC).date()}
    first = run(seller, spapi, push={"feed_threshold": 0})
    days.add(datetime.now(UTC).date())
    assert first.success
    submission = materialization(first, "listings_submission")
    assert (submission["path"], submission["feeds_submitted"]) == ("feed", 1)
    feed_id = submission["feed_ids"]
    local_report = seller / "feeds" / "us" / "reports" / f"{feed_id}.json"
    assert json.loads(local_report.read_text())["summary"]["messagesProcessed"] == 5

    meta = materialization(first, "feed_archive")
    prefix = meta["key_prefix"]
    assert prefix in {f"{BASE}/{day.isoformat()}/{first.run_id}/" for day in days}
    report_key = f"{BASE}/reports/{feed_id}.json"
    assert keys(s3) == {prefix + name for name in DOCUMENTS} | {report_key}
    assert (meta["archive"], meta["bucket"], meta["objects"], meta["reports_uploaded"]) == ("on", bucket, 4, 1)
    assert meta["bytes"] == sum((seller / "feeds" / "us" / n).stat().st_size for n in DOCUMENTS[:2]) + sum(
        p.stat().st_size for p in [seller / "feeds/us/JSON_LISTINGS_FEED/JSON_LISTINGS_FEED-0001.json", local_report]
    )
    assert s3.get_object(Bucket=bucket, Key=report_key)["Body"].read() == local_report.read_bytes()
    document = s3.get_object(Bucket=bucket, Key=prefix + "JSON_LISTINGS_FEED-0001.json")
    assert document["ContentType"] == "application/json"
    assert json.loads(document["Body"].read())["header"]["sellerId"] == "A3DEMOSELLER01"
    assert rules(s3) == [
        {
            "ID": "sales-channel-expiration",
            "Filter": {"Prefix": "sales-channel/"},
            "Status": "Enabled",
            "Expiration": {"Days": 30},
        }
    ]

    second = run(seller, spapi)  # nothing left to send by feed: the report stays the only one
    assert second.success
    again = materialization(second, "feed_archive")
    assert (again["reports_uploaded"], again["reports_already_archived"], again["objects"]) == (0, 1, 3)
    assert again["lifecycle_rule"] == "unchanged"
    assert again["key_prefix"].endswith(f"/{second.run_id}/")
    versions = s3.list_object_versions(Bucket=bucket, Prefix=report_key)["Versions"]
    assert len(versions) == 1, "the report was uploaded again"
    assert keys(s3) == {p + n for p in (prefix, again["key_prefix"]) for n in DOCUMENTS} | {report_key}


def test_without_a_bucket_nothing_is_uploaded(seller, s3, bucket):
    feeds = seller / "feeds" / "us"
    write_report(LocalFeedStore(feeds), "50001", '{"header": {}, "issues": []}')
    (feeds / "POST_FLAT_FILE_INVLOADER_DATA.txt").write_text("sku\tprice\n")
    result = dg.materialize(
        [feed_archive],
        partition_key="us",
        resources={"warehouse": Warehouse(data_dir=str(seller)), "s3": s3_resource()},
    )
    assert result.success
    meta = materialization(result, "feed_archive")
    assert meta == {"archive": "off", "reason": f"{BUCKET_ENV} is not set", "objects": 0, "bytes": 0}
    assert keys(s3) == set()
    assert rules(s3) == []


# -- Dagster-free ------------------------------------------------------------------------------------------------------
def test_settings_from_the_environment():
    assert ArchiveSettings.from_env({}) == ArchiveSettings(bucket=None, prefix="sales-channel", retention_days=90)
    settings = ArchiveSettings.from_env({BUCKET_ENV: "b", PREFIX_ENV: "/archive/x/", RETENTION_ENV: "7"})
    assert (settings.enabled, settings.prefix, settings.retention_days) == (True, "archive/x", 7)
    with pytest.raises(ValueError, match=PREFIX_ENV):
        ArchiveSettings.from_env({BUCKET_ENV: "b", PREFIX_ENV: "/"})
    with pytest.raises(ValueError, match=RETENTION_ENV):
        ArchiveSettings.from_env({BUCKET_ENV: "b", RETENTION_ENV: "ninety"})
    with pytest.raises(ValueError, match=RETENTION_ENV):
        ArchiveSettings.from_env({BUCKET_ENV: "b", RETENTION_ENV: "-1"})


def test_the_retention_rule_is_idempotent_and_keeps_other_rules(s3, bucket):
    other = {"ID": "logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled", "Expiration": {"Days": 5}}
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [other]})
    settings = ArchiveSettings(bucket=bucket, retention_days=90)
    assert ensure_retention(s3, settings) == "created"
    assert ensure_retention(s3, settings) == "unchanged"
    assert ensure_retention(s3, ArchiveSettings(bucket=bucket, retention_days=45)) == "updated"
    assert {r["ID"]: r["Expiration"]["Days"] for r in rules(s3)} == {"logs": 5, "sales-channel-expiration": 45}
    assert ensure_retention(s3, ArchiveSettings(bucket=bucket, retention_days=0)) == "removed"
    assert [r["ID"] for r in rules(s3)] == ["logs"]
    assert ensure_retention(s3, ArchiveSettings(bucket=bucket, retention_days=0)) == "unchanged"
    s3.delete_bucket_lifecycle(Bucket=bucket)
    assert ensure_retention(s3, settings) == "created"
    assert ensure_retention(s3, ArchiveSettings(bucket=bucket, retention_days=0)) == "removed"
    assert rules(s3) == []


def test_reports_past_the_retention_are_not_uploaded_again(s3, bucket, tmp_path):
    feeds = LocalFeedStore(tmp_path / "feeds" / "de")
    old = write_report(feeds, "40001", '{"header": {}}')
    fresh = write_report(feeds, "40002", "Feed Processing Summary:\n\tNumber of records processed\t\t1\n")
    assert Path(fresh).name == "40002.txt"  # a flat-file report keeps its text layout
    month_ago = time.time() - 31 * 86400
    os.utime(old, (month_ago, month_ago))
    settings = ArchiveSettings(bucket=bucket, prefix="arch", retention_days=30)
    summary = archive_channel(
        s3, settings, feeds, seller_id="A1SELLER", channel="de", run_id="r1", run_date=date(2026, 11, 30)
    )
    assert (summary.documents, summary.reports_uploaded, summary.reports_past_retention) == (0, 1, 1)
    assert summary.key_prefix == "arch/A1SELLER/de/2026-11-30/r1/"
    assert keys(s3) == {"arch/A1SELLER/de/reports/40002.txt"}
    with pytest.raises(ValueError, match="feed id"):
        write_report(feeds, "../escape", "{}")
