"""The control API under /_emulator/ (never part of the SP-API surface): clock, fault injection, token revocation,
world events and read-outs for tests and the demo."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from emulator.clock import iso, parse_iso_ms
from emulator.exceptions import InvalidInput, NotFound
from emulator.feeds.processing import advance_feeds
from emulator.jsonutil import loads, money_str
from emulator.wire import Response

if TYPE_CHECKING:
    from emulator.server import EmulatorOptions
    from emulator.state import EmulatorState
    from emulator.throttle import Throttler

__all__ = ["Fault", "Faults", "handle_control", "FAULT_KINDS", "DOCUMENT_OPERATIONS"]

FAULT_KINDS = {"status", "latency", "drop", "feed_stuck", "feed_fatal", "silent_drop", "lost_answer", "expire_tokens"}
# The presigned document transfers (not SP-API operations): `latency`, `drop` and `status` (500/503) reach them only
# when named, never through operation "*".
DOCUMENT_OPERATIONS = frozenset({"uploadDocument", "downloadDocument"})


@dataclass
class Fault:
    kind: str
    operation: str = "*"  # an operationId, "uploadDocument"/"downloadDocument", or "*" for every SP-API operation
    count: int = 1
    status: int | None = None  # kind "status": 429 | 500 | 503; kind "lost_answer": 500 | 503, or None to drop
    latency_ms: int = 0  # kind "latency"
    feed_type: str | None = None  # feed kinds: only feeds of this type (None = any)


class Faults:
    """The pending faults, and how often each kind hit each operation (`hits`: proof a test's fault was injected)."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._hits: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def add(self, spec: dict[str, Any]) -> Fault:
        kind = spec.get("kind")
        if kind not in FAULT_KINDS:
            raise InvalidInput(f"kind must be one of {sorted(FAULT_KINDS)}")
        count = spec.get("count", 1)
        if not isinstance(count, int) or count < 1:
            raise InvalidInput("count must be a positive integer")
        fault = Fault(
            kind,
            str(spec.get("operation", "*")),
            count,
            spec.get("status"),
            int(spec.get("latency_ms", 0)),
            spec.get("feedType"),
        )
        if kind == "status" and fault.status not in (429, 500, 503):
            raise InvalidInput("status must be 429, 500 or 503")
        if fault.operation in DOCUMENT_OPERATIONS and kind not in ("status", "latency", "drop"):
            raise InvalidInput("document transfers take the kinds status, latency and drop")
        if fault.operation in DOCUMENT_OPERATIONS and kind == "status" and fault.status not in (500, 503):
            raise InvalidInput("a document transfer's status must be 500 or 503")
        if kind == "lost_answer" and fault.status not in (None, 500, 503):
            raise InvalidInput("a lost_answer status must be 500 or 503 (none: the connection is dropped)")
        if kind == "latency" and fault.latency_ms <= 0:
            raise InvalidInput("latency_ms must be positive")
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Drop the pending faults (the hit counts stay: they are history)."""
        with self._lock:
            self._faults.clear()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(f) for f in self._faults]

    def hits(self) -> list[dict[str, Any]]:
        """Every (kind, operation) that a fault hit, with how many times."""
        with self._lock:
            return [{"kind": k, "operation": op, "count": n} for (k, op), n in sorted(self._hits.items())]

    def _take(self, kinds: set[str], operation: str, feed_type: str | None = None) -> list[Fault]:
        taken: list[Fault] = []
        # "*" means every SP-API operation: a document transfer is hit only by a fault that names it.
        matching = (operation,) if operation in DOCUMENT_OPERATIONS else ("*", operation)
        with self._lock:
            for fault in list(self._faults):
                if fault.kind not in kinds or fault.operation not in matching:
                    continue
                if feed_type is not None and fault.feed_type not in (None, feed_type):
                    continue
                if any(t.kind == fault.kind for t in taken):
                    continue
                fault.count -= 1
                if fault.count <= 0:
                    self._faults.remove(fault)
                taken.append(fault)
                self._hits[(fault.kind, operation)] = self._hits.get((fault.kind, operation), 0) + 1
        return taken

    def take_request(self, operation: str) -> list[Fault]:
        """Faults that hit this request (an SP-API operation or a document transfer): latency, then drop or status."""
        return self._take({"latency", "drop", "status"}, operation)

    def take_expire_tokens(self, operation: str) -> bool:
        """Whether every access token issued so far expires as this request arrives (a run outliving its token)."""
        return bool(self._take({"expire_tokens"}, operation))

    def take_lost_answer(self, operation: str) -> Fault | None:
        """A fault that lets this request take effect and then loses its answer (an error status, or a drop)."""
        taken = self._take({"lost_answer"}, operation)
        return taken[0] if taken else None

    def take_feed(self, kind: str, feed_type: str) -> bool:
        return bool(self._take({kind}, "createFeed", feed_type))

    def take_silent(self, operation: str) -> bool:
        return bool(self._take({"silent_drop"}, operation))


def _listing_state(state: EmulatorState, listing: Any) -> dict[str, Any]:
    return {
        "sellerId": listing.seller_id,
        "marketplaceId": listing.marketplace_id,
        "sku": listing.sku,
        "asin": listing.asin,
        "productType": listing.product_type,
        "fulfillment": listing.fulfillment,
        "price": money_str(listing.price, listing.decimals) if listing.price is not None else None,
        "minPrice": money_str(listing.min_price, listing.decimals) if listing.min_price is not None else None,
        "maxPrice": money_str(listing.max_price, listing.decimals) if listing.max_price is not None else None,
        "quantity": listing.quantity,
        "fbaFulfillable": state.fba_quantity(listing) if listing.fulfillment == "FBA" else None,
        "handlingTime": listing.handling_time,
        "updated": iso(listing.updated),
        "issues": listing.issues,
    }


def _dec(value: Any, name: str) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise InvalidInput(f"'{name}' must be a decimal number") from None


def _number(spec: dict[str, Any], name: str) -> float | None:
    value = spec.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise InvalidInput(f"'{name}' must be a number")
    return float(value)


def _flag(spec: dict[str, Any], name: str, default: bool = True) -> bool:
    value = spec.get(name, default)
    if not isinstance(value, bool):
        raise InvalidInput(f"'{name}' must be true or false")
    return value


def _market_settings(state: EmulatorState, options: EmulatorOptions) -> dict[str, Any]:
    return {
        **state.market.settings(),
        "requestsPerMinute": options.requests_per_minute,
        "requestsPerDay": options.requests_per_day,
    }


def handle_control(
    state: EmulatorState,
    options: EmulatorOptions,
    throttler: Throttler,
    method: str,
    path: str,
    query: dict[str, list[str]],
    body: bytes,
) -> Response:
    spec: dict[str, Any] = {}
    if body:
        try:
            spec = loads(body)
        except ValueError:
            raise InvalidInput("control API bodies are JSON objects") from None
        if not isinstance(spec, dict):
            raise InvalidInput("control API bodies are JSON objects")
    route = (method, path.removeprefix("/_emulator"))
    q = {k: v[0] for k, v in query.items() if v}
    with state.lock:
        if route == ("GET", "/health"):
            return Response(200, {"ok": True, "listings": len(state.store.listings), "now": iso(state.clock.now())})
        if route == ("GET", "/clock"):
            return Response(200, {"now": iso(state.clock.now()), "epoch": state.clock.now()})
        if route == ("POST", "/clock/advance"):
            seconds = spec.get("seconds")
            if not isinstance(seconds, int | float | Decimal) or seconds < 0:
                raise InvalidInput("'seconds' must be a non-negative number")
            state.clock.advance(float(seconds))
            advance_feeds(state, options.feed_step_seconds, options.legacy_flat_files)
            return Response(200, {"now": iso(state.clock.now()), "epoch": state.clock.now()})
        if route == ("GET", "/faults"):
            return Response(200, {"faults": state.faults.list(), "hits": state.faults.hits()})
        if route == ("POST", "/faults"):
            return Response(201, {"fault": asdict(state.faults.add(spec))})
        if route == ("DELETE", "/faults"):
            state.faults.clear()
            return Response(200, {"faults": []})
        if route == ("POST", "/tokens/revoke"):
            refresh = spec.get("refresh_token")
            count = state.store.tokens.revoke(refresh, bool(spec.get("access_tokens", refresh is None)))
            return Response(200, {"revoked": count})
        if route == ("POST", "/tokens/restore"):
            state.store.tokens.restore(spec.get("refresh_token"))
            return Response(200, {"ok": True})
        if route == ("GET", "/listings"):
            listings = [
                _listing_state(state, listing)
                for listing in state.store.listings.values()
                if q.get("sellerId") in (None, listing.seller_id)
                and q.get("marketplaceId") in (None, listing.marketplace_id)
                and q.get("sku") in (None, listing.sku)
                and q.get("asin") in (None, listing.asin)
                and q.get("fulfillment") in (None, listing.fulfillment)
                and q.get("productType") in (None, listing.product_type)
            ]
            limit = int(q.get("limit", "100000"))
            return Response(200, {"listings": listings[:limit], "total": len(listings)})
        if route == ("GET", "/offers"):
            mp, asin = q.get("marketplaceId"), q.get("asin")
            if not mp or not asin:
                raise InvalidInput("marketplaceId and asin are required")
            return Response(
                200,
                {
                    "offers": [
                        {
                            "sellerId": o.seller_id,
                            "price": str(o.price),
                            "shipping": str(o.shipping),
                            "fba": o.fba,
                            "mine": o.mine,
                            "eligible": o.eligible,
                            "sku": o.sku,
                        }
                        for o in state.offers_for(mp, asin)
                    ]
                },
            )
        if route == ("POST", "/competitors"):
            for key in ("marketplaceId", "asin", "sellerId", "price"):
                if not spec.get(key):
                    raise InvalidInput(f"'{key}' is required")
            offer = state.set_competitor_price(
                spec["marketplaceId"],
                spec["asin"],
                spec["sellerId"],
                _dec(spec["price"], "price"),
                _dec(spec["shipping"], "shipping") if "shipping" in spec else None,
                spec.get("fulfillment"),
            )
            return Response(200, {"sellerId": offer.seller_id, "price": str(offer.price)})
        if route == ("POST", "/world/step"):
            totals: dict[str, int] = {}
            for _ in range(int(spec.get("steps", 1))):
                for key, value in state.world_step(int(spec.get("orders", 1)), int(spec.get("priceMoves", 3))).items():
                    totals[key] = totals.get(key, 0) + value
            return Response(200, totals)
        if route == ("POST", "/world/price-war"):
            try:
                result = state.start_price_war(
                    spec.get("marketplaceId", ""),
                    spec.get("asin", ""),
                    _dec(spec.get("stepPercent", 2), "stepPercent"),
                    _dec(spec.get("floorPercent", 70), "floorPercent"),
                )
            except KeyError as exc:
                raise NotFound(str(exc)) from None
            return Response(200, result)
        if route == ("POST", "/orders"):
            seller = spec.get("sellerId") or state.store.tokens.seller_id
            mp = spec.get("marketplaceId")
            items = spec.get("items")
            if not mp or not isinstance(items, list) or not items:
                raise InvalidInput("'marketplaceId' and 'items' [{sku, quantity}] are required")
            lines = []
            for item in items:
                listing = state.listing(seller, mp, item.get("sku", ""))
                if listing is None:
                    raise NotFound(f"no listing {item.get('sku')} in {mp}")
                lines.append((listing.sku, int(item.get("quantity", 1))))
            order = state.create_order(seller, mp, lines, _flag(spec, "notify"))
            return Response(
                201,
                {"orderId": order.order_id, "status": order.status, "fulfillmentChannel": order.fulfillment_channel},
            )
        if route[0] == "POST" and route[1].startswith("/orders/") and route[1].endswith("/cancel"):
            order = state.store.orders.get(route[1].removeprefix("/orders/").removesuffix("/cancel"))
            if order is None:
                raise NotFound(f"no order {route[1]}")
            cancelled_by = spec.get("cancelledBy", "BUYER")
            if cancelled_by not in ("BUYER", "MERCHANT", "AMAZON"):
                raise InvalidInput("'cancelledBy' must be BUYER, MERCHANT or AMAZON")
            try:
                state.cancel_order(order, cancelled_by, _flag(spec, "notify"))
            except ValueError as exc:
                raise InvalidInput(str(exc)) from None
            return Response(
                200, {"orderId": order.order_id, "status": order.status, "lastUpdate": iso(order.last_update)}
            )
        if route == ("POST", "/fba"):
            seller = spec.get("sellerId") or state.store.tokens.seller_id
            stock = state.store.fba.get((seller, spec.get("marketplaceId", ""), spec.get("sku", "")))
            if stock is None:
                raise NotFound("no FBA stock for that seller/marketplace/sku")
            state.set_fba_quantity(stock, int(spec.get("quantity", 0)))
            return Response(200, {"sku": stock.sku, "fulfillable": stock.fulfillable})
        if route == ("GET", "/notifications"):
            return Response(
                200,
                {
                    "notifications": state.notification_log,
                    "sent": state.delivery.sent if state.delivery else 0,
                    "failed": state.delivery.failed if state.delivery else 0,
                },
            )
        if route == ("GET", "/market"):
            since = None
            if "since" in q:
                try:
                    since = parse_iso_ms(q["since"])
                except ValueError:
                    raise InvalidInput("'since' must be an ISO 8601 time") from None
            requests, throttled = throttler.usage()
            return Response(
                200,
                {
                    "settings": _market_settings(state, options),
                    **state.market.logs(since),
                    "requests": requests,
                    "throttled": throttled,
                    **({"model": state.world.summary()} if state.world is not None else {}),
                },
            )
        if route == ("POST", "/market"):
            rate, share = _number(spec, "movesPerMinute"), _number(spec, "notifiedShare")
            if rate is not None and not 0 <= rate < float("inf"):
                raise InvalidInput("'movesPerMinute' must be a finite number >= 0")
            if share is not None and not 0 <= share <= 1:
                raise InvalidInput("'notifiedShare' must be between 0 and 1")
            if share is not None:
                state.market.set_notified_share(share)
            if rate is not None:
                state.market.set_moves_per_minute(rate)
            return Response(200, {"settings": _market_settings(state, options)})
        if route == ("POST", "/state/save"):
            state.save()
            return Response(200, {"saved": str(state.state_file) if state.state_file else None})
    raise NotFound(f"no control endpoint {method} {path}")
