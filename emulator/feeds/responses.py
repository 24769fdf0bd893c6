"""Feeds 2021-06-30 and the S3-style document URLs the emulator serves."""

from __future__ import annotations

import base64
import json
from typing import Any

from emulator.clock import parse_iso
from emulator.exceptions import InvalidInput, NotFound, QuotaExceeded
from emulator.feeds.models import DOCUMENT_LIFETIME, TERMINAL, Feed, check_signature, presign
from emulator.feeds.processing import advance_feeds
from emulator.wire import Request, Response
from seller.marketplaces import MARKETPLACES

JSON_FEED_WINDOW = 300.0  # 5 JSON_LISTINGS_FEED submissions per 5 minutes per region
JSON_FEED_LIMIT = 5


def _advance(req: Request) -> None:
    advance_feeds(req.state, req.options.feed_step_seconds, req.options.legacy_flat_files)


def create_feed_document(req: Request) -> Response:
    body = req.json_object()
    content_type = body.get("contentType")
    if not isinstance(content_type, str) or not content_type.strip():
        raise InvalidInput("'contentType' is required.")
    document = req.state.new_document(req.seller_id, content_type)
    url = presign(req.state.base_url, document.document_id, "PUT", req.state.clock.now())
    return Response(201, {"feedDocumentId": document.document_id, "url": url})


def get_feed_document(req: Request) -> Response:
    document = req.state.store.documents.get(req.params["feedDocumentId"])
    if document is None or document.seller_id != req.seller_id:
        raise NotFound(f"Feed document {req.params['feedDocumentId']} not found.")
    extra = "&response-content-encoding=gzip" if req.q("enableContentEncodingUrlHeader") == "true" else ""
    body: dict[str, Any] = {
        "feedDocumentId": document.document_id,
        "url": presign(req.state.base_url, document.document_id, "GET", req.state.clock.now(), extra),
    }
    if document.compressed:
        body["compressionAlgorithm"] = "GZIP"
    return Response(200, body)


def create_feed(req: Request) -> Response:
    body = req.json_object()
    feed_type = body.get("feedType")
    marketplaces = body.get("marketplaceIds")
    document_id = body.get("inputFeedDocumentId")
    options = body.get("feedOptions") or {}
    if not isinstance(feed_type, str) or not feed_type:
        raise InvalidInput("'feedType' is required.")
    if not isinstance(marketplaces, list) or not 1 <= len(marketplaces) <= 25:
        raise InvalidInput("'marketplaceIds' must list 1 to 25 marketplace ids.")
    for mp in marketplaces:
        if mp not in MARKETPLACES:
            raise InvalidInput(f"Invalid marketplace id '{mp}'.")
    if not isinstance(options, dict) or not all(isinstance(v, str) for v in options.values()):
        raise InvalidInput("'feedOptions' must map strings to strings.")
    state = req.state
    document = state.store.documents.get(document_id) if isinstance(document_id, str) else None
    now = state.clock.now()
    if document is None or document.seller_id != req.seller_id or document.kind != "input":
        raise InvalidInput(f"Invalid inputFeedDocumentId '{document_id}'.")
    if now > document.created + DOCUMENT_LIFETIME:
        raise InvalidInput(f"The feed document '{document_id}' has expired.")
    if feed_type == "JSON_LISTINGS_FEED" and req.options.rate_scale > 0:
        window = JSON_FEED_WINDOW / req.options.rate_scale
        recent = [
            f
            for f in state.store.feeds.values()
            if f.feed_type == feed_type and f.seller_id == req.seller_id and f.created > now - window
        ]
        if len(recent) >= JSON_FEED_LIMIT:
            raise QuotaExceeded("You exceeded your quota of JSON_LISTINGS_FEED submissions (5 per 5 minutes).")
    feed = Feed(
        str(50000 + state.next_id()) + str(state.rng.randrange(10**6, 10**7)),
        req.seller_id,
        feed_type,
        list(marketplaces),
        document.document_id,
        now,
        dict(options),
    )
    faults = state.faults
    feed.stuck = faults.take_feed("feed_stuck", feed_type)
    feed.force_fatal = faults.take_feed("feed_fatal", feed_type)
    feed.silent = faults.take_feed("silent_drop", feed_type)
    state.store.feeds[feed.feed_id] = feed
    state.touch()
    _advance(req)
    return Response(202, {"feedId": feed.feed_id})


def get_feed(req: Request) -> Response:
    _advance(req)
    feed = req.state.store.feeds.get(req.params["feedId"])
    if feed is None or feed.seller_id != req.seller_id:
        raise NotFound(f"Feed {req.params['feedId']} not found.")
    return Response(200, feed.render())


def cancel_feed(req: Request) -> Response:
    _advance(req)
    feed = req.state.store.feeds.get(req.params["feedId"])
    if feed is None or feed.seller_id != req.seller_id:
        raise NotFound(f"Feed {req.params['feedId']} not found.")
    if feed.status != "IN_QUEUE":
        raise InvalidInput(f"Feed {feed.feed_id} is {feed.status}; only IN_QUEUE feeds can be cancelled.")
    feed.status = "CANCELLED"
    feed.ended = req.state.clock.now()
    req.state.touch()
    req.state.emit(
        "FEED_PROCESSING_FINISHED",
        feed.seller_id,
        None,
        {
            "feedProcessingFinishedNotification": {
                "sellerId": feed.seller_id,
                "accountId": feed.seller_id,
                "feedId": feed.feed_id,
                "feedType": feed.feed_type,
                "processingStatus": "CANCELLED",
            }
        },
    )
    return Response(200, None)


def get_feeds(req: Request) -> Response:
    _advance(req)
    token = req.q("nextToken")
    if token is not None:
        if any(k != "nextToken" for k in req.query):
            raise InvalidInput("NextToken cannot be specified with other input parameters")
        try:
            spec = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
        except ValueError:
            raise InvalidInput("Invalid nextToken.") from None
    else:
        feed_types = req.q_list("feedTypes")
        if not 1 <= len(feed_types) <= 10:
            raise InvalidInput("Either 'feedTypes' (1 to 10) or 'nextToken' is required.")
        now = req.state.clock.now()
        try:
            since = parse_iso(req.q("createdSince")) if req.q("createdSince") else now - 90 * 86400
            until = parse_iso(req.q("createdUntil")) if req.q("createdUntil") else now
        except ValueError:
            raise InvalidInput("createdSince/createdUntil must be ISO 8601 date-times.") from None
        statuses = req.q_list("processingStatuses")
        bad = [s for s in statuses if s not in TERMINAL | {"IN_QUEUE", "IN_PROGRESS"}]
        if bad:
            raise InvalidInput(f"Invalid processingStatuses: {', '.join(bad)}.")
        spec = {
            "feedTypes": feed_types,
            "marketplaceIds": req.q_list("marketplaceIds"),
            "statuses": statuses,
            "since": since,
            "until": until,
            "pageSize": req.q_int("pageSize", 10, 1, 100),
            "offset": 0,
        }
    feeds = [
        f
        for f in sorted(req.state.store.feeds.values(), key=lambda f: (-f.created, f.feed_id))
        if f.seller_id == req.seller_id
        and f.feed_type in spec["feedTypes"]
        and (not spec["marketplaceIds"] or set(f.marketplace_ids) & set(spec["marketplaceIds"]))
        and (not spec["statuses"] or f.status in spec["statuses"])
        and spec["since"] <= f.created <= spec["until"]
    ]
    start, size = spec["offset"], spec["pageSize"]
    body: dict[str, Any] = {"feeds": [f.render() for f in feeds[start : start + size]]}
    if start + size < len(feeds):
        body["nextToken"] = base64.urlsafe_b64encode(json.dumps({**spec, "offset": start + size}).encode()).decode()
    return Response(200, body)


# --- the S3 side (not SP-API: no token, no throttling) ----------------------------------------------------------------
def s3_error(status: int, code: str, message: str) -> Response:
    xml = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
    return Response(status, xml.encode(), content_type="application/xml")


def s3_document(
    state: Any, method: str, document_id: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
) -> Response:
    """PUT (upload an input document) or GET (download a document) on a presigned URL."""
    with state.lock:
        document = state.store.documents.get(document_id)
        if document is None:
            return s3_error(404, "NoSuchKey", "The specified key does not exist.")
        problem = check_signature(document_id, method, query, state.clock.now())
        if problem == "AccessDenied":
            return s3_error(403, "AccessDenied", "Request has expired")
        if problem:
            return s3_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        if method == "PUT":
            if document.kind != "input":
                return s3_error(403, "AccessDenied", "Access Denied")
            if headers.get("content-type", "") != document.content_type:
                return s3_error(
                    403,
                    "SignatureDoesNotMatch",
                    "The Content-Type header does not match the contentType given to createFeedDocument.",
                )
            document.content = body
            state.touch()
            return Response(
                200, b"", headers={"ETag": f'"{abs(hash(body)) & 0xFFFFFFFF:08x}"'}, content_type="application/xml"
            )
        if document.content is None:
            return s3_error(404, "NoSuchKey", "The specified key does not exist.")
        headers_out = {}
        if document.compressed and (query.get("response-content-encoding") or [""])[0] == "gzip":
            headers_out["Content-Encoding"] = "gzip"
        return Response(200, document.content, headers=headers_out, content_type=document.content_type)


HANDLERS = {
    "createFeedDocument": create_feed_document,
    "getFeedDocument": get_feed_document,
    "createFeed": create_feed,
    "getFeed": get_feed,
    "cancelFeed": cancel_feed,
    "getFeeds": get_feeds,
}
