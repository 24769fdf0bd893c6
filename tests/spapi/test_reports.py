"""Feed processing report parsing and document decoding (feeds/reports.py)."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal

import pytest

from feeds.reports import (
    ReportRow,
    charset_from_content_type,
    decode_document,
    flat_file_report_summary,
    gunzip_if_needed,
    listings_report_summary,
    parse_flat_file_report,
    parse_listings_report,
    parse_report,
)
from resources.spapi import dumps_json

JSON_REPORT = {
    "header": {"sellerId": "A3DEMOSELLER01", "version": "2.0", "feedId": "50001"},
    "issues": [
        {"messageId": 4, "sku": "My-SKU-B", "code": "90220", "severity": "ERROR", "message": "'x' is required."},
        {"messageId": 5, "sku": "SKU-Ü", "code": "99022", "severity": "WARNING", "message": "Gänsefüße"},
        {"code": "4002005", "severity": "ERROR", "message": "header malformed"},
    ],
    "summary": {"errors": 2, "warnings": 1, "messagesProcessed": 5, "messagesAccepted": 3, "messagesInvalid": 2},
}

FLAT_REPORT = (
    "Feed Processing Summary:\n"
    "\tNumber of records processed\t\t3\n"
    "\tNumber of records successful\t\t0\n"
    "\n"
    "original-record-number\tsku\terror-code\terror-type\terror-message\n"
    "1\tS26361-F3915-L256\t6039\tError\tMerchant is not authorized to sell products under this restricted group.\n"
    "2\t00KF003\t5461\tError\tYou may not create new ASINs for the brand Lenovo.\n"
    "3\tX-1\t90061\tWarning\tUnknown heading\twith a tab\n"
    "0\t\t90011\tFatal\tColumn headings missing\n"
)


def test_json_report_rows_and_summary() -> None:
    rows = parse_listings_report(json.dumps(JSON_REPORT).encode())
    assert rows == [
        ReportRow(4, "My-SKU-B", "90220", "ERROR", "'x' is required."),
        ReportRow(5, "SKU-Ü", "99022", "WARNING", "Gänsefüße"),
        ReportRow(None, None, "4002005", "ERROR", "header malformed"),
    ]
    assert listings_report_summary(JSON_REPORT)["messagesInvalid"] == 2
    with pytest.raises(ValueError, match="issues"):
        parse_listings_report({"header": {}})


def test_flat_file_report_rows_map_to_the_same_shape() -> None:
    rows = parse_flat_file_report(FLAT_REPORT)
    assert rows[0] == ReportRow(
        1,
        "S26361-F3915-L256",
        "6039",
        "ERROR",
        "Merchant is not authorized to sell products under this restricted group.",
    )
    assert rows[2] == ReportRow(3, "X-1", "90061", "WARNING", "Unknown heading\twith a tab")
    assert rows[3] == ReportRow(None, None, "90011", "ERROR", "Column headings missing")
    assert flat_file_report_summary(FLAT_REPORT) == {"records_processed": 3, "records_successful": 0}
    assert parse_report(FLAT_REPORT) == rows
    assert parse_report(json.dumps(JSON_REPORT)) == parse_listings_report(JSON_REPORT)
    assert parse_flat_file_report("Feed Processing Summary:\n\tNumber of records processed\t\t2\n") == []
    with pytest.raises(ValueError):
        parse_flat_file_report("sku\tprice\nA\t1\n")


def test_gzip_detected_by_magic_bytes_not_by_label() -> None:
    raw = b'{"issues": []}'
    assert gunzip_if_needed(gzip.compress(raw)) == raw
    assert gunzip_if_needed(gzip.compress(raw), "GZIP") == raw
    assert gunzip_if_needed(raw, "GZIP") == raw  # already decoded by Content-Encoding
    with pytest.raises(ValueError):
        gunzip_if_needed(raw, "ZSTD")


@pytest.mark.parametrize(
    ("content_type", "codec"),
    [
        ("text/plain; charset=UTF-8", "utf-8"),
        ("text/tab-separated-values;charset=windows-1252", "cp1252"),
        ('text/plain; charset="Windows-31J"', "cp932"),
        ("text/plain; charset=Shift_JIS", "cp932"),
        ("text/plain", None),
        (None, None),
        ("text/plain; charset=bogus", None),
    ],
)
def test_charset_from_content_type(content_type: str | None, codec: str | None) -> None:
    assert charset_from_content_type(content_type) == codec


def test_decode_by_declared_charset_and_marketplace_fallbacks() -> None:
    jp = "出品者SKU\tエラー"
    assert decode_document(gzip.compress(jp.encode("cp932")), "text/plain; charset=Windows-31J") == jp
    assert decode_document(jp.encode("cp932"), None, marketplace_id="A1VC38T7YXB528") == jp
    # ① is a cp932 (NEC) extension outside JIS X 0208: Shift_JIS-labelled reports need cp932 to decode it.
    assert decode_document("①".encode("cp932"), "text/plain; charset=Shift_JIS") == "①"
    assert decode_document("Größe".encode("cp1252"), None, marketplace_id="A1PA6795UKMFR9") == "Größe"
    assert decode_document("Größe".encode()) == "Größe"
    assert decode_document(b"\xef\xbb\xbf{}") == "{}"
    # Garbage never raises for JP; it becomes replacement characters.
    assert "\ufffd" in decode_document(b"\x82\xff", "text/plain; charset=Shift_JIS")


def test_json_bodies_keep_decimals_exact_and_refuse_floats() -> None:
    body = {"price": Decimal("19.99"), "min": Decimal("1E+1"), "qty": 3, "name": "Größe ✓", "ok": True, "n": None}
    assert dumps_json(body) == '{"price":19.99,"min":10,"qty":3,"name":"Größe ✓","ok":true,"n":null}'.encode()
    assert json.loads(dumps_json(body), parse_float=Decimal)["price"] == Decimal("19.99")
    with pytest.raises(TypeError, match="float"):
        dumps_json({"price": 19.99})
    with pytest.raises(ValueError):
        dumps_json(Decimal("NaN"))
