"""`SpApiResource`: the Dagster face of the SP-API client (`resources.spapi`).

Wire it with the secrets as environment variables (never literal values)::

    spapi = SpApiResource.from_env()            # SPAPI_LWA_CLIENT_ID, SPAPI_LWA_CLIENT_SECRET, SPAPI_LWA_REFRESH_TOKEN,
                                                # and, when set, SPAPI_ENDPOINT, SPAPI_LWA_TOKEN_URL,
                                                # SPAPI_AWS_ACCESS_KEY_ID / SPAPI_AWS_SECRET_ACCESS_KEY,
                                                # SPAPI_REQUESTS_PER_MINUTE / SPAPI_REQUESTS_PER_DAY (module caps)
    # or explicitly:
    spapi = SpApiResource(client_id=dg.EnvVar("SPAPI_LWA_CLIENT_ID"), client_secret=dg.EnvVar(...), ...)

In an asset::

    def inventory(context, spapi: SpApiResource):
        client = spapi.client_for(channel.seller_id)
        rows = client.get_inventory_summaries(channel.marketplace_id)
        return dg.MaterializeResult(metadata={**spapi.metadata(), "dagster/row_count": len(rows)})

Or, instead of the three `SPAPI_LWA_*` variables, name an AWS Secrets Manager secret whose SecretString is
``{"client_id": ..., "client_secret": ..., "refresh_token": ...}``::

    spapi = SpApiResource.from_env()            # with SPAPI_LWA_SECRET_ID set (AWS_REGION and
                                                # AWS_ENDPOINT_URL_SECRETS_MANAGER when set say where to read it)

The secret is read once when Dagster sets the resource up for a run (never at code-location load); its values stay
out of the resource's config, reprs, logs, metadata and exception messages.

Token cache and throttle state live in `state_dir` (default ``$SALES_CHANNEL_DATA/spapi``), shared by every process
that points there, so concurrent runs for one seller share one set of rate limits. In the deployed mode
(`SALES_CHANNEL_STATE`) the throttle lives in Postgres and access tokens in the run's memory (`spapi.shared_state`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from resources.spapi import Counters, RetryPolicy, SpApiClient, Throttle, TokenCache, UsagePlan, shared_state
from seller.config import ChannelConfigError, config_path, data_dir, load_channels

__all__ = [
    "SpApiResource",
    "CAP_ENV_VARS",
    "ENV_VARS",
    "LwaSecretError",
    "MissingSellerGrant",
    "cap_env_fields",
    "lwa_env_fields",
    "read_lwa_secret",
]

ENV_VARS = {
    "client_id": "SPAPI_LWA_CLIENT_ID",
    "client_secret": "SPAPI_LWA_CLIENT_SECRET",
    "refresh_token": "SPAPI_LWA_REFRESH_TOKEN",
    "endpoint": "SPAPI_ENDPOINT",
    "token_url": "SPAPI_LWA_TOKEN_URL",
    "aws_access_key_id": "SPAPI_AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "SPAPI_AWS_SECRET_ACCESS_KEY",
    "lwa_secret_id": "SPAPI_LWA_SECRET_ID",
    "lwa_secret_region": "AWS_REGION",
    "lwa_secret_endpoint_url": "AWS_ENDPOINT_URL_SECRETS_MANAGER",
}
SELLER_TOKEN_ENV_PREFIX = "SPAPI_LWA_REFRESH_TOKEN_"  # + seller id: that seller's own authorization
# The Sales Channel module's caps per seller (requests/minute, requests/day; 0 = off), when set: plain numbers read
# when the resource is built, not secrets, so that no code path ever sees an unresolved (zero) cap.
CAP_ENV_VARS = {"requests_per_minute": "SPAPI_REQUESTS_PER_MINUTE", "requests_per_day": "SPAPI_REQUESTS_PER_DAY"}
_REQUIRED = ("client_id", "client_secret", "refresh_token")
_FROM_SECRET = ("lwa_secret_id", "lwa_secret_region", "lwa_secret_endpoint_url")
_SECRET_FIELDS = frozenset({"client_secret", "refresh_token", "aws_secret_access_key"})


class LwaSecretError(RuntimeError):
    """The LWA credentials could not be read from Secrets Manager. The message names the secret and what is wrong,
    never a value of it."""


class MissingSellerGrant(RuntimeError):
    """A seller has no LWA grant of its own and the default refresh token cannot be its: nothing was sent. The message
    names the variable to set, never a token."""


@contextmanager
def _botocore_quiet() -> Iterator[None]:
    """botocore logs every response body at DEBUG (`botocore.parsers`): keep the secret's value out of the logs."""
    names = ["botocore", *(name for name in logging.root.manager.loggerDict if name.startswith("botocore."))]
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        if logger.level < logging.INFO:
            logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def read_lwa_secret(
    secret_id: str, *, region_name: str | None = None, endpoint_url: str | None = None
) -> dict[str, str]:
    """The LWA credentials held by a Secrets Manager secret (name or ARN): its SecretString must be a JSON object with
    `client_id`, `client_secret` and `refresh_token`. The region is `region_name`, else boto3's (AWS_DEFAULT_REGION,
    the profile), else the ARN's."""
    from botocore.exceptions import BotoCoreError, ClientError
    from dagster_aws.secretsmanager.secrets import construct_secretsmanager_client

    if region_name is None and secret_id.startswith("arn:") and secret_id.count(":") >= 6:
        region_name = secret_id.split(":")[3] or None
    where = f"Secrets Manager secret {secret_id!r}"
    try:
        client = construct_secretsmanager_client(max_attempts=3, region_name=region_name, endpoint_url=endpoint_url)
        with _botocore_quiet():
            answer = client.get_secret_value(SecretId=secret_id)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise LwaSecretError(
            f"LWA credentials: {where} could not be read: {error.get('Code')}: {error.get('Message')} "
            "(check SPAPI_LWA_SECRET_ID, the region and the secretsmanager:GetSecretValue permission)"
        ) from None
    except BotoCoreError as exc:
        raise LwaSecretError(f"LWA credentials: {where} could not be read: {exc}") from None
    text = answer.get("SecretString")
    if text is None:
        raise LwaSecretError(f"LWA credentials: {where} has no SecretString (a binary secret is not supported)")
    try:
        document = json.loads(text)
    except ValueError:
        # The decoder's exception carries the whole document: never chain it.
        document = None
    if not isinstance(document, dict):
        raise LwaSecretError(
            f"LWA credentials: {where} must hold a JSON object with {', '.join(_REQUIRED)}; it does not"
        )
    missing = [name for name in _REQUIRED if not isinstance(document.get(name), str) or not document[name]]
    if missing:
        raise LwaSecretError(f"LWA credentials: {where} lacks (or has a non-string) {', '.join(missing)}")
    return {name: document[name] for name in _REQUIRED}


def lwa_env_fields(defaults: dict[str, str] | None = None) -> dict[str, Any]:
    """The resource's LWA fields from the environment: with `SPAPI_LWA_SECRET_ID` set, the secret's id and where to
    read it (the `SPAPI_LWA_*` credentials are then ignored); otherwise the three `SPAPI_LWA_*` variables, each
    falling back to `defaults` when given and unset (required when not). Values are `dg.EnvVar`s, resolved at run
    time."""
    if os.environ.get(ENV_VARS["lwa_secret_id"]):
        return {name: dg.EnvVar(ENV_VARS[name]) for name in _FROM_SECRET if os.environ.get(ENV_VARS[name])}
    if defaults is None:
        return {name: dg.EnvVar(ENV_VARS[name]) for name in _REQUIRED}
    return {name: dg.EnvVar(ENV_VARS[name]) if os.environ.get(ENV_VARS[name]) else defaults[name] for name in _REQUIRED}


def cap_env_fields() -> dict[str, int]:
    """`requests_per_minute` / `requests_per_day` from `SPAPI_REQUESTS_PER_MINUTE` / `SPAPI_REQUESTS_PER_DAY`, for
    those set (a whole number >= 0; 0 switches the cap off)."""
    fields: dict[str, int] = {}
    for name, var in CAP_ENV_VARS.items():
        text = os.environ.get(var, "").strip()
        if not text:
            continue
        try:
            value = int(text)
        except ValueError:
            value = -1
        if value < 0:
            raise ValueError(f"{var} must be a whole number >= 0 (0 switches the cap off), not {text!r}")
        fields[name] = value
    return fields


class SpApiResource(dg.ConfigurableResource):
    """Amazon Selling Partner API access for one application (LWA client) and its sellers.

    `refresh_token` authorises the one seller of a single-seller channels config; with several sellers, each needs
    its own grant (`SPAPI_LWA_REFRESH_TOKEN_<SELLER_ID>` or `client_for(seller_id, refresh_token=...)`). Requests
    are SigV4-signed only when both AWS keys are set.
    The LWA credentials are either the three fields or, with `lwa_secret_id`, the Secrets Manager secret of that name
    or ARN (read at set-up from `lwa_secret_region` / `lwa_secret_endpoint_url`, or boto3's defaults); not both.
    """

    client_id: str | None = None
    client_secret: str | None = None
    refresh_token: str | None = None
    lwa_secret_id: str | None = None
    lwa_secret_region: str | None = None
    lwa_secret_endpoint_url: str | None = None
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
    feed_window_seconds: float | None = None  # None: Amazon's window per feed type; tests and benchmarks shrink it
    usage_plans: dict[str, dict[str, float]] = {}

    _clients: dict[tuple[str, str, str], SpApiClient] = PrivateAttr(default_factory=dict)
    _throttle: Throttle | None = PrivateAttr(default=None)
    _token_cache: TokenCache | None = PrivateAttr(default=None)
    _counters: Counters = PrivateAttr(default_factory=Counters)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _lwa: dict[str, str] | None = PrivateAttr(default=None)
    # Set at run time by a subclass that only learns its endpoint then (pipelines.resources.EmbeddedSpApi).
    _runtime_endpoint: str | None = PrivateAttr(default=None)

    @classmethod
    def from_env(cls, **overrides: Any) -> SpApiResource:
        """A resource wired to the default environment variables (`ENV_VARS`, `CAP_ENV_VARS`); optional ones only when
        set. The LWA credentials come from `SPAPI_LWA_SECRET_ID`'s secret when that is set, else from `SPAPI_LWA_*`."""
        fields: dict[str, Any] = lwa_env_fields()
        for name, var in ENV_VARS.items():
            if name not in _REQUIRED and name not in _FROM_SECRET and os.environ.get(var):
                fields[name] = dg.EnvVar(var)
        fields.update(cap_env_fields())
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
        self._lwa_credentials()
        if self.lwa_secret_id and context.log is not None:
            context.log.info(f"SP-API: LWA credentials read from Secrets Manager secret {self.lwa_secret_id!r}")

    def _lwa_credentials(self) -> dict[str, str]:
        """`client_id`, `client_secret` and `refresh_token`: the fields, or the secret's (read once)."""
        with self._lock:
            if self._lwa is None:
                self._lwa = self._read_lwa()
            return self._lwa

    def _read_lwa(self) -> dict[str, str]:
        given = [name for name in _REQUIRED if getattr(self, name)]
        if self.lwa_secret_id:
            if given:
                raise LwaSecretError(
                    f"SpApiResource: both lwa_secret_id ({self.lwa_secret_id!r}) and {', '.join(given)} are set; "
                    "give the LWA credentials one way"
                )
            return read_lwa_secret(
                self.lwa_secret_id, region_name=self.lwa_secret_region, endpoint_url=self.lwa_secret_endpoint_url
            )
        if len(given) < len(_REQUIRED):
            missing = ", ".join(name for name in _REQUIRED if name not in given)
            raise ValueError(
                f"SpApiResource needs client_id, client_secret and refresh_token (SPAPI_LWA_*) or lwa_secret_id "
                f"(SPAPI_LWA_SECRET_ID); missing: {missing}"
            )
        return {name: str(getattr(self, name)) for name in _REQUIRED}

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()

    def _ensure_shared(self) -> None:
        with self._lock:
            if self._throttle is None:
                self._throttle, self._token_cache = shared_state(
                    self.resolved_state_dir,
                    requests_per_minute=self.requests_per_minute,
                    requests_per_day=self.requests_per_day,
                    feed_window_seconds=self.feed_window_seconds,
                )

    def close(self) -> None:
        """Close every client's connections (called by Dagster after the run/step)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    # -- the API ------------------------------------------------------------------------------------------------------
    def client_for(self, seller_id: str, *, region: str | None = None, refresh_token: str | None = None) -> SpApiClient:
        """The (cached) client for one seller. `region` (a channel's `na`/`eu`/`fe`) picks that region's production
        endpoint unless `endpoint` overrides it. Each seller authorizes the application with its own refresh token:
        `refresh_token`, else `SPAPI_LWA_REFRESH_TOKEN_<SELLER_ID>` from the environment, else the resource's, which
        is the grant of a channels config's only seller: with several sellers configured it could be any one's, and
        grant-scoped calls would act on that account, so a seller without its own grant raises `MissingSellerGrant`
        before anything is sent."""
        self._ensure_shared()
        lwa = self._lwa_credentials()
        token = refresh_token or os.environ.get(f"{SELLER_TOKEN_ENV_PREFIX}{seller_id}")
        if not token:
            self._check_default_grant(seller_id)
            token = lwa["refresh_token"]
        region = region or self.region
        key = (seller_id, region, token)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = SpApiClient(
                    seller_id=seller_id,
                    client_id=lwa["client_id"],
                    client_secret=lwa["client_secret"],
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

    @staticmethod
    def _check_default_grant(seller_id: str) -> None:
        """The resource's refresh token may serve `seller_id` only when the channels config lists that seller alone."""
        variable = f"{SELLER_TOKEN_ENV_PREFIX}{seller_id}"
        try:
            sellers = sorted({channel.seller_id for channel in load_channels().values()})
        except ChannelConfigError as exc:
            raise MissingSellerGrant(
                f"seller {seller_id}: set {variable} to its LWA refresh token; without it the default "
                f"{ENV_VARS['refresh_token']} serves only the one seller of the channels config, which could not "
                f"be read ({exc})"
            ) from None
        if sellers != [seller_id]:
            raise MissingSellerGrant(
                f"seller {seller_id} has no LWA grant of its own: set {variable} to its refresh token. The default "
                f"{ENV_VARS['refresh_token']} serves only a channels config with exactly one seller; "
                f"{config_path()} lists {', '.join(sellers) or 'none'}. Nothing was sent for this seller."
            )

    @property
    def counters(self) -> Counters:
        """Calls, 429s, retries and waited seconds per operation since this resource was set up."""
        return self._counters

    def metadata(self) -> dict[str, float | int]:
        """The counters as flat Dagster metadata (``spapi/<operation>/calls`` ...); never contains credentials."""
        return self._counters.as_metadata()
