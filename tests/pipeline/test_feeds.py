"""Feed documents byte for byte against golden files; JSON documents valid against Amazon's schema; the split."""

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import jsonschema
import pytest

from feeds.flat_files import PRICE_QUANTITY, write_flat_file
from feeds.listings_json import HEAD_BYTES, document_head, listings_feed_documents, write_listings_feed
from pricing.money import install_money_macros
from tests.models import load_schema
from tests.pipeline.engine import channel_engine, documents

GOLDEN = Path(__file__).parent.parent / "golden"
NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("channel", ["us", "uk"])
def test_feeds_match_golden_files_byte_for_byte(small_seller, channels, channel):
    produced = documents(channel_engine(small_seller, channels, channel, NOW), channels[channel])
    golden = {p.name.removeprefix(f"{channel}-"): p.read_bytes() for p in GOLDEN.glob(f"{channel}-*")}
    assert sorted(produced) == sorted(golden)
    for name, data in produced.items():
        assert data == golden[name], name


@pytest.mark.parametrize("channel", ["us", "uk"])
def test_listings_feed_files_written_by_duckdb_match_golden_files(small_seller, channels, channel, tmp_path):
    ch = channels[channel]
    con = channel_engine(small_seller, channels, channel, NOW)
    out = tmp_path / "out"
    out.mkdir()
    counts = write_listings_feed(
        con,
        "updates",
        out,
        seller_id=ch.seller_id,
        marketplace_id=ch.marketplace_id,
        currency=ch.currency,
        decimals=ch.decimals,
    )
    golden = {p.name.removeprefix(f"{channel}-"): p.read_bytes() for p in GOLDEN.glob(f"{channel}-JSON_LISTINGS_FEED*")}
    assert sorted(counts) == sorted(golden) == sorted(p.name for p in out.iterdir())
    for name in golden:
        assert (out / name).read_bytes() == golden[name], name
        assert counts[name] == len(json.loads(golden[name])["messages"])


def test_flat_files_are_utf8_tab_delimited_with_lf(small_seller, channels):
    data = documents(channel_engine(small_seller, channels, "us", NOW), channels["us"])[f"{PRICE_QUANTITY}.txt"]
    text = data.decode("utf-8")
    assert "SKU ü-7\t19.99" in text
    assert "\r" not in text and text.endswith("\n")
    assert {line.count("\t") for line in text.splitlines()} == {6}


def test_json_feed_is_valid_against_amazons_schema(small_seller, channels):
    schema = load_schema("schemas/feeds/listings-feed-schema-v2.json")
    for channel in ("us", "uk"):
        for name, data in documents(channel_engine(small_seller, channels, channel, NOW), channels[channel]).items():
            if name.endswith(".json"):
                jsonschema.validate(json.loads(data), schema)


def updates(n: int) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    install_money_macros(con)
    con.execute(
        "CREATE TABLE updates AS SELECT printf('SKU-%06d', i) AS sku, 'B000000001' AS asin, "
        "CASE WHEN i % 2 = 0 THEN 'FBA' ELSE 'FBM' END AS fulfillment, 1999 + i AS price_minor, 1000 AS min_minor, "
        "50000 AS max_minor, CASE WHEN i % 2 = 1 THEN i % 7 END AS quantity, 2 AS handling_time_days "
        "FROM range(1, $n + 1) t(i)",
        {"n": n},
    )
    return con


def test_listings_feed_splits_at_25000_messages():
    schema = load_schema("schemas/feeds/listings-feed-schema-v2.json")
    docs = list(
        listings_feed_documents(
            updates(25_001),
            "updates",
            seller_id="A3DEMOSELLER01",
            marketplace_id="ATVPDKIKX0DER",
            currency="USD",
            decimals=2,
        )
    )
    assert [count for _, count in docs] == [25_000, 1]
    first, second = (json.loads(data) for data, _ in docs)
    for doc in (first, second):
        jsonschema.validate(doc, schema)
    assert first["messages"][0]["messageId"] == 1
    assert second["messages"][0] == {**second["messages"][0], "messageId": 25_001, "sku": "SKU-025001"}


def test_written_listings_feed_splits_like_the_documents(tmp_path):
    con = updates(50_001)
    params = {"seller_id": "A3DEMOSELLER01", "marketplace_id": "ATVPDKIKX0DER", "currency": "USD", "decimals": 2}
    documents = list(listings_feed_documents(con, "updates", **params, max_messages=20_000))
    counts = write_listings_feed(con, "updates", tmp_path, **params, max_messages=20_000)
    assert list(counts.items()) == [
        ("JSON_LISTINGS_FEED-0001.json", 20_000),
        ("JSON_LISTINGS_FEED-0002.json", 20_000),
        ("JSON_LISTINGS_FEED-0003.json", 10_001),
    ]
    assert [(tmp_path / name).read_bytes() for name in counts] == [data for data, _ in documents]
    assert [count for _, count in documents] == list(counts.values())
    assert document_head((tmp_path / "JSON_LISTINGS_FEED-0001.json").read_bytes()[:HEAD_BYTES]) == document_head(
        documents[0][0]
    )
    assert write_listings_feed(updates(0), "updates", tmp_path / "none", **params) == {}


@pytest.mark.parametrize(("skus", "shown"), [(25_000, 3), (2, 2)])
def test_document_head_is_the_header_and_first_messages(skus, shown):
    ((data, _),) = listings_feed_documents(
        updates(skus), "updates", seller_id="A3DEMOSELLER01", marketplace_id="ATVPDKIKX0DER", currency="USD", decimals=2
    )
    head = document_head(data).split("\n")
    assert len(head) == 1 + shown + 1
    if shown == skus:
        assert "".join(head) == data.decode()
    else:
        assert data.decode().startswith("".join(head[:-1])) and head[-1] == "…"
    assert [json.loads(line.rstrip(","))["sku"] for line in head[1:-1]] == [f"SKU-{i:06d}" for i in range(1, shown + 1)]


def test_jpy_prices_are_whole_numbers_in_every_document(tmp_path):
    con = updates(3)
    rows = write_flat_file(con, PRICE_QUANTITY, "updates", tmp_path / "f.txt", decimals=0, fba_code="AMAZON_FE")
    assert rows == 3
    assert (tmp_path / "f.txt").read_text().splitlines()[1] == "SKU-000001\t2000\t1000\t50000\t1\t2\tDEFAULT"
    ((doc, _),) = listings_feed_documents(
        con, "updates", seller_id="A3DEMOSELLER01", marketplace_id="A1VC38T7YXB528", currency="JPY", decimals=0
    )
    assert b'"value_with_tax":2000}' in doc and b'"currency":"JPY"' in doc


def test_prices_never_pass_through_floats():
    con = updates(1)
    con.execute("UPDATE updates SET price_minor = 1005")  # 10.05 is 10.0499999... as a binary float
    ((doc, _),) = listings_feed_documents(
        con, "updates", seller_id="A3DEMOSELLER01", marketplace_id="ATVPDKIKX0DER", currency="USD", decimals=2
    )
    assert b'"value_with_tax":10.05}' in doc


def test_empty_updates_write_a_header_only_flat_file_and_no_json_document(tmp_path):
    con = updates(0)
    assert write_flat_file(con, PRICE_QUANTITY, "updates", tmp_path / "f.txt", decimals=2, fba_code="AMAZON_NA") == 0
    assert (tmp_path / "f.txt").read_bytes().count(b"\n") == 1
    documents = listings_feed_documents(
        con, "updates", seller_id="A3DEMOSELLER01", marketplace_id="ATVPDKIKX0DER", currency="USD", decimals=2
    )
    assert list(documents) == []
