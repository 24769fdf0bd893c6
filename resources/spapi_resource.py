"""`SpApiResource`: the Dagster face of the SP-API client (`resources.spapi`).

Wire it with the secrets as environment variables (never literal values)::

    spapi = SpApiResource.from_env()            # SPAPI_LWA_CLIENT_ID, SPAPI_LWA_CLIENT_SECRET, SPAPI_LWA_REFRESH_TOKEN,
                                                # and, when set, SPAPI_ENDPOINT, SPAPI_LWA_TOKEN_URL,
                                                # SPAPI_AWS_ACCESS_KEY_ID / SPAPI_AWS_SECRET_ACCESS_KEY
    # or explicitly:
    spapi = SpApiResource(client_id=dg.EnvVar("SPAPI_LWA_CLIENT_ID"), client_secret=dg.EnvVar(...), ...)

In an asset::

    def inventory(context, spapi: SpApiResource):
        client = spapi.client_for(channel.seller_id)
        rows = client.get_inventory_summaries(channel.marketplace_id)
        return dg.MaterializeResult(metadata={**spapi.metadata(), "dagster/row_count": len(rows)})

Token cache and throttle state live in `state_dir` (default ``$SALES_CHANNEL_DATA/spapi``), shared by every process
that points there, so concurrent runs for one seller share one set of rate limits.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from resources.spapi import Counters, RetryPolicy, SpApiClient, Throttle, TokenCache, UsagePlan
from seller.config import data_dir

__all__ = ["SpApiResource", "ENV_VARS"]

ENV_VARS = {
    "client_id": "SPAPI_LWA_CLIENT_ID",
    "client_secret": "SPAPI_LWA_CLIENT_SECRET",
    "refresh_token": "SPAPI_LWA_REFRESH_TOKEN",
    "endpoint": "SPAPI_ENDPOINT",
    "token_url": "SPAPI_LWA_TOKEN_URL",
    "aws_access_key_id": "SPAPI_AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "SPAPI_AWS_SECRET_ACCESS_KEY",
}
_REQUIRED = ("client_id", "client_secret", "refresh_token")
_SECRET_FIELDS = frozenset({"client_secret", "refresh_token", "aws_secret_access_key"})


class SpApiResource(dg.ConfigurableResource):
    """Amazon Selling Partner API access for one application (LWA client) and its sellers.

    `refresh_token` authorises the default seller; `client_for(seller_id, refresh_token=...)` serves other sellers
    whose channel entries name their own credentials. Requests are SigV4-signed only when both AWS keys are set.
    """

    client_id: str
    client_secret: str
    refresh_token: str
    region: str = "na"
    endpoint: str | None = None
    token_url: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    state_dir: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = 5
    max_total_seconds: float = 120.0
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    requests_per_minute: int = 30
    requests_per_day: int = 36_000
    usage_plans: dict[str, dict[str, float]] = {}

    _clients: dict[tuple[str, str, str], SpApiClient] = PrivateAttr(default_factory=dict)
    _throttle: Throttle | None = PrivateAttr(default=None)
    _token_cache: TokenCache | None = PrivateAttr(default=None)
    _counters: Counters = PrivateAttr(default_factory=Counters)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    # Set at run time by a subclass that only learns its endpoint then (pipelines.resources.EmbeddedSpApi).
    _runtime_endpoint: str | None = PrivateAttr(default=None)

    @classmethod
    def from_env(cls, **overrides: Any) -> SpApiResource:
        """A resource wired to the default environment variables (`ENV_VARS`); optional ones only when set."""
        fields: dict[str, Any] = {name: dg.EnvVar(ENV_VARS[name]) for name in _REQUIRED}
        for name, var in ENV_VARS.items():
            if name not in _REQUIRED and os.environ.get(var):
                fields[name] = dg.EnvVar(var)
        fields.update(overrides)
        return cls(**fields)

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, ("<redacted>" if name in _SECRET_FIELDS and value else value)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.__repr_args__())
        return f"{type(self).__name__}({args})"

    # -- lifecycle ----------------------------------------------------------------------------------------------------
    @property
    def resolved_state_dir(self) -> Path:
        return Path(self.state_dir) if self.state_dir else data_dir() / "spapi"

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._ensure_shared()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()

    def _ensure_shared(self) -> None:
        with self._lock:
            if self._throttle is None:
                state = self.resolved_state_dir
                self._throttle = Throttle(
                    state / "throttle.sqlite3",
                    requests_per_minute=self.requests_per_minute,
                    requests_per_day=self.requests_per_day,
                )
                self._token_cache = TokenCache(state / "lwa-tokens.json")

    def close(self) -> None:
        """Close every client's connections (called by Dagster after the run/step)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    # -- the API ------------------------------------------------------------------------------------------------------
    def client_for(
        self, seller_id: str, *, region: str | None = None, refresh_token: str | None = None
    ) -> SpApiClient:
        """The (cached) client for one seller. `region` (a channel's `na`/`eu`/`fe`) picks that region's production
        endpoint unless `endpoint` overrides it; `refresh_token` defaults to the resource's; pass the seller's own
        token (read from the variable its channel entry names) for other sellers."""
        self._ensure_shared()
        token = refresh_token or self.refresh_token
        region = region or self.region
        key = (seller_id, region, token)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = SpApiClient(
                    seller_id=seller_id,
                    client_id=self.client_id,
                    client_secret=self.client_secret,
                    refresh_token=token,
                    region=region,
                    endpoint=self._runtime_endpoint or self.endpoint,
                    token_url=f"{self._runtime_endpoint}/auth/o2/token" if self._runtime_endpoint else self.token_url,
                    aws_access_key_id=self.aws_access_key_id or None,
                    aws_secret_access_key=self.aws_secret_access_key or None,
                    state_dir=self.resolved_state_dir,
                    connect_timeout=self.connect_timeout,
                    read_timeout=self.read_timeout,
                    retry=RetryPolicy(
                        max_attempts=self.max_attempts,
                        max_total_seconds=self.max_total_seconds,
                        backoff_base=self.backoff_base,
                        backoff_cap=self.backoff_cap,
                    ),
                    usage_plans={
                        name: UsagePlan(rate=float(plan["rate"]), burst=int(plan["burst"]))
                        for name, plan in self.usage_plans.items()
                    },
                    throttle=self._throttle,
                    token_cache=self._token_cache,
                    counters=self._counters,
                )
                self._clients[key] = client
            return client

    @property
    def counters(self) -> Counters:
        """Calls, 429s, retries and waited seconds per operation since this resource was set up."""
        return self._counters

    def metadata(self) -> dict[str, float | int]:
        """The counters as flat Dagster metadata (``spapi/<operation>/calls`` ...); never contains credentials."""
        return self._counters.as_metadata()
