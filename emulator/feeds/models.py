"""Feeds 2021-06-30: feed documents (the S3 side), feeds and their lifecycle states (no HTTP)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from emulator.clock import iso

__all__ = ["FeedDocument", "Feed", "LEGACY_FLAT_FILE_TYPES", "REMOVED_TYPES", "presign", "check_signature"]

URL_LIFETIME = 300  # presigned URLs: X-Amz-Expires=300
DOCUMENT_LIFETIME = 2 * 24 * 3600  # an input feedDocumentId expires after two days
TERMINAL = {"DONE", "FATAL", "CANCELLED"}
LEGACY_FLAT_FILE_TYPES = {"POST_FLAT_FILE_PRICEANDQUANTITYONLY_UPDATE_DATA", "POST_FLAT_FILE_INVLOADER_DATA"}
# Other listings feed types Amazon removed on 2025-07-31: accepted by createFeed, always FATAL.
REMOVED_TYPES = LEGACY_FLAT_FILE_TYPES | {
    "POST_PRODUCT_DATA",
    "POST_INVENTORY_AVAILABILITY_DATA",
    "POST_PRODUCT_PRICING_DATA",
    "POST_PRODUCT_OVERRIDES_DATA",
    "POST_PRODUCT_IMAGE_DATA",
    "POST_PRODUCT_RELATIONSHIP_DATA",
    "POST_FLAT_FILE_LISTINGS_DATA",
}
_URL_SECRET = b"spapi-emulator-presign"


@dataclass
class FeedDocument:
    document_id: str
    seller_id: str
    content_type: str
    created: float
    content: bytes | None = None
    compressed: bool = False  # result documents are gzip-compressed
    kind: str = "input"  # "input" | "result"


@dataclass
class Feed:
    feed_id: str
    seller_id: str
    feed_type: str
    marketplace_ids: list[str]
    input_document_id: str
    created: float
    options: dict[str, str] = field(default_factory=dict)
    status: str = "IN_QUEUE"
    started: float | None = None
    ended: float | None = None
    result_document_id: str | None = None
    # fault injection and processing results
    stuck: bool = False
    force_fatal: bool = False
    silent: bool = False
    outcome: str | None = None  # terminal status decided when processing ran

    def render(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "feedId": self.feed_id,
            "feedType": self.feed_type,
            "marketplaceIds": self.marketplace_ids,
            "createdTime": iso(self.created),
            "processingStatus": self.status,
        }
        if self.started is not None:
            out["processingStartTime"] = iso(self.started)
        if self.ended is not None:
            out["processingEndTime"] = iso(self.ended)
        if self.result_document_id and self.status in TERMINAL:
            out["resultFeedDocumentId"] = self.result_document_id
        return out


def _signature(document_id: str, method: str, amz_date: str) -> str:
    return hmac.new(_URL_SECRET, f"{method}\n{document_id}\n{amz_date}".encode(), hashlib.sha256).hexdigest()


def presign(base_url: str, document_id: str, method: str, now: float, extra: str = "") -> str:
    """An S3-style presigned URL served by the emulator, valid URL_LIFETIME emulated seconds from `now`."""
    amz_date = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    query = (
        f"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date={amz_date}&X-Amz-Expires={URL_LIFETIME}"
        f"&X-Amz-SignedHeaders=host&X-Amz-Signature={_signature(document_id, method, amz_date)}{extra}"
    )
    return f"{base_url}/_s3/spapi-emulator-documents/{quote(document_id, safe='')}?{query}"


def check_signature(document_id: str, method: str, query: dict[str, list[str]], now: float) -> str | None:
    """None when the presigned query is valid now; else ("SignatureDoesNotMatch"|"AccessDenied", reason)."""
    amz_date = (query.get("X-Amz-Date") or [""])[0]
    signature = (query.get("X-Amz-Signature") or [""])[0]
    if not amz_date or not hmac.compare_digest(signature, _signature(document_id, method, amz_date)):
        return "SignatureDoesNotMatch"
    signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    if now > signed_at + URL_LIFETIME:
        return "AccessDenied"
    return None
