"""Feed processing reports: decoding the result document and parsing it into rows.

Two layouts end in the same `ReportRow`:

- the JSON_LISTINGS_FEED processing report (``listings-feed-processing-report-schema-v2``): one row per entry of
  ``issues``; ``messageId``/``sku``/``code`` are optional there (feed-level problems carry no messageId);
- the legacy flat-file processing report (tab-separated, a "Feed Processing Summary" block, then
  ``original-record-number  sku  error-code  error-type  error-message``): record number 0 means a file-level
  problem and becomes ``message_id=None``, like a feed-level JSON issue; ``error-type`` Error/Fatal → ERROR,
  Warning → WARNING.

Result documents arrive in marketplace-specific charsets (windows-1252 in US/EU, windows-31j/cp932 in JP, UTF-8 in
AU/SG) and possibly gzipped, so `decode_document` gunzips by magic bytes and decodes with the download's declared
charset, falling back by marketplace. Pure functions, no I/O.
"""

from __future__ import annotations

import codecs
import gzip
import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ReportRow",
    "parse_listings_report",
    "parse_flat_file_report",
    "parse_report",
    "listings_report_summary",
    "flat_file_report_summary",
    "is_gzip",
    "gunzip_if_needed",
    "charset_from_content_type",
    "decode_document",
]

SEVERITIES = ("ERROR", "WARNING", "INFO")
_GZIP_MAGIC = b"\x1f\x8b"
_JP_MARKETPLACE = "A1VC38T7YXB528"

# Charset labels Amazon uses that Python does not know by that name. cp932 is a superset of Shift_JIS (it adds the
# NEC/IBM extensions Japanese reports contain), so every Japanese label decodes as cp932.
_CHARSET_ALIASES = {
    "windows-31j": "cp932",
    "cswindows31j": "cp932",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
}


@dataclass(frozen=True)
class ReportRow:
    """One processing issue: `message_id` (feed message / record number; None for feed-level problems), `sku`,
    `code` ("" when Amazon gave none), `severity` (ERROR | WARNING | INFO) and `message`."""

    message_id: int | None
    sku: str | None
    code: str
    severity: str
    message: str


def _load_json(data: bytes | str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(data, dict):
        return data
    if isinstance(data, bytes):
        data = data.decode("utf-8-sig")
    doc = json.loads(data)
    if not isinstance(doc, dict):
        raise ValueError("a JSON_LISTINGS_FEED processing report is a JSON object")
    return doc


def _int_or_none(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def parse_listings_report(data: bytes | str | dict[str, Any]) -> list[ReportRow]:
    """Rows of a JSON_LISTINGS_FEED processing report (its ``issues``), in document order."""
    doc = _load_json(data)
    issues = doc.get("issues")
    if not isinstance(issues, list):
        raise ValueError("not a JSON_LISTINGS_FEED processing report: no 'issues' list")
    rows = []
    for issue in issues:
        if not isinstance(issue, dict):
            continue
        severity = str(issue.get("severity") or "ERROR").upper()
        rows.append(
            ReportRow(
                message_id=_int_or_none(issue.get("messageId")),
                sku=str(issue["sku"]) if issue.get("sku") not in (None, "") else None,
                code=str(issue.get("code") or ""),
                severity=severity if severity in SEVERITIES else "ERROR",
                message=str(issue.get("message") or ""),
            )
        )
    return rows


def listings_report_summary(data: bytes | str | dict[str, Any]) -> dict[str, int]:
    """The report's ``summary`` (errors, warnings, messagesProcessed, messagesAccepted, messagesInvalid)."""
    summary = _load_json(data).get("summary") or {}
    return {k: int(v) for k, v in summary.items() if isinstance(v, int | float) and not isinstance(v, bool)}


_FLAT_SEVERITY = {"error": "ERROR", "fatal": "ERROR", "warning": "WARNING", "info": "INFO"}
_FLAT_HEADER = "original-record-number"


def _flat_lines(text: str) -> list[str]:
    return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")


def parse_flat_file_report(text: str) -> list[ReportRow]:
    """Rows of a legacy flat-file processing report, in document order (columns are found by their headings)."""
    lines = _flat_lines(text)
    start = next((i for i, line in enumerate(lines) if line.strip().lower().startswith(_FLAT_HEADER)), None)
    if start is None:
        if any("feed processing summary" in line.lower() for line in lines):
            return []  # a summary without error table: every record succeeded
        raise ValueError("not a flat-file processing report: no 'original-record-number' header row")
    headings = [h.strip().lower() for h in lines[start].split("\t")]
    index = {name: i for i, name in enumerate(headings)}
    missing = {"error-code", "error-type", "error-message"} - set(index)
    if missing:
        raise ValueError(f"flat-file processing report lacks columns {sorted(missing)}")
    rows = []
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        cells = line.split("\t")
        message_col = index["error-message"]
        if len(cells) > len(headings) and message_col == len(headings) - 1:
            cells = [*cells[:message_col], "\t".join(cells[message_col:])]  # a message holding tabs

        def cell(name: str, cells: list[str] = cells) -> str:
            i = index.get(name)
            return cells[i].strip() if i is not None and i < len(cells) else ""

        sku = cell("sku")
        rows.append(
            ReportRow(
                message_id=_int_or_none(cell(_FLAT_HEADER)),
                sku=sku or None,
                code=cell("error-code"),
                severity=_FLAT_SEVERITY.get(cell("error-type").lower(), "ERROR"),
                message=cell("error-message"),
            )
        )
    return rows


_SUMMARY_LINE = re.compile(r"^\s*(Number of records [a-z ]+?)\s*\t+\s*(\d+)\s*$", re.IGNORECASE)


def flat_file_report_summary(text: str) -> dict[str, int]:
    """The "Feed Processing Summary" figures, e.g. ``{"records_processed": 3, "records_successful": 0}``."""
    summary = {}
    for line in _flat_lines(text):
        match = _SUMMARY_LINE.match(line)
        if match:
            key = match.group(1).lower().replace("number of ", "").replace(" ", "_")
            summary[key] = int(match.group(2))
    return summary


def parse_report(text: str) -> list[ReportRow]:
    """Rows of either layout, told apart by content (a JSON object vs tab-separated text)."""
    if text.lstrip("\ufeff \t\r\n").startswith("{"):
        return parse_listings_report(text)
    return parse_flat_file_report(text)


# -- bytes → text -------------------------------------------------------------------------------------------------
def is_gzip(data: bytes) -> bool:
    """Whether `data` starts with the gzip magic bytes."""
    return data[:2] == _GZIP_MAGIC


def gunzip_if_needed(data: bytes, compression: str | None = None) -> bytes:
    """Decompress gzip data. Detection is by magic bytes, not by `compression` alone: a document announced as
    ``GZIP`` may already have been decoded by the HTTP layer (``Content-Encoding: gzip``)."""
    if is_gzip(data):
        return gzip.decompress(data)
    if compression and compression.upper() not in ("GZIP", "NONE", ""):
        raise ValueError(f"unsupported compressionAlgorithm {compression!r}")
    return data


def _codec(label: str) -> str | None:
    label = label.strip().strip('"').lower()
    label = _CHARSET_ALIASES.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def charset_from_content_type(content_type: str | None) -> str | None:
    """The Python codec for the ``charset`` parameter of a Content-Type header (None when absent or unknown)."""
    if not content_type:
        return None
    for part in content_type.split(";")[1:]:
        name, _, value = part.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return _codec(value)
    return None


def decode_document(
    data: bytes, content_type: str | None = None, *, compression: str | None = None, marketplace_id: str | None = None
) -> str:
    """Text of a downloaded result document: gunzipped when needed, decoded with the declared charset.

    Without a usable charset: UTF-8 when the bytes are valid UTF-8, else cp932 for Japan and windows-1252
    elsewhere (Amazon's per-marketplace report charsets). Decoding never raises: bytes invalid in the declared
    charset become U+FFFD (Japanese documents are decoded as cp932, the Shift_JIS superset Amazon uses).
    """
    raw = gunzip_if_needed(data, compression)
    if raw.startswith(codecs.BOM_UTF8):
        return raw[len(codecs.BOM_UTF8) :].decode("utf-8")
    declared = charset_from_content_type(content_type)
    if declared:
        try:
            return raw.decode(declared)
        except UnicodeDecodeError:
            if declared == "cp932" or marketplace_id == _JP_MARKETPLACE:
                return raw.decode("cp932", errors="replace")
            return raw.decode(declared, errors="replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if marketplace_id == _JP_MARKETPLACE:
        return raw.decode("cp932", errors="replace")
    return raw.decode("cp1252", errors="replace")
