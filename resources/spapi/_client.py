"""`SpApiClient`: one seller's connection to the Selling Partner API, with typed helpers for what the pipeline uses.

Every call goes through the same stack: `SpApiAuth` (LWA token, optional SigV4, one refresh + retry on
Unauthorized) over `ThrottledTransport` (shared token buckets and global caps, bounded retries) over httpx's
transport. Non-2xx answers become the typed exceptions of `resources.spapi` (see `_exceptions`), with every known
credential redacted from their text.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from resources.spapi._auth import DEFAULT_TOKEN_URL, LwaTokenProvider, SpApiAuth, TokenCache
from resources.spapi._exceptions import (
    InvalidInput,
    QuotaExceeded,
    ResourceNotFound,
    ServerError,
    SpApiError,
    SpApiTimeout,
    Throttled,
    Unauthorized,
)
from resources.spapi._feeds import FeedsMixin
from resources.spapi._json import dumps
from resources.spapi._signing import AWS_REGIONS, SigV4Signer
from resources.spapi._state import shared_state
from resources.spapi._throttle import Throttle
from resources.spapi._transport import Counters, RetryPolicy, ThrottledTransport
from resources.spapi.operations import Operation, operation

__all__ = ["FeeQuery", "SpApiClient", "SpApiResponse", "UsagePlan", "ENDPOINTS", "REDACTED"]

log = logging.getLogger("resources.spapi.client")

ENDPOINTS = {
    "na": "https://sellingpartnerapi-na.amazon.com",
    "eu": "https://sellingpartnerapi-eu.amazon.com",
    "fe": "https://sellingpartnerapi-fe.amazon.com",
}
REDACTED = "<redacted>"

# Batch sizes from the models: getItemOffersBatch and getCompetitiveSummary take 1..20 requests; the FOEP batch
# declares no maxItems and Amazon's docs say "up to 40 requests".
OFFERS_BATCH = 20
COMPETITIVE_SUMMARY_BATCH = 20
FOEP_BATCH = 40
# getMyFeesEstimates takes a bare JSON array of at most 20 FeesEstimateByIdRequest (spapi-facts, productFeesV0.json).
FEES_BATCH = 20


@dataclass(frozen=True)
class UsagePlan:
    """A seller's rate (requests/s) and burst for one operation, when Amazon granted more than the defaults."""

    rate: float
    burst: int


@dataclass(frozen=True)
class FeeQuery:
    """One getMyFeesEstimates item: the seller's SKU, the listing price to estimate at (Decimal, in the marketplace's
    currency) and whether the offer is fulfilled by Amazon."""

    sku: str
    price: Decimal
    amazon_fulfilled: bool


@dataclass(frozen=True)
class SpApiResponse:
    """A successful answer: `data` is the parsed JSON body ({} for 204), plus Amazon's request id and rate header."""

    operation: str
    status: int
    data: Any
    request_id: str | None
    rate_limit: float | None
    headers: httpx.Headers


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("datetimes sent to Amazon must be timezone-aware")
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, list | tuple | set | frozenset):
        # SP-API array query parameters are comma-separated (collectionFormat csv).
        return ",".join(_query_value(v) for v in value)
    if isinstance(value, float):
        raise TypeError(f"refusing to send binary float {value!r}; use Decimal")
    return str(value)


def _clean_params(params: Mapping[str, Any] | None) -> dict[str, str]:
    """Only the parameters the caller set: nothing is added (an injected marketplaceIds can cause Unauthorized)."""
    return {k: _query_value(v) for k, v in (params or {}).items() if v is not None}


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _dig(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


class SpApiClient(FeedsMixin):
    """One selling partner's SP-API client. Thread-safe; share one per seller within a process.

    Build it directly (plain Python) or through `SpApiResource.client_for(seller_id)` in Dagster. `state_dir` holds
    the machine-wide token cache and throttle database; point every process of the machine at the same directory.
    In the deployed mode (`SALES_CHANNEL_STATE`) they are Postgres and this process's memory instead (`shared_state`).
    """

    def __init__(
        self,
        *,
        seller_id: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        region: str = "na",
        endpoint: str | None = None,
        token_url: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        requests_per_minute: int = 30,
        requests_per_day: int = 36_000,
        feed_window_seconds: float | None = None,
        usage_plans: Mapping[str, UsagePlan] | None = None,
        throttle: Throttle | None = None,
        token_cache: TokenCache | None = None,
        counters: Counters | None = None,
        app_name: str = "amazon-sales-channel/0.1",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        region = region.lower()
        if region not in ENDPOINTS:
            raise ValueError(f"region must be one of {', '.join(ENDPOINTS)}, not {region!r}")
        required = {"client_id": client_id, "client_secret": client_secret, "refresh_token": refresh_token}
        for name, value in required.items():
            if not value:
                raise ValueError(f"{name} is empty: set the LWA credentials (SPAPI_LWA_* environment variables)")
        if bool(aws_access_key_id) != bool(aws_secret_access_key):
            raise ValueError("give both aws_access_key_id and aws_secret_access_key, or neither (unsigned requests)")
        self.seller_id = seller_id
        self.region = region
        self.endpoint = (endpoint or ENDPOINTS[region]).rstrip("/")
        self.token_url = token_url or DEFAULT_TOKEN_URL
        self.usage_plans = dict(usage_plans or {})
        self.counters = counters if counters is not None else Counters()
        self._client_id = client_id
        self._secrets = [s for s in (client_secret, refresh_token, aws_secret_access_key, aws_session_token) if s]
        state = Path(state_dir) if state_dir is not None else Path.home() / ".cache" / "spapi"
        self.state_dir = state
        self.throttle, self._token_cache = shared_state(
            state,
            throttle=throttle,
            token_cache=token_cache,
            requests_per_minute=requests_per_minute,
            requests_per_day=requests_per_day,
            feed_window_seconds=feed_window_seconds,
        )
        timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        self._timeout = timeout
        self._retry = retry or RetryPolicy()
        # LWA and the presigned document URLs get their own clients: they must never see x-amz-access-token.
        self._lwa_http = httpx.Client(timeout=timeout, headers={"user-agent": self._user_agent(app_name)})
        self._providers_lock = threading.Lock()
        self._seller_provider = LwaTokenProvider(
            client_id=client_id,
            client_secret=client_secret,
            refresh_token=refresh_token,
            cache=self._token_cache,
            http=self._lwa_http,
            token_url=self.token_url,
        )
        self._grantless: dict[str, LwaTokenProvider] = {}
        self._client_secret = client_secret
        self.signer: SigV4Signer | None = None
        if aws_access_key_id and aws_secret_access_key:
            host = httpx.URL(self.endpoint).host
            aws_region = _aws_region(host, region)
            self.signer = SigV4Signer(aws_access_key_id, aws_secret_access_key, aws_region, aws_session_token)
        self._http = httpx.Client(
            base_url=self.endpoint,
            timeout=timeout,
            headers={"user-agent": self._user_agent(app_name), "accept": "application/json"},
            auth=SpApiAuth(self._provider_for, self.signer),
            transport=ThrottledTransport(
                transport or httpx.HTTPTransport(), throttle=self.throttle, policy=self._retry, counters=self.counters
            ),
        )
        self._documents_http = httpx.Client(
            timeout=timeout,
            transport=ThrottledTransport(
                httpx.HTTPTransport(), throttle=None, policy=self._retry, counters=self.counters
            ),
        )

    # -- plumbing -------------------------------------------------------------------------------------------------
    @staticmethod
    def _user_agent(app_name: str) -> str:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        return f"{app_name} (Language=Python/{version}; Platform={platform.system()})"

    def __repr__(self) -> str:
        signed = "signed" if self.signer else "unsigned"
        return f"SpApiClient(seller_id={self.seller_id!r}, endpoint={self.endpoint!r}, {signed})"

    def __enter__(self) -> SpApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connections (the shared state on disk stays)."""
        self._http.close()
        self._lwa_http.close()
        self._documents_http.close()

    @property
    def lwa_refreshes(self) -> int:
        """How many times this client fetched a token from LWA (seller and grantless)."""
        with self._providers_lock:
            return self._seller_provider.refreshes + sum(p.refreshes for p in self._grantless.values())

    def _provider_for(self, op: Operation | None) -> LwaTokenProvider:
        scope = op.grantless_scope if op is not None else None
        if scope is None:
            return self._seller_provider
        with self._providers_lock:
            provider = self._grantless.get(scope)
            if provider is None:
                provider = LwaTokenProvider(
                    client_id=self._client_id,
                    client_secret=self._client_secret,
                    scope=scope,
                    cache=self._token_cache,
                    http=self._lwa_http,
                    token_url=self.token_url,
                )
                self._grantless[scope] = provider
            return provider

    @property
    def budget_region(self) -> str:
        """Where this client's budgets are enforced: its region when it talks to the region's own Amazon host, else the
        endpoint. An `endpoint` override (the emulator, a proxy) is one server for every region, which holds one set
        of buckets and one feed window per seller: the regions then share them, or they would jointly exceed them."""
        return self.region if self.endpoint == ENDPOINTS[self.region].rstrip("/") else self.endpoint

    @property
    def throttle_key(self) -> str:
        """Whose budgets this client's calls spend in the shared throttle: the seller in its region. Amazon's usage
        plans are per selling-partner account and region, so one seller id in two regions has two sets of buckets
        (on Amazon's regional hosts; one endpoint override serving every region shares them: `budget_region`)."""
        return f"{self.seller_id}@{self.budget_region}"

    def redact(self, text: str) -> str:
        """`text` with every credential this client knows (including current access tokens) replaced."""
        secrets = list(self._secrets)
        with self._providers_lock:
            providers = [self._seller_provider, *self._grantless.values()]
        for provider in providers:
            memory = provider._memory
            if memory is not None:
                secrets.append(memory.access_token)
        for secret in sorted(secrets, key=len, reverse=True):
            if secret:
                text = text.replace(secret, REDACTED)
        return text

    def _operation(self, operation_id: str) -> Operation:
        op = operation(operation_id)
        plan = self.usage_plans.get(operation_id)
        if plan is not None:
            op = Operation(op.name, op.model, op.method, op.path, plan.rate, plan.burst, op.grantless_scope)
        return op

    # -- the one generic call -------------------------------------------------------------------------------------
    def call(
        self,
        operation_id: str,
        *,
        path: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        cap_share: float = 1.0,
        deadline: float | None = None,
    ) -> SpApiResponse:
        """Call one registered operation and return its parsed answer; raise a typed `SpApiError` otherwise.

        `path` fills the path template (values are percent-encoded once), `params` become the query string exactly
        as given (lists comma-joined, None dropped), `body` is sent as JSON with Decimals kept exact. `cap_share`
        keeps the call within that share of the seller's module caps; `deadline` (a `time.time()` value) is when
        it must be sent at the latest: `Throttled` is raised, nothing sent, when its token could not be ours by then.
        """
        if not 0 < cap_share <= 1:
            raise ValueError(f"cap_share must be in (0, 1], not {cap_share!r}")
        op = self._operation(operation_id)
        url = op.render_path(**(path or {}))
        request_headers = dict(headers or {})
        content = None
        if body is not None:
            content = dumps(body)
            request_headers.setdefault("content-type", "application/json")
        # Grantless calls spend the application's budget in the region, the others the seller's.
        bucket_owner = f"app:{self._client_id}@{self.budget_region}" if op.grantless_scope else self.throttle_key
        request = self._http.build_request(
            op.method,
            url,
            params=_clean_params(params),
            content=content,
            headers=request_headers,
            extensions={
                "spapi_operation": op,
                "spapi_seller": bucket_owner,
                "spapi_cap_share": cap_share,
                **({"spapi_deadline": deadline} if deadline is not None else {}),
            },
        )
        try:
            response = self._http.send(request)
        except Throttled as exc:
            self.counters.add(op.name, errors=1)
            raise Throttled(self.redact(exc.message), operation=op.name) from None
        except httpx.TimeoutException as exc:
            self.counters.add(op.name, errors=1)
            raise SpApiTimeout(
                f"{type(exc).__name__} on every attempt (max {self._retry.max_attempts} attempts, "
                f"{self._retry.max_total_seconds:.0f} s)",
                operation=op.name,
            ) from None
        except httpx.TransportError as exc:
            self.counters.add(op.name, errors=1)
            raise SpApiTimeout(
                f"connection failed on every attempt ({type(exc).__name__}: {self.redact(str(exc))})",
                operation=op.name,
            ) from None
        return self._finish(op, response)

    def _finish(self, op: Operation, response: httpx.Response) -> SpApiResponse:
        request_id = response.headers.get("x-amzn-RequestId")
        data: Any = {}
        if response.content:
            try:
                data = response.json()
            except ValueError:
                data = {"raw": response.text[:2000]}
        if 200 <= response.status_code < 300:
            rate = response.headers.get("x-amzn-RateLimit-Limit")
            try:
                rate_value = float(rate) if rate else None
            except ValueError:
                rate_value = None
            log.debug("%s -> HTTP %d (x-amzn-RequestId %s)", op.name, response.status_code, request_id)
            return SpApiResponse(op.name, response.status_code, data, request_id, rate_value, response.headers)
        self.counters.add(op.name, errors=1)
        raise self._error(op, response.status_code, data, request_id)

    def _error(self, op: Operation, status: int, data: Any, request_id: str | None) -> SpApiError:
        errors: list[dict[str, Any]] = []
        raw_errors = data.get("errors") if isinstance(data, dict) else data  # Restrictions' 400 is a bare array
        if isinstance(raw_errors, list):
            errors = [e for e in raw_errors if isinstance(e, dict)]
        first = errors[0] if errors else {}
        amazon_code = str(first["code"]) if first.get("code") is not None else None
        message = str(first.get("message") or (data.get("raw") if isinstance(data, dict) else "") or "no message")
        if first.get("details"):
            message += f" ({first['details']})"
        message = self.redact(message)
        errors = [{k: self.redact(str(v)) if isinstance(v, str) else v for k, v in e.items()} for e in errors]
        kind: type[SpApiError]
        if status == 400:
            kind = InvalidInput
        elif status in (401, 403):
            kind = Unauthorized
        elif status == 404:
            kind = ResourceNotFound
        elif status == 429:
            kind = QuotaExceeded
            budget = f"{self._retry.max_attempts} attempts / {self._retry.max_total_seconds:.0f} s"
            message += f" (still throttled after {budget})"
        elif status >= 500:
            kind = ServerError
        else:
            kind = SpApiError
        return kind(
            message, operation=op.name, status=status, amazon_code=amazon_code, request_id=request_id, errors=errors
        )

    # -- pagination -----------------------------------------------------------------------------------------------
    def paginate(
        self,
        operation_id: str,
        *,
        items: Callable[[Any], Iterable[Any]],
        next_token: Callable[[Any], str | None],
        token_param: str,
        token_alone: bool = False,
        path: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Iterator[Any]:
        """Yield the items of every page. `next_token` reads the token from a page, `token_param` names the query
        parameter that carries it back; with `token_alone` the token is sent without the other filters (Feeds and
        Reports reject nextToken combined with other parameters)."""
        query = dict(params or {})
        while True:
            page = self.call(operation_id, path=path, params=query).data
            yield from items(page) or []
            token = next_token(page)
            if not token:
                return
            query = {token_param: token} if token_alone else {**(params or {}), token_param: token}

    # -- FBA Inventory ---------------------------------------------------------------------------------------------
    def iter_inventory_summaries(
        self,
        marketplace_id: str,
        *,
        details: bool = True,
        seller_skus: Sequence[str] | None = None,
        start_date_time: dt.datetime | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield every inventory summary (page by page). Sellable now = ``inventoryDetails.fulfillableQuantity``,
        present only with ``details=True``. Pagination tokens die after 30 s, so consume the pages promptly."""
        params = {
            "granularityType": "Marketplace",
            "granularityId": marketplace_id,
            "marketplaceIds": marketplace_id,
            "details": details,
            "sellerSkus": list(seller_skus) if seller_skus else None,
            "startDateTime": start_date_time,
        }
        return self.paginate(
            "getInventorySummaries",
            params=params,
            items=lambda page: _dig(page, "payload", "inventorySummaries"),
            next_token=lambda page: _dig(page, "pagination", "nextToken"),
            token_param="nextToken",
        )

    def get_inventory_summaries(self, marketplace_id: str, **kwargs: Any) -> list[dict[str, Any]]:
        """All inventory summaries of one marketplace, every page (see `iter_inventory_summaries`)."""
        return list(self.iter_inventory_summaries(marketplace_id, **kwargs))

    # -- Product Pricing -------------------------------------------------------------------------------------------
    def iter_item_offers_batches(
        self,
        marketplace_id: str,
        asins: Sequence[str],
        *,
        max_seconds: float | None = None,
        cap_share: float = 1.0,
        item_condition: str = "New",
        customer_type: str = "Consumer",
    ) -> Iterator[tuple[list[str], list[dict[str, Any]]]]:
        """getItemOffersBatch over `asins` in the given order, 20 per request, yielding (the request's ASINs,
        Amazon's `responses` items) per request. Stops early, without raising, when the next request could not be
        sent within `max_seconds` of the first (None: no time limit) or when the pull's own requests would fill more
        than `cap_share` of the seller's module caps (requests/minute, requests/day), so the rest stays for pushes.

        The time limit counts from when the first request is asked for; within it a request waits for its token
        and for room in its share (a minute window frees within seconds), and it is not sent when neither comes in
        time. A 429 after the limiter's yes is retried as for any call (`QuotaExceeded` when it persists). Without
        limits (the defaults) nothing stops it early: a request the limiter refuses raises `Throttled` as any call.
        """

        def body(chunk: Sequence[str]) -> dict[str, Any]:
            requests = [
                {
                    "uri": f"/products/pricing/v0/items/{asin}/offers",
                    "method": "GET",
                    "MarketplaceId": marketplace_id,
                    "ItemCondition": item_condition,
                    "CustomerType": customer_type,
                }
                for asin in chunk
            ]
            return {"requests": requests}

        for chunk, data in self._budgeted_batches(
            "getItemOffersBatch", list(asins), OFFERS_BATCH, body, max_seconds=max_seconds, cap_share=cap_share
        ):
            yield chunk, data.get("responses", [])

    def _budgeted_batches(
        self,
        operation_id: str,
        items: list[Any],
        batch_size: int,
        body: Callable[[Sequence[Any]], Any],
        *,
        max_seconds: float | None,
        cap_share: float,
    ) -> Iterator[tuple[list[Any], Any]]:
        """`operation_id` over `items`, `batch_size` per request (`body` builds a request's body from its items),
        yielding (the request's items, the parsed answer). The budget of `iter_item_offers_batches`: it stops, without
        raising, when the next request could not be sent within `max_seconds` of the first or would fill more than
        `cap_share` of the seller's module caps."""
        if max_seconds is not None and max_seconds < 0:
            raise ValueError(f"max_seconds must be >= 0 or None, not {max_seconds!r}")
        if not 0 < cap_share <= 1:
            raise ValueError(f"cap_share must be in (0, 1], not {cap_share!r}")
        budgeted = max_seconds is not None or cap_share < 1
        deadline = None if max_seconds is None else time.time() + max_seconds
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            try:
                response = self.call(operation_id, body=body(chunk), cap_share=cap_share, deadline=deadline)
            except Throttled as exc:
                if not budgeted or isinstance(exc, QuotaExceeded):
                    raise
                log.info("%s: budget reached, %d items left (%s)", operation_id, len(items) - start, exc.message)
                return
            yield chunk, response.data

    def get_item_offers_batch(
        self,
        marketplace_id: str,
        asins: Sequence[str],
        *,
        item_condition: str = "New",
        customer_type: str = "Consumer",
    ) -> list[dict[str, Any]]:
        """getItemOffersBatch over all `asins`, 20 per request, without limits (`iter_item_offers_batches`). Returns
        Amazon's ``responses`` items in order; each has its own ``status.statusCode`` and ``body.payload`` (a failed
        item does not fail the batch)."""
        batches = self.iter_item_offers_batches(
            marketplace_id, asins, item_condition=item_condition, customer_type=customer_type
        )
        return [response for _, responses in batches for response in responses]

    def get_competitive_summary(
        self,
        marketplace_id: str,
        asins: Sequence[str],
        *,
        included_data: Sequence[str] = ("featuredBuyingOptions", "lowestPricedOffers", "referencePrices"),
        item_condition: str = "New",
    ) -> list[dict[str, Any]]:
        """getCompetitiveSummary over all `asins`, 20 per request; Amazon's ``responses`` items in order."""
        results: list[dict[str, Any]] = []
        for chunk in _chunks(list(asins), COMPETITIVE_SUMMARY_BATCH):
            requests = []
            for asin in chunk:
                request: dict[str, Any] = {
                    "asin": asin,
                    "marketplaceId": marketplace_id,
                    "includedData": list(included_data),
                    "method": "GET",
                    "uri": "/products/pricing/2022-05-01/items/competitiveSummary",
                }
                if "lowestPricedOffers" in included_data:
                    request["lowestPricedOffersInputs"] = [{"itemCondition": item_condition, "offerType": "Consumer"}]
                requests.append(request)
            results.extend(self.call("getCompetitiveSummary", body={"requests": requests}).data.get("responses", []))
        return results

    def get_featured_offer_expected_price_batch(
        self, marketplace_id: str, skus: Sequence[str], *, batch_size: int = FOEP_BATCH
    ) -> list[dict[str, Any]]:
        """getFeaturedOfferExpectedPriceBatch over all `skus` (up to 40 per request); Amazon's ``responses``."""
        results: list[dict[str, Any]] = []
        for chunk in _chunks(list(skus), batch_size):
            requests = [
                {
                    "uri": "/products/pricing/2022-05-01/offer/featuredOfferExpectedPrice",
                    "method": "GET",
                    "marketplaceId": marketplace_id,
                    "sku": sku,
                }
                for sku in chunk
            ]
            data = self.call("getFeaturedOfferExpectedPriceBatch", body={"requests": requests}).data
            results.extend(data.get("responses", []))
        return results

    # -- Product Fees ----------------------------------------------------------------------------------------------
    def iter_fees_estimates(
        self,
        marketplace_id: str,
        currency: str,
        queries: Sequence[FeeQuery],
        *,
        max_seconds: float | None = None,
        cap_share: float = 1.0,
    ) -> Iterator[tuple[list[FeeQuery], list[dict[str, Any]]]]:
        """getMyFeesEstimates over `queries` in the given order, 20 per request (by SellerSKU, each SKU its own
        ``Identifier``), yielding (the request's queries, Amazon's FeesEstimateResult items) per request. Each item
        has its own ``Status`` (Success, ClientError, ServiceError) and ``Error``: a failed item does not fail the
        request. The budget (`max_seconds`, `cap_share`) as for `iter_item_offers_batches`."""

        def body(chunk: Sequence[FeeQuery]) -> list[dict[str, Any]]:
            return [
                {
                    "IdType": "SellerSKU",
                    "IdValue": query.sku,
                    "FeesEstimateRequest": {
                        "MarketplaceId": marketplace_id,
                        "IsAmazonFulfilled": query.amazon_fulfilled,
                        "PriceToEstimateFees": {"ListingPrice": {"CurrencyCode": currency, "Amount": query.price}},
                        "Identifier": query.sku,
                    },
                }
                for query in chunk
            ]

        for chunk, data in self._budgeted_batches(
            "getMyFeesEstimates", list(queries), FEES_BATCH, body, max_seconds=max_seconds, cap_share=cap_share
        ):
            yield chunk, [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []

    # -- Listings --------------------------------------------------------------------------------------------------
    def get_listings_item(
        self,
        sku: str,
        marketplace_ids: Sequence[str],
        *,
        included_data: Sequence[str] | None = None,
        issue_locale: str | None = None,
    ) -> dict[str, Any]:
        """One listing of this seller (``summaries`` by default). Raises `ResourceNotFound` for an unknown SKU."""
        return self.call(
            "getListingsItem",
            path={"sellerId": self.seller_id, "sku": sku},
            params={
                "marketplaceIds": list(marketplace_ids),
                "includedData": list(included_data) if included_data else None,
                "issueLocale": issue_locale,
            },
        ).data

    def iter_listings_items(
        self, marketplace_ids: Sequence[str], *, included_data: Sequence[str] | None = None, page_size: int = 20
    ) -> Iterator[dict[str, Any]]:
        """searchListingsItems, every page (``pageToken`` style; Amazon pages at most 1,000 SKUs)."""
        return self.paginate(
            "searchListingsItems",
            path={"sellerId": self.seller_id},
            params={
                "marketplaceIds": list(marketplace_ids),
                "includedData": list(included_data) if included_data else None,
                "pageSize": page_size,
            },
            items=lambda page: page.get("items"),
            next_token=lambda page: _dig(page, "pagination", "nextToken"),
            token_param="pageToken",
        )

    def patch_listings_item(
        self,
        sku: str,
        marketplace_ids: Sequence[str],
        *,
        patches: Sequence[Mapping[str, Any]],
        product_type: str = "PRODUCT",
        mode: str | None = None,
        included_data: Sequence[str] | None = None,
        issue_locale: str | None = None,
    ) -> dict[str, Any]:
        """patchListingsItem: ``{sku, status ACCEPTED|INVALID|VALID, submissionId, issues}``. Prices in the patch
        values must be `Decimal`. An unknown SKU is ACCEPTED too (Amazon declares no 404 here)."""
        return self.call(
            "patchListingsItem",
            path={"sellerId": self.seller_id, "sku": sku},
            params={
                "marketplaceIds": list(marketplace_ids),
                "mode": mode,
                "includedData": list(included_data) if included_data else None,
                "issueLocale": issue_locale,
            },
            body={"productType": product_type, "patches": [dict(p) for p in patches]},
        ).data

    def put_listings_item(
        self,
        sku: str,
        marketplace_ids: Sequence[str],
        *,
        product_type: str,
        attributes: Mapping[str, Any],
        requirements: str | None = None,
        mode: str | None = None,
        included_data: Sequence[str] | None = None,
        issue_locale: str | None = None,
    ) -> dict[str, Any]:
        """putListingsItem (creates or fully replaces a listing); same answer shape as `patch_listings_item`."""
        body: dict[str, Any] = {"productType": product_type, "attributes": dict(attributes)}
        if requirements:
            body["requirements"] = requirements
        return self.call(
            "putListingsItem",
            path={"sellerId": self.seller_id, "sku": sku},
            params={
                "marketplaceIds": list(marketplace_ids),
                "mode": mode,
                "includedData": list(included_data) if included_data else None,
                "issueLocale": issue_locale,
            },
            body=body,
        ).data

    def get_listings_restrictions(
        self,
        asin: str,
        marketplace_ids: Sequence[str],
        *,
        condition_type: str | None = None,
        product_type: str | None = None,
        reason_locale: str | None = None,
    ) -> list[dict[str, Any]]:
        """The ``restrictions`` list for `asin` (empty = the seller may list it)."""
        data = self.call(
            "getListingsRestrictions",
            params={
                "asin": asin,
                "sellerId": self.seller_id,
                "marketplaceIds": list(marketplace_ids),
                "conditionType": condition_type,
                "productType": product_type,
                "reasonLocale": reason_locale,
            },
        ).data
        return list(data.get("restrictions") or [])

    # -- Orders ----------------------------------------------------------------------------------------------------
    def iter_orders(
        self,
        marketplace_ids: Sequence[str],
        *,
        created_after: dt.datetime | None = None,
        last_updated_after: dt.datetime | None = None,
        order_statuses: Sequence[str] | None = None,
        fulfillment_channels: Sequence[str] | None = None,
        max_results_per_page: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Orders v0 getOrders, every page (``payload.NextToken``). Exactly one of the two dates is required."""
        if (created_after is None) == (last_updated_after is None):
            raise ValueError("give exactly one of created_after or last_updated_after")
        return self.paginate(
            "getOrders",
            params={
                "MarketplaceIds": list(marketplace_ids),
                "CreatedAfter": created_after,
                "LastUpdatedAfter": last_updated_after,
                "OrderStatuses": list(order_statuses) if order_statuses else None,
                "FulfillmentChannels": list(fulfillment_channels) if fulfillment_channels else None,
                "MaxResultsPerPage": max_results_per_page,
            },
            items=lambda page: _dig(page, "payload", "Orders"),
            next_token=lambda page: _dig(page, "payload", "NextToken"),
            token_param="NextToken",
        )

    def get_orders(self, marketplace_ids: Sequence[str], **kwargs: Any) -> list[dict[str, Any]]:
        """All orders matching the filters (see `iter_orders`)."""
        return list(self.iter_orders(marketplace_ids, **kwargs))

    def get_order(self, order_id: str) -> dict[str, Any]:
        """Orders v0 getOrder: the order (``payload``), e.g. ``OrderStatus`` and ``NumberOfItemsUnshipped``."""
        return dict(self.call("getOrder", path={"orderId": order_id}).data.get("payload") or {})

    def get_order_items(self, order_id: str) -> list[dict[str, Any]]:
        """All items of one order (``payload.NextToken`` pages). Pending orders carry no prices."""
        return list(
            self.paginate(
                "getOrderItems",
                path={"orderId": order_id},
                items=lambda page: _dig(page, "payload", "OrderItems"),
                next_token=lambda page: _dig(page, "payload", "NextToken"),
                token_param="NextToken",
            )
        )

    def search_orders_page(
        self,
        marketplace_ids: Sequence[str],
        *,
        created_after: dt.datetime | None = None,
        last_updated_after: dt.datetime | None = None,
        fulfillment_statuses: Sequence[str] | None = None,
        fulfilled_by: Sequence[str] | None = None,
        included_data: Sequence[str] | None = None,
        max_results_per_page: int | None = None,
        pagination_token: str | None = None,
        cap_share: float = 1.0,
        deadline: float | None = None,
    ) -> dict[str, Any]:
        """One page of Orders 2026-01-01 searchOrders: ``{"orders": [...], "pagination": {"nextToken"}?,
        "lastUpdatedBefore"?, "createdBefore"?}`` (no ``payload`` wrapper; items are always embedded, the order's
        ``fulfillment`` only with ``included_data`` FULFILLMENT). The next page is asked with the same filters plus
        ``pagination_token`` (the model requires the other parameters unchanged; the token lasts 24 hours).
        `cap_share` and `deadline` as for `call`."""
        if (created_after is None) == (last_updated_after is None):
            raise ValueError("give exactly one of created_after or last_updated_after")
        response = self.call(
            "searchOrders",
            params={
                "marketplaceIds": list(marketplace_ids),
                "createdAfter": created_after,
                "lastUpdatedAfter": last_updated_after,
                "fulfillmentStatuses": list(fulfillment_statuses) if fulfillment_statuses else None,
                "fulfilledBy": list(fulfilled_by) if fulfilled_by else None,
                "includedData": list(included_data) if included_data else None,
                "maxResultsPerPage": max_results_per_page,
                "paginationToken": pagination_token,
            },
            cap_share=cap_share,
            deadline=deadline,
        )
        return response.data if isinstance(response.data, dict) else {}

    def iter_search_orders(self, marketplace_ids: Sequence[str], **filters: Any) -> Iterator[dict[str, Any]]:
        """Every order of searchOrders, page after page (`search_orders_page`'s filters)."""
        token: str | None = None
        while True:
            page = self.search_orders_page(marketplace_ids, pagination_token=token, **filters)
            yield from page.get("orders") or []
            token = _dig(page, "pagination", "nextToken")
            if not token:
                return

    def confirm_shipment(
        self,
        order_id: str,
        marketplace_id: str,
        package_detail: Mapping[str, Any],
        *,
        cod_collection_method: str | None = None,
    ) -> None:
        """confirmShipment (204 on success). `package_detail` needs packageReferenceId, carrierCode,
        trackingNumber, shipDate (ISO 8601) and orderItems [{orderItemId, quantity}]."""
        body: dict[str, Any] = {"marketplaceId": marketplace_id, "packageDetail": dict(package_detail)}
        if cod_collection_method:
            body["codCollectionMethod"] = cod_collection_method
        self.call("confirmShipment", path={"orderId": order_id}, body=body)

    # -- Notifications ---------------------------------------------------------------------------------------------
    def get_marketplace_participations(self) -> list[dict[str, Any]]:
        """getMarketplaceParticipations: the marketplaces the seller's authorization covers (``payload``)."""
        return list(self.call("getMarketplaceParticipations").data.get("payload") or [])

    def create_destination(self, name: str, sqs_arn: str) -> dict[str, Any]:
        """createDestination (grantless) for an SQS queue; returns the ``payload`` (``destinationId`` ...)."""
        body = {"name": name, "resourceSpecification": {"sqs": {"arn": sqs_arn}}}
        return self.call("createDestination", body=body).data.get("payload", {})

    def get_destinations(self) -> list[dict[str, Any]]:
        """getDestinations (grantless): the application's destinations."""
        return list(self.call("getDestinations").data.get("payload") or [])

    def create_subscription(
        self,
        notification_type: str,
        destination_id: str,
        *,
        payload_version: str = "1.0",
        processing_directive: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """createSubscription for this seller; returns the ``payload`` (``subscriptionId`` ...)."""
        body: dict[str, Any] = {"payloadVersion": payload_version, "destinationId": destination_id}
        if processing_directive:
            body["processingDirective"] = dict(processing_directive)
        return self.call("createSubscription", path={"notificationType": notification_type}, body=body).data.get(
            "payload", {}
        )

    def get_subscription(self, notification_type: str) -> dict[str, Any]:
        """getSubscription for this seller and type; raises `ResourceNotFound` when there is none."""
        return self.call("getSubscription", path={"notificationType": notification_type}).data.get("payload", {})

    # -- documents (presigned URLs; no SP-API token, no throttle) ----------------------------------------------------
    def upload_document(self, url: str, content: bytes, content_type: str) -> None:
        """PUT `content` to a presigned feed-document URL with exactly `content_type` (Amazon rejects any other)."""
        try:
            # Retried by the transport like any call: a PUT of the same bytes to the same URL is idempotent.
            response = self._documents_http.put(
                url,
                content=content,
                headers={"Content-Type": content_type},
                extensions={"spapi_label": "uploadDocument"},
            )
        except httpx.TransportError as exc:
            reason = type(exc).__name__
            raise SpApiTimeout(f"document upload failed ({reason})", operation="uploadFeedDocument") from None
        if response.status_code >= 300:
            raise SpApiError(
                f"document upload failed: HTTP {response.status_code}: {self.redact(response.text[:300])}",
                operation="uploadFeedDocument",
                status=response.status_code,
            )

    def download_document(self, url: str) -> tuple[bytes, str | None]:
        """GET a presigned document URL; returns (raw bytes as stored, Content-Type header)."""
        try:
            response = self._documents_http.get(url, extensions={"spapi_label": "downloadDocument"})
        except httpx.TransportError as exc:
            reason = type(exc).__name__
            raise SpApiTimeout(f"document download failed ({reason})", operation="downloadDocument") from None
        if response.status_code >= 300:
            raise SpApiError(
                f"document download failed: HTTP {response.status_code}",
                operation="downloadDocument",
                status=response.status_code,
            )
        return response.content, response.headers.get("content-type")


def _aws_region(host: str, region: str) -> str:
    """SigV4 region: from an Amazon host name when it names a region, else the configured region's AWS region."""
    for code, aws_region in AWS_REGIONS.items():
        if f"sellingpartnerapi-{code}." in host:
            return aws_region
    return AWS_REGIONS[region]
