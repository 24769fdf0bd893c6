"""A recorder on an in-process `EmulatorServer`: every request that reaches it (operation, status, body), the access
tokens it issued, and faults the emulator's control API cannot inject (on the presigned document URLs)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from emulator.routes import match
from emulator.server import EmulatorServer, _Drop
from emulator.wire import Response

__all__ = ["Wiretap", "Exchange", "FeedRequest", "ListingWrite"]


@dataclass
class Exchange:
    operation: str  # SP-API operationId, "token", "uploadDocument", "downloadDocument" or "control"
    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes
    status: int | None  # None: the connection was dropped
    at: float = field(default_factory=time.time)  # when the request reached the emulator (epoch seconds, our clock)


@dataclass(frozen=True)
class FeedRequest:
    feed_type: str
    marketplace_ids: list[str]
    document_id: str  # inputFeedDocumentId
    status: int | None
    at: float = 0.0  # when the createFeed request reached the emulator


@dataclass(frozen=True)
class ListingWrite:
    operation: str  # patchListingsItem | putListingsItem
    sku: str
    marketplace_ids: list[str]  # the request's marketplaceIds query
    patches: list[dict[str, Any]]
    status: int | None
    at: float = 0.0  # when the request reached the emulator


@dataclass
class _DocumentFault:
    method: str  # PUT (upload) or GET (download)
    kind: str  # "status" | "drop" | "expire"
    count: int
    status: int = 500
    injected: int = 0  # the count asked for
    hits: int = 0  # how many transfers it failed


@dataclass
class Wiretap:
    server: EmulatorServer
    exchanges: list[Exchange] = field(default_factory=list)
    access_tokens: set[str] = field(default_factory=set)
    _faults: list[_DocumentFault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        original = self.server.dispatch

        def dispatch(method: str, raw_path: str, headers: dict[str, str], body: bytes, request_id: str) -> Response:
            split = urlsplit(raw_path)
            operation = self._operation(method, split.path)
            query = parse_qs(split.query, keep_blank_values=True)
            exchange = Exchange(operation, method, unquote(split.path), query, body, None)
            with self._lock:
                self.exchanges.append(exchange)
            fault = self._take(method) if operation in ("uploadDocument", "downloadDocument") else None
            if fault is not None and fault.kind == "drop":
                raise _Drop()
            if fault is not None and fault.kind == "status":
                exchange.status = fault.status
                return Response(fault.status, b"<Error><Code>InternalError</Code></Error>", {}, "application/xml")
            if fault is not None and fault.kind == "expire":
                exchange.status = 403
                return Response(
                    403,
                    b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                    {},
                    "application/xml",
                )
            response = original(method, raw_path, headers, body, request_id)
            exchange.status = response.status
            if operation == "token" and isinstance(response.body, dict) and response.body.get("access_token"):
                with self._lock:
                    self.access_tokens.add(str(response.body["access_token"]))
            return response

        self.server.dispatch = dispatch  # type: ignore[method-assign]

    @staticmethod
    def _operation(method: str, path: str) -> str:
        if path == "/auth/o2/token":
            return "token"
        if path.startswith("/_emulator/"):
            return "control"
        if path.startswith("/_s3/"):
            return "uploadDocument" if method == "PUT" else "downloadDocument"
        route, _, _ = match(method, path)
        return route.operation if route else "unknown"

    def _take(self, method: str) -> _DocumentFault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method == method and fault.count > 0:
                    fault.count -= 1
                    fault.hits += 1
                    return fault
        return None

    # -- faults on the presigned document URLs (the control API covers SP-API operations only) ------------------------
    def fail_documents(self, method: str, kind: str, count: int = 1, status: int = 500) -> None:
        with self._lock:
            self._faults.append(_DocumentFault(method, kind, count, status, injected=count))

    def document_faults(self) -> list[dict[str, Any]]:
        """Every fault injected on the document URLs: kind, operation (uploadDocument/downloadDocument), status, the
        count asked for and the transfers it actually failed (`hits`)."""
        with self._lock:
            return [
                {
                    "kind": f.kind,
                    "operation": "uploadDocument" if f.method == "PUT" else "downloadDocument",
                    "status": f.status if f.kind == "status" else None,
                    "count": f.injected,
                    "hits": f.hits,
                }
                for f in self._faults
            ]

    # -- read-outs -----------------------------------------------------------------------------------------------
    def api(self) -> list[Exchange]:
        """SP-API requests (and document transfers); not LWA, not the control API."""
        return [e for e in self.exchanges if e.operation not in ("token", "control")]

    def requests(self) -> int:
        return len(self.api())

    def throttled(self) -> int:
        return sum(1 for e in self.api() if e.status == 429)

    def calls(self, operation: str, since: int = 0) -> list[Exchange]:
        return [e for e in self.exchanges[since:] if e.operation == operation]

    def patches(self, since: int = 0) -> list[tuple[str, list[str], list[dict[str, Any]]]]:
        """(sku, marketplaceIds, patches) of every patchListingsItem that reached Amazon (from exchange `since` on)."""
        out = []
        for e in self.calls("patchListingsItem", since):
            sku = e.path.rstrip("/").rsplit("/", 1)[1]
            marketplaces = [m for v in e.query.get("marketplaceIds", []) for m in v.split(",")]
            out.append((sku, marketplaces, json.loads(e.body or b"{}").get("patches") or []))
        return out

    def uploads(self, since: int = 0) -> list[bytes]:
        """Bodies of every document upload that reached the emulator and was stored (2xx), from exchange `since`."""
        return [e.body for e in self.calls("uploadDocument", since) if e.status is not None and e.status < 300]

    def documents(self) -> dict[str, list[bytes]]:
        """feedDocumentId → the bodies stored under it (2xx uploads to its presigned URL, oldest first), over the whole
        tap: a createFeed may name a document uploaded before the window it is checked in."""
        out: dict[str, list[bytes]] = {}
        for e in self.calls("uploadDocument"):
            if e.status is not None and e.status < 300:
                out.setdefault(e.path.rstrip("/").rsplit("/", 1)[1], []).append(e.body)
        return out

    def feeds(self, since: int = 0) -> list[FeedRequest]:
        """Every createFeed request that reached Amazon from exchange `since` on, whatever its answer: a dropped or
        5xx answer may still mean the feed was created (Amazon's side took effect, the answer was lost)."""
        out = []
        for e in self.calls("createFeed", since):
            try:
                body = json.loads(e.body or b"{}")
            except ValueError:
                body = {}
            body = body if isinstance(body, dict) else {}
            out.append(
                FeedRequest(
                    str(body.get("feedType") or ""),
                    [str(m) for m in body.get("marketplaceIds") or []],
                    str(body.get("inputFeedDocumentId") or ""),
                    e.status,
                    e.at,
                )
            )
        return out

    def listing_writes(self, since: int = 0) -> list[ListingWrite]:
        """Every patchListingsItem and putListingsItem (not VALIDATION_PREVIEW: it changes nothing) that reached Amazon
        from exchange `since` on, whatever its answer."""
        out = []
        for e in self.exchanges[since:]:
            if e.operation not in ("patchListingsItem", "putListingsItem"):
                continue
            if "VALIDATION_PREVIEW" in e.query.get("mode", []):
                continue
            try:
                body = json.loads(e.body or b"{}")
            except ValueError:
                body = {}
            body = body if isinstance(body, dict) else {}
            sku = e.path.rstrip("/").rsplit("/", 1)[1]
            marketplaces = [m for v in e.query.get("marketplaceIds", []) for m in v.split(",")]
            if e.operation == "patchListingsItem":
                patches = body.get("patches") or []
            else:  # a put carries whole attributes: read as replace patches of each
                attributes = body.get("attributes") or {}
                patches = [{"op": "replace", "path": f"/attributes/{k}", "value": v} for k, v in attributes.items()]
            out.append(ListingWrite(e.operation, sku, marketplaces, patches, e.status, e.at))
        return out
