"""The HTTP front: a stdlib ThreadingHTTPServer (HTTP/1.1 keep-alive) that routes LWA, SP-API operations, the
S3-style document URLs and the /_emulator/ control API; plus `EmulatorServer`, the in-process handle tests use.

    with EmulatorServer(EmulatorOptions(synthetic=200)) as srv:
        srv.url, srv.token_url, srv.state
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from emulator import control
from emulator.auth import LwaCredentials, verify_sigv4
from emulator.clock import Clock
from emulator.exceptions import (
    InternalFailure,
    InvalidInput,
    LwaError,
    NotFound,
    QuotaExceeded,
    ServiceUnavailable,
    SpApiError,
    Unauthorized,
)
from emulator.feeds import responses as feeds_responses
from emulator.feeds.processing import advance_feeds
from emulator.fees import responses as fees_responses
from emulator.inventory import responses as inventory_responses
from emulator.jsonutil import dumps
from emulator.listings import responses as listings_responses
from emulator.market import Market
from emulator.notifications import responses as notifications_responses
from emulator.orders import responses as orders_responses
from emulator.pricing import responses as pricing_responses
from emulator.routes import match
from emulator.sellers import responses as sellers_responses
from emulator.state import EmulatorState, load_seller_dir
from emulator.throttle import GRANTLESS, Throttler
from emulator.wire import Request, Response
from seller.config import Channel, load_channels

__all__ = ["EmulatorOptions", "EmulatorServer"]

log = logging.getLogger("emulator")

HANDLERS: dict[str, Any] = {}
for _module in (
    listings_responses,
    feeds_responses,
    fees_responses,
    inventory_responses,
    pricing_responses,
    orders_responses,
    notifications_responses,
    sellers_responses,
):
    HANDLERS.update(_module.HANDLERS)


@dataclass
class EmulatorOptions:
    host: str = "127.0.0.1"
    port: int = 0
    state_dir: str | os.PathLike[str] | None = None
    seed_from: str | os.PathLike[str] | None = None
    channels_file: str | os.PathLike[str] | None = None
    synthetic: int | None = None
    rate_scale: float = 1.0  # × every refill rate (burst unchanged); 0 = limits off
    time_scale: float = 1.0  # emulated seconds per real second
    legacy_flat_files: bool = False
    verify_sigv4: bool = False
    sqs_endpoint: str | None = None
    feed_step_seconds: float = 2.0  # emulated seconds in IN_QUEUE and again in IN_PROGRESS
    channels: dict[str, Channel] | None = None  # instead of a channels file
    gated_product_types: tuple[str, ...] = ("WATCH",)
    seed: int = 7  # synthetic data and the world's randomness
    world_step_seconds: float = 0.0  # emulated seconds between automatic world steps; 0 = only on request
    world_orders_per_step: int = 1
    world_price_moves_per_step: int = 3
    credentials: LwaCredentials | None = None  # default: from SPAPI_LWA_* env or the documented defaults
    aws_access_key_id: str | None = None  # for --verify-sigv4; default AKIAEMULATOREXAMPLE
    aws_secret_access_key: str | None = None
    start_time: float | None = None  # emulated epoch at start (default: now)
    # the Sales Channel module's caps per selling partner (all regions, every seller-token operation); 0 = off
    requests_per_minute: int = 0
    requests_per_day: int = 0
    competitor_moves_per_minute: float = 0.0  # emulated-time rate of competitor price moves; 0 = none
    notified_share: float = 1.0  # share of (marketplace, ASIN) pairs Amazon sends ANY_OFFER_CHANGED for
    market: bool = False  # the market model: competitor strategies, the Buy Box award, demand (emulator/README.md)
    extra: dict[str, Any] = field(default_factory=dict)


class _Drop(Exception):
    """Close the connection without answering (an injected dropped connection)."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "spapi-emulator"
    sys_version = ""
    emulator: EmulatorServer  # set on the subclass per server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        request_id = str(uuid.uuid4())
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            response = self.emulator.dispatch(
                method, self.path, {k.lower(): v for k, v in self.headers.items()}, body, request_id
            )
        except _Drop:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self._send(response, request_id, method)

    def _send(self, response: Response, request_id: str, method: str) -> None:
        if response.body is None:
            payload = b""
        elif isinstance(response.body, bytes):
            payload = response.body
        else:
            payload = dumps(response.body)
        self.send_response(response.status)
        headers = {"x-amzn-RequestId": request_id, **response.headers}
        if payload or response.status not in (204,):
            headers.setdefault("Content-Type", response.content_type)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        # one write for head and body: two small segments would meet delayed ACKs (~40 ms per request)
        self._headers_buffer.append(b"\r\n")
        if method != "HEAD" and payload:
            self._headers_buffer.append(payload)
        self.flush_headers()


class EmulatorServer:
    """Start with `.start()` (returns once listening) or as a context manager; `.stop()` joins every thread."""

    def __init__(self, options: EmulatorOptions | None = None) -> None:
        self.options = options or EmulatorOptions()
        opts = self.options
        self.clock = Clock(opts.time_scale, opts.start_time)
        self.throttler = Throttler(self.clock, opts.rate_scale, opts.requests_per_minute, opts.requests_per_day)
        channels = opts.channels if opts.channels is not None else load_channels(opts.channels_file)
        self.state = EmulatorState(
            channels,
            self.clock,
            opts.credentials or LwaCredentials.from_env(),
            frozenset(opts.gated_product_types),
            Path(opts.state_dir) if opts.state_dir else None,
            opts.seed,
            opts.sqs_endpoint,
            Market(opts.seed, opts.competitor_moves_per_minute, opts.notified_share),
        )
        self._httpd: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._seeded = False

    # --- lifecycle --------------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._httpd is not None, "call start() first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def token_url(self) -> str:
        return self.url + "/auth/o2/token"

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return int(self._httpd.server_address[1])

    def _seed(self) -> None:
        opts = self.options
        state = self.state
        with state.lock:
            if state.try_restore():
                log.info("restored state from %s", state.state_file)
                return
            if opts.seed_from:
                counts = load_seller_dir(state.store, Path(opts.seed_from), self.clock.now())
            elif opts.synthetic:
                from seller.synthetic import generate

                with tempfile.TemporaryDirectory(prefix="spapi-emulator-") as tmp:
                    generate(tmp, opts.synthetic, state.store.channels, opts.seed)
                    counts = load_seller_dir(state.store, Path(tmp), self.clock.now())
            else:
                counts = {}
            state.reindex()
            log.info("seeded %s", counts)

    def _start_market(self) -> None:
        if self.options.market:
            from emulator.market import MarketWorld

            with self.state.lock:
                self.state.world = MarketWorld(self.state, self.options.seed)

    def start(self) -> EmulatorServer:
        self._seed()
        self._start_market()
        handler = type("EmulatorHandler", (_Handler,), {"emulator": self})
        self._httpd = ThreadingHTTPServer((self.options.host, self.options.port), handler)
        self._httpd.daemon_threads = True
        self.state.base_url = self.url
        if self.state.delivery is not None:
            self.state.delivery.start()
        serve = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="spapi-emulator-http", daemon=True
        )
        ticker = threading.Thread(target=self._tick_loop, name="spapi-emulator-ticker", daemon=True)
        self._threads = [serve, ticker]
        for thread in self._threads:
            thread.start()
        self.state.market.start(self.state)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        self.state.market.stop()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []
        if self.state.delivery is not None:
            self.state.delivery.flush(5)
            self.state.delivery.stop()
        with self.state.lock:
            self.state.save()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _tick_loop(self) -> None:
        opts = self.options
        next_world = self.clock.now() + opts.world_step_seconds
        last_save = time.monotonic()
        while not self._stopping.wait(0.05):
            try:
                with self.state.lock:
                    advance_feeds(self.state, opts.feed_step_seconds, opts.legacy_flat_files)
                    if self.state.world is not None:
                        self.state.world.step()
                    if opts.world_step_seconds > 0 and self.clock.now() >= next_world:
                        self.state.world_step(opts.world_orders_per_step, opts.world_price_moves_per_step)
                        next_world = self.clock.now() + opts.world_step_seconds
                    if self.state.dirty and self.state.state_dir and time.monotonic() - last_save > 1.0:
                        self.state.save()
                        last_save = time.monotonic()
            except Exception:  # the ticker must survive a bad feed; the failure is logged
                log.exception("emulator ticker step failed")

    # --- dispatch -------------------------------------------------------------------------------------------------
    def dispatch(self, method: str, raw_path: str, headers: dict[str, str], body: bytes, request_id: str) -> Response:
        split = urlsplit(raw_path)
        path = split.path
        query = parse_qs(split.query, keep_blank_values=True)
        try:
            if path == "/auth/o2/token":
                return self._token(method, headers, body)
            if path.startswith("/_emulator/"):
                return control.handle_control(self.state, self.options, self.throttler, method, path, query, body)
            if path.startswith("/_s3/spapi-emulator-documents/"):
                document_id = unquote(path.rsplit("/", 1)[1])
                faulted = self._document_faults("uploadDocument" if method == "PUT" else "downloadDocument")
                if faulted is not None:
                    return faulted
                return feeds_responses.s3_document(self.state, method, document_id, query, headers, body)
            return self._sp_api(method, raw_path, path, query, headers, body, request_id)
        except _Drop:
            raise
        except SpApiError as exc:
            return Response(exc.status, exc.body(), exc.headers())
        except Exception:
            log.exception("unhandled error on %s %s", method, raw_path)
            error = InternalFailure()
            return Response(error.status, error.body())

    def _document_faults(self, transfer: str) -> Response | None:
        """Injected faults on a presigned document transfer, before S3 reads or stores anything: a delay (the
        transfer then completes: a late upload still stores its bytes), a closed connection (an upload cut off
        stores nothing) or an S3 error status."""
        for fault in self.state.faults.take_request(transfer):
            if fault.kind == "latency":
                time.sleep(fault.latency_ms / 1000)
            elif fault.kind == "drop":
                raise _Drop()
            elif fault.kind == "status":
                if fault.status == 503:
                    return feeds_responses.s3_error(503, "SlowDown", "Please reduce your request rate.")
                return feeds_responses.s3_error(500, "InternalError", "We encountered an internal error.")
        return None

    def _token(self, method: str, headers: dict[str, str], body: bytes) -> Response:
        if method != "POST":
            return Response(405, {"error": "invalid_request", "error_description": "POST only"})
        try:
            return Response(200, self.state.store.tokens.grant(body, headers.get("content-type", ""), self.clock))
        except LwaError as exc:
            return Response(exc.status, exc.body())

    def _sp_api(
        self,
        method: str,
        raw_path: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
        request_id: str,
    ) -> Response:
        route, params, known = match(method, path)
        if route is None:
            raise NotFound(
                f"No SP-API operation at {method} {path}." if not known else f"{method} is not supported on {path}."
            )
        for fault in self.state.faults.take_request(route.operation):
            if fault.kind == "latency":
                time.sleep(fault.latency_ms / 1000)
            elif fault.kind == "drop":
                raise _Drop()
            elif fault.kind == "status":
                error = {429: QuotaExceeded, 500: InternalFailure, 503: ServiceUnavailable}[fault.status or 500]()
                return Response(error.status, error.body(), error.headers())
        if self.options.verify_sigv4:
            host = headers.get("host", "")
            problem = verify_sigv4(
                method,
                f"http://{host}{raw_path}",
                headers,
                body,
                self.options.aws_access_key_id or "AKIAEMULATOREXAMPLE",
                self.options.aws_secret_access_key or "emulator-aws-secret-access-key",
            )
            if problem:
                error = Unauthorized(details=f"Invalid Signature: {problem}")
                return Response(error.status, error.body(), error.headers())
        if self.state.faults.take_expire_tokens(route.operation):
            self.state.store.tokens.expire(self.clock.now())
        token = self.state.store.tokens.authenticate(headers.get("x-amz-access-token"), route.auth, self.clock.now())
        seller_key = token.seller_id or GRANTLESS
        if self.throttler.admit(seller_key, token.client_id, route.operation, route.rate, route.burst) is not None:
            raise QuotaExceeded()
        request = Request(
            method,
            path,
            {k: unquote(v) for k, v in params.items()},
            query,
            headers,
            body,
            request_id,
            self.state,
            self.options,
            token,
            route.operation,
        )
        try:
            with self.state.lock:
                response = HANDLERS[route.operation](request)
        except SpApiError as exc:
            response = Response(exc.status, exc.body(), exc.headers())
        if 200 <= response.status < 300:
            lost = self.state.faults.take_lost_answer(route.operation)
            if lost is not None:  # the operation took effect; the caller never hears so
                if lost.status is None:
                    raise _Drop()
                error = {500: InternalFailure, 503: ServiceUnavailable}[lost.status]()
                return Response(error.status, error.body(), error.headers())
        if 200 <= response.status < 300 or response.status in (400, 404):
            applied = route.rate * (self.options.rate_scale or 1.0)
            response.headers["x-amzn-RateLimit-Limit"] = repr(float(applied))
        return response


__all__ += ["InvalidInput"]
