"""The Feeds API 2021-06-30 workflow, as methods of `SpApiClient` (mixed in).

createFeedDocument → PUT the bytes to the presigned URL with exactly the declared Content-Type → createFeed → poll
getFeed with growing intervals (the throttle keeps polling within getFeed's usage plan) or finish early when a
FEED_PROCESSING_FINISHED notification arrives → getFeedDocument → download → gunzip → decode by charset → parse the
report into `feeds.reports.ReportRow`s. A feed still IN_QUEUE after `FeedPolling.in_queue_deadline` is reported as
stuck instead of being waited on forever.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from feeds.reports import (
    ReportRow,
    charset_from_content_type,
    decode_document,
    flat_file_report_summary,
    listings_report_summary,
    parse_report,
)
from resources.spapi._exceptions import FeedError
from resources.spapi._json import dumps
from resources.spapi.operations import FEED_SUBMISSION_LIMITS

if TYPE_CHECKING:
    from resources.spapi._client import SpApiResponse
    from resources.spapi._throttle import Throttle
    from resources.spapi._transport import Counters, RetryPolicy

__all__ = ["FeedPolling", "FeedResult", "FeedsMixin", "feed_finished_from_notification", "TERMINAL_STATUSES"]

log = logging.getLogger("resources.spapi.feeds")

TERMINAL_STATUSES = frozenset({"DONE", "CANCELLED", "FATAL"})
JSON_CONTENT_TYPE = "application/json"
TSV_CONTENT_TYPE = "text/tab-separated-values; charset=UTF-8"


@dataclass(frozen=True)
class FeedPolling:
    """How to wait for a feed: first getFeed after `initial` s, then ×`factor` up to `maximum` s between polls.

    `in_queue_deadline`: give up (report the feed as stuck) when it is still IN_QUEUE this long after the wait
    began. `max_wait`: give up in any non-terminal state after this long. `notification_interval`: how often the
    `finished` callback is asked between polls.
    """

    initial: float = 5.0
    factor: float = 1.5
    maximum: float = 60.0
    in_queue_deadline: float = 1800.0
    max_wait: float = 7200.0
    notification_interval: float = 1.0


@dataclass(frozen=True)
class FeedResult:
    """The outcome of one feed. `processing_status` is Amazon's last state; `stuck` is True when the wait was
    abandoned (IN_QUEUE past the deadline, or not terminal within `max_wait`). `rows` are the report's issues."""

    feed_id: str
    processing_status: str
    stuck: bool = False
    result_document_id: str | None = None
    rows: list[ReportRow] = field(default_factory=list)
    summary: dict[str, int] = field(default_factory=dict)
    report_text: str | None = None
    feed: dict[str, Any] = field(default_factory=dict)
    waited_seconds: float = 0.0
    finished_by_notification: bool = False

    @property
    def done(self) -> bool:
        """Amazon processed the feed (individual messages may still have failed; see `errors`)."""
        return self.processing_status == "DONE" and not self.stuck

    @property
    def errors(self) -> list[ReportRow]:
        return [row for row in self.rows if row.severity == "ERROR"]

    @property
    def warnings(self) -> list[ReportRow]:
        return [row for row in self.rows if row.severity == "WARNING"]

    def raise_for_status(self) -> FeedResult:
        """Raise `FeedError` unless the feed is DONE; return self otherwise."""
        if self.done:
            return self
        if self.stuck:
            what = f"stuck in {self.processing_status} after {self.waited_seconds:.0f} s; not waiting any longer"
        elif self.processing_status == "FATAL":
            what = "ended FATAL: Amazon aborted it; some, none or all records may have been applied"
        else:
            what = f"ended {self.processing_status}"
        raise FeedError(
            f"feed {self.feed_id} {what}",
            feed_id=self.feed_id,
            processing_status=self.processing_status,
            operation="getFeed",
        )


def feed_finished_from_notification(body: str | bytes | Mapping[str, Any], feed_id: str) -> dict[str, Any] | None:
    """The ``feedProcessingFinishedNotification`` of an SQS message body when it is about `feed_id`, else None.

    FEED_PROCESSING_FINISHED uses camelCase keys (``notificationType``, ``payload``); the SQS body is the
    notification itself, without an SNS envelope.
    """
    try:
        doc = json.loads(body) if isinstance(body, str | bytes) else dict(body)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    kind = doc.get("notificationType") or doc.get("NotificationType")
    if kind != "FEED_PROCESSING_FINISHED":
        return None
    payload = doc.get("payload") or doc.get("Payload") or {}
    inner = payload.get("feedProcessingFinishedNotification") if isinstance(payload, dict) else None
    if not isinstance(inner, dict) or str(inner.get("feedId")) != str(feed_id):
        return None
    return inner


def _parse_report(text: str) -> tuple[list[ReportRow], dict[str, int]]:
    is_json = text.lstrip("\ufeff \t\r\n").startswith("{")
    summary = listings_report_summary(text) if is_json else flat_file_report_summary(text)
    return parse_report(text), summary


def _encode_content(
    content: bytes | str | Mapping[str, Any] | list[Any], content_type: str | None
) -> tuple[bytes, str]:
    """The exact bytes to upload and the Content-Type to declare for them."""
    if isinstance(content, bytes):
        if not content_type:
            raise ValueError("bytes content needs an explicit content_type (with its charset for text)")
        return content, content_type
    if isinstance(content, Mapping | list):
        return dumps(content), content_type or JSON_CONTENT_TYPE
    if not isinstance(content, str):
        raise TypeError(f"feed content must be bytes, str or a JSON document, not {type(content).__name__}")
    content_type = content_type or TSV_CONTENT_TYPE
    charset = charset_from_content_type(content_type)
    if charset is None:
        if "charset=" in content_type.lower():
            raise ValueError(f"unknown charset in content type {content_type!r}")
        if content_type.lower().startswith("text/"):
            # Amazon decodes undeclared text with a marketplace default (often windows-1252): always declare.
            content_type = f"{content_type}; charset=UTF-8"
        charset = "utf-8"
    return content.encode(charset), content_type


class FeedsMixin:
    """Feeds methods of `SpApiClient` (relies on its `call`, `upload_document`, `download_document`)."""

    call: Callable[..., SpApiResponse]
    throttle: Throttle
    throttle_key: str
    counters: Counters
    _retry: RetryPolicy
    paginate: Callable[..., Iterator[Any]]
    upload_document: Callable[[str, bytes, str], None]
    download_document: Callable[[str], tuple[bytes, str | None]]

    def create_feed_document(self, content_type: str) -> dict[str, Any]:
        """createFeedDocument: ``{"feedDocumentId", "url"}``; the URL is valid for 5 minutes."""
        return self.call("createFeedDocument", body={"contentType": content_type}).data

    def submit_feed(
        self,
        feed_type: str,
        marketplace_ids: Sequence[str],
        content: bytes | str | Mapping[str, Any] | list[Any],
        *,
        content_type: str | None = None,
        feed_options: Mapping[str, str] | None = None,
    ) -> str:
        """Upload `content` and create the feed; returns the feedId.

        `content` may be a JSON document (dict; sent as ``application/json``, Decimals exact), text (encoded with
        the charset of `content_type`, default ``text/tab-separated-values; charset=UTF-8``) or bytes (then
        `content_type` is required and must describe them). A feed type with a submission limit of its own
        (`FEED_SUBMISSION_LIMITS`: JSON_LISTINGS_FEED, 5 per 5 minutes) takes one of the seller × region's
        submissions, shared by every process of the machine, before createFeed: it waits up to the window plus the
        retry policy's time budget for one to free, then raises `Throttled` (nothing created).

        createFeed is sent once: a `ServerError` or `SpApiTimeout` from it leaves open whether Amazon created the
        feed; do not call again with the same content, look for the feed with `iter_feeds` (as `sync.push` does).
        """
        payload, declared = _encode_content(content, content_type)
        document = self.create_feed_document(declared)
        self.upload_document(document["url"], payload, declared)
        body: dict[str, Any] = {
            "feedType": feed_type,
            "marketplaceIds": list(marketplace_ids),
            "inputFeedDocumentId": document["feedDocumentId"],
        }
        if feed_options:
            body["feedOptions"] = dict(feed_options)
        limit = FEED_SUBMISSION_LIMITS.get(feed_type)
        if limit is None:
            feed_id = str(self.call("createFeed", body=body).data["feedId"])
        else:
            window = self.throttle.feed_window_seconds or limit.seconds
            with self.throttle.feed_submission(
                self.throttle_key,
                feed_type,
                limit.submissions,
                limit.seconds,
                max_wait=window + self._retry.max_total_seconds,
            ) as waited:
                if waited:
                    self.counters.add("createFeed", waited_seconds=waited)
                    log.info("%s limit: waited %.1f s for a submission", feed_type, waited)
                feed_id = str(self.call("createFeed", body=body).data["feedId"])
        log.info("submitted %s feed %s (%d bytes, %s)", feed_type, feed_id, len(payload), declared)
        return feed_id

    def get_feed(self, feed_id: str) -> dict[str, Any]:
        """getFeed: the feed's ``processingStatus`` and, when finished, ``resultFeedDocumentId``."""
        return self.call("getFeed", path={"feedId": feed_id}).data

    def iter_feeds(
        self,
        feed_types: Sequence[str],
        *,
        marketplace_ids: Sequence[str] | None = None,
        processing_statuses: Sequence[str] | None = None,
        page_size: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """getFeeds, every page. The ``nextToken`` is sent alone: Amazon rejects it combined with other filters."""
        return self.paginate(
            "getFeeds",
            params={
                "feedTypes": list(feed_types),
                "marketplaceIds": list(marketplace_ids) if marketplace_ids else None,
                "processingStatuses": list(processing_statuses) if processing_statuses else None,
                "pageSize": page_size,
            },
            items=lambda page: page.get("feeds"),
            next_token=lambda page: page.get("nextToken"),
            token_param="nextToken",
            token_alone=True,
        )

    def cancel_feed(self, feed_id: str) -> None:
        """cancelFeed: only IN_QUEUE feeds can be cancelled."""
        self.call("cancelFeed", path={"feedId": feed_id})

    def wait_for_feed(
        self,
        feed_id: str,
        *,
        polling: FeedPolling | None = None,
        finished: Callable[[str], Mapping[str, Any] | None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> tuple[dict[str, Any], bool, bool]:
        """Poll until the feed is terminal, stuck or out of time. Returns (feed, stuck, by_notification).

        `finished(feed_id)` may return a FEED_PROCESSING_FINISHED payload (see `feed_finished_from_notification`);
        it is asked every `polling.notification_interval` seconds and ends the wait without another getFeed.
        """
        polling = polling or FeedPolling()
        started = time.monotonic()
        interval = polling.initial
        feed = self.get_feed(feed_id)
        while feed.get("processingStatus") not in TERMINAL_STATUSES:
            elapsed = time.monotonic() - started
            status = feed.get("processingStatus")
            if (status == "IN_QUEUE" and elapsed >= polling.in_queue_deadline) or elapsed >= polling.max_wait:
                log.warning("feed %s still %s after %.0f s; giving up the wait", feed_id, status, elapsed)
                return feed, True, False
            next_poll = time.monotonic() + interval
            while True:
                if finished is not None:
                    note = finished(feed_id)
                    if note and note.get("processingStatus") in TERMINAL_STATUSES:
                        merged = {**feed, **{k: v for k, v in note.items() if v is not None}}
                        return merged, False, True
                remaining = next_poll - time.monotonic()
                if remaining <= 0:
                    break
                sleep(min(remaining, polling.notification_interval) if finished is not None else remaining)
            interval = min(polling.maximum, interval * polling.factor)
            feed = self.get_feed(feed_id)
        return feed, False, False

    def get_feed_document(self, feed_document_id: str) -> dict[str, Any]:
        """getFeedDocument: ``{"feedDocumentId", "url", "compressionAlgorithm"?}``."""
        return self.call("getFeedDocument", path={"feedDocumentId": feed_document_id}).data

    def read_feed_report_text(self, feed_document_id: str, *, marketplace_id: str | None = None) -> str:
        """Download, gunzip and decode a result document: its raw text."""
        document = self.get_feed_document(feed_document_id)
        raw, content_type = self.download_document(document["url"])
        return decode_document(
            raw, content_type, compression=document.get("compressionAlgorithm"), marketplace_id=marketplace_id
        )

    def read_feed_report(
        self, feed_document_id: str, *, marketplace_id: str | None = None
    ) -> tuple[str, list[ReportRow], dict[str, int]]:
        """Download, gunzip, decode and parse a result document: (text, rows, summary)."""
        text = self.read_feed_report_text(feed_document_id, marketplace_id=marketplace_id)
        return (text, *_parse_report(text))

    def run_feed(
        self,
        feed_type: str,
        marketplace_ids: Sequence[str],
        content: bytes | str | Mapping[str, Any] | list[Any],
        *,
        content_type: str | None = None,
        feed_options: Mapping[str, str] | None = None,
        polling: FeedPolling | None = None,
        finished: Callable[[str], Mapping[str, Any] | None] | None = None,
    ) -> FeedResult:
        """The whole workflow: submit, wait, read the report. Never raises for FATAL/CANCELLED/stuck feeds — check
        `FeedResult.done` / `.stuck` or call `.raise_for_status()`. A FATAL feed's report is read when Amazon
        left one (it may be in another layout; an unreadable one is kept as `report_text` with no rows)."""
        feed_id = self.submit_feed(
            feed_type, marketplace_ids, content, content_type=content_type, feed_options=feed_options
        )
        return self.finish_feed(feed_id, marketplace_ids=marketplace_ids, polling=polling, finished=finished)

    def finish_feed(
        self,
        feed_id: str,
        *,
        marketplace_ids: Sequence[str] = (),
        polling: FeedPolling | None = None,
        finished: Callable[[str], Mapping[str, Any] | None] | None = None,
    ) -> FeedResult:
        """Wait for an already submitted feed and read its report (see `run_feed`)."""
        started = time.monotonic()
        feed, stuck, by_note = self.wait_for_feed(feed_id, polling=polling, finished=finished)
        waited = time.monotonic() - started
        status = str(feed.get("processingStatus") or "UNKNOWN")
        document_id = feed.get("resultFeedDocumentId")
        result = FeedResult(
            feed_id=feed_id,
            processing_status=status,
            stuck=stuck,
            result_document_id=document_id,
            feed=dict(feed),
            waited_seconds=waited,
            finished_by_notification=by_note,
        )
        if stuck or not document_id:
            return result
        marketplace_id = marketplace_ids[0] if len(marketplace_ids) == 1 else None
        text = None
        try:
            text = self.read_feed_report_text(str(document_id), marketplace_id=marketplace_id)
            rows, summary = _parse_report(text)
        except ValueError as exc:
            if status == "DONE":
                raise
            log.warning("feed %s (%s): report not parseable (%s); keeping no rows", feed_id, status, exc)
            return replace(result, report_text=text)
        return FeedResult(
            feed_id=feed_id,
            processing_status=status,
            stuck=False,
            result_document_id=str(document_id),
            rows=rows,
            summary=summary,
            report_text=text,
            feed=dict(feed),
            waited_seconds=waited,
            finished_by_notification=by_note,
        )
