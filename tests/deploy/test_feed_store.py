"""The deployed mode keeps a channel's feed documents and processing reports in S3 (`<lake>/feeds/<channel>/`), not on
local disk: the feed assets write them there, the push keeps its report there, and the archive reads them from there.
(The channel's tables are in the lake, `<lake>/lake/`, beside them.)"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import dagster as dg
import pytest

from assets.archive import feed_archive
from feeds.store import S3FeedStore, channel_feeds
from pipelines.resources import s3_resource
from resources.archive import BUCKET_ENV
from resources.state import state_from_env
from resources.warehouse import Warehouse
from tests.deploy.conftest import LAKE_BUCKET
from tests.sync.helpers import ALL_ASSETS, materialization, seller_dir, spapi_for, start_emulator

pytestmark = pytest.mark.slow

ARCHIVE = "sales-channel-archive"
DOCUMENTS = [
    "POST_FLAT_FILE_PRICEANDQUANTITYONLY_UPDATE_DATA.txt",
    "POST_FLAT_FILE_INVLOADER_DATA.txt",
    "JSON_LISTINGS_FEED/JSON_LISTINGS_FEED-0001.json",
]


def test_feed_documents_and_reports_live_in_s3(lake_env, s3_url, tmp_path, emulator_factory, monkeypatch):
    data = seller_dir(tmp_path)
    monkeypatch.setenv("SALES_CHANNEL_DATA", str(data))
    monkeypatch.setenv(BUCKET_ENV, ARCHIVE)
    s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
    s3.create_bucket(Bucket=ARCHIVE)
    spapi = spapi_for(start_emulator(emulator_factory, data), tmp_path)
    warehouse = Warehouse(data_dir=str(data))
    store = channel_feeds("us", warehouse.feeds_dir("us"))
    assert isinstance(store, S3FeedStore)
    assert store.location == state_from_env().feeds_path("us") == f"s3://{LAKE_BUCKET}/sales-channel/feeds/us"

    result = dg.materialize(
        [*ALL_ASSETS, feed_archive],
        partition_key="us",
        resources={"warehouse": warehouse, "spapi": spapi, "s3": s3_resource()},
        run_config={"ops": {"listings_submission": {"config": {"poll_initial_seconds": 0.05, "feed_threshold": 0}}}},
    )
    assert result.success
    submission = materialization(result, "listings_submission")
    assert (submission["path"], submission["feeds_submitted"]) == ("feed", 1)
    feed_id = submission["feed_ids"]

    assert not (data / "feeds").exists(), "a feed document or report was written on local disk"
    prefix = "sales-channel/feeds/us/"
    lake = {item["Key"] for item in s3.list_objects_v2(Bucket=LAKE_BUCKET, Prefix=prefix).get("Contents", [])}
    assert lake == {prefix + name for name in [*DOCUMENTS, f"reports/{feed_id}.json"]}
    with store.open(f"reports/{feed_id}.json") as body:
        report = json.loads(body.read())
    assert report["summary"]["messagesProcessed"] == 5
    listing = materialization(result, "listings_feed")
    assert listing["path"] == f"s3://{LAKE_BUCKET}/{prefix}JSON_LISTINGS_FEED/JSON_LISTINGS_FEED-0001.json"
    assert materialization(result, "price_quantity_feed")["bytes"] == store.stat(DOCUMENTS[0]).size

    # The archive read the documents and the report from the lake's S3 prefix.
    archive = materialization(result, "feed_archive")
    assert (archive["documents"], archive["reports_uploaded"]) == (3, 1)
    archived = {item["Key"]: item for item in s3.list_objects_v2(Bucket=ARCHIVE)["Contents"]}
    for name in DOCUMENTS:
        key = archive["key_prefix"] + Path(name).name
        body = s3.get_object(Bucket=ARCHIVE, Key=key)["Body"].read()
        assert body == s3.get_object(Bucket=LAKE_BUCKET, Key=prefix + name)["Body"].read()
    assert f"sales-channel/A3DEMOSELLER01/us/reports/{feed_id}.json" in archived


def test_replacing_the_listings_documents_removes_stale_ones(lake_env):
    store = channel_feeds("de", Path("/nonexistent"))
    with store.staged("JSON_LISTINGS_FEED") as staging:
        (staging / "JSON_LISTINGS_FEED-0001.json").write_bytes(b"1")
        (staging / "JSON_LISTINGS_FEED-0002.json").write_bytes(b"2")
    with store.staged("JSON_LISTINGS_FEED") as staging:
        (staging / "JSON_LISTINGS_FEED-0001.json").write_bytes(b"one")
    assert [(s.name, s.size) for s in store.files("JSON_LISTINGS_FEED")] == [
        ("JSON_LISTINGS_FEED/JSON_LISTINGS_FEED-0001.json", 3)
    ]
    with store.open("JSON_LISTINGS_FEED/JSON_LISTINGS_FEED-0001.json") as body:
        assert body.read() == b"one"
    with pytest.raises(FileNotFoundError):
        store.stat("POST_FLAT_FILE_INVLOADER_DATA.txt")
