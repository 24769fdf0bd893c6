"""A channel's status from the facts its runs left behind: connection health, how long ago each sync step last
succeeded, and the one-line verdict the `channel_status` asset shows first. Dagster-free: `assets.status` gathers
the facts (the Dagster instance's materializations and step failures, the channel's sync_history, submissions and
offer_snapshots) and hands them here.

Verdicts, worst first: `ERROR` (the last SP-API call failed: the grant revoked, access refused, another error),
`STALE` (a step has not succeeded within its interval), `THROTTLED` (the last call was stopped by Amazon's rate
limits), `NO DATA` (the channel never synced), `OK`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "INTERVAL_ENV_VARS",
    "CallOutcome",
    "Facts",
    "Intervals",
    "Status",
    "age_text",
    "assess",
    "classify_error",
    "freshness",
    "health_text",
    "latest_call",
]

# Outcomes of one SP-API call (or of the step that made it).
OK, THROTTLED, REVOKED, UNAUTHORIZED, ERROR = "ok", "throttled", "ReauthorizationRequired", "Unauthorized", "error"

# The client's exception classes (resources.spapi) and the resource's grant errors, by name: a step failure whose
# error chain holds one of them is the outcome of an SP-API call; any other failure says nothing about the connection.
_THROTTLED = {"Throttled", "QuotaExceeded"}
_UNAUTHORIZED = {"Unauthorized", "MissingSellerGrant", "LwaSecretError"}
_OTHER = {
    "SpApiError",
    "InvalidInput",
    "ResourceNotFound",
    "ServerError",
    "SpApiTimeout",
    "Timeout",  # SpApiTimeout's code, which starts its message
    "LwaError",
    "FeedError",
}

# Each interval's environment variable (minutes), read when a status or check is evaluated.
INTERVAL_ENV_VARS = {
    "prices_minutes": "SALES_CHANNEL_STALE_PRICES_MINUTES",
    "inventory_minutes": "SALES_CHANNEL_STALE_INVENTORY_MINUTES",
    "offers_minutes": "SALES_CHANNEL_STALE_OFFERS_MINUTES",
    "orders_minutes": "SALES_CHANNEL_STALE_ORDERS_MINUTES",
}


@dataclass(frozen=True)
class Intervals:
    """How old each step's last success may be before the channel is stale (minutes). The defaults are twice the
    schedules' cadences (prices every 15 min, the offers pull and the order poll every 5 min, which 15 min allows
    two missed runs of) and two hours for stock (hourly)."""

    prices_minutes: float = 30
    inventory_minutes: float = 120
    offers_minutes: float = 15
    orders_minutes: float = 15

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Intervals:
        """The defaults, overridden by `INTERVAL_ENV_VARS` that are set (a number of minutes > 0)."""
        environ = os.environ if environ is None else environ
        values: dict[str, float] = {}
        for name, var in INTERVAL_ENV_VARS.items():
            text = (environ.get(var) or "").strip()
            if not text:
                continue
            try:
                value = float(text)
            except ValueError:
                value = 0.0
            if value <= 0:
                raise ValueError(f"{var} must be a number of minutes > 0, not {text!r}")
            values[name] = value
        return cls(**values)


@dataclass(frozen=True)
class CallOutcome:
    """The outcome of an SP-API call at `at`: `ok`, `throttled`, `ReauthorizationRequired`, `Unauthorized` or
    `error`; `source` names the step (or ledger) that recorded it, `detail` what went wrong (no secrets: the client
    redacts them)."""

    at: datetime
    outcome: str
    source: str
    detail: str = ""


def classify_error(class_names: Iterable[str], message: str) -> str | None:
    """The call outcome of a failure whose exception chain has these class names, or None when it is not an SP-API
    failure. LWA's `invalid_grant` for the refresh token is `ReauthorizationRequired` whatever wraps it."""
    names = set(class_names)
    if "ReauthorizationRequired" in names or "invalid_grant" in message:
        return REVOKED
    if names & _THROTTLED:
        return THROTTLED
    if names & _UNAUTHORIZED:
        return UNAUTHORIZED
    if names & _OTHER:
        return ERROR
    return None


def latest_call(outcomes: Iterable[CallOutcome | None]) -> CallOutcome | None:
    """The most recent outcome (the last call's); on equal times a failure wins over `ok`."""
    known = [o for o in outcomes if o is not None]
    return max(known, key=lambda o: (o.at, o.outcome != OK), default=None)


def age_text(minutes: float) -> str:
    """`47 min`, `3 h 5 min`, `2 d 4 h`."""
    whole = int(minutes)
    if whole < 60:
        return f"{whole} min"
    hours, rest = divmod(whole, 60)
    if hours < 24:
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _minutes(since: datetime | None, now: datetime) -> float | None:
    return None if since is None else max(0.0, (now - since).total_seconds() / 60)


def freshness(last: datetime | None, now: datetime, max_minutes: float, what: str) -> tuple[bool, str]:
    """Whether `what` last succeeded within `max_minutes` of `now`, and the sentence that says so."""
    age = _minutes(last, now)
    if age is None:
        return False, f"{what}: never"
    limit = age_text(max_minutes)
    if age > max_minutes:
        return False, f"{what} {age_text(age)} ago (expected within {limit})"
    return True, f"{what} {age_text(age)} ago (within {limit})"


@dataclass(frozen=True)
class Facts:
    """What the runs recorded for one channel. Times are timezone-aware; None is never."""

    channel: str
    now: datetime
    last_call: CallOutcome | None = None
    fba_pull: datetime | None = None
    offers_pull: datetime | None = None
    price_push: datetime | None = None
    quantity_push: datetime | None = None
    order_poll: datetime | None = None
    orders_defined: bool = False  # the code location has an `orders` asset (the order poll)
    offers_expected: bool = True  # the offers pull is scheduled for the channel (it is enabled)
    open_feeds: Mapping[str, datetime] = field(default_factory=dict)  # feed id (or submission) -> recorded at
    errors_by_code: Mapping[str, int] = field(default_factory=dict)  # SKUs whose latest outcome is an error
    notification_coverage: Any = None  # the order poll's figure; None: not available
    offer_age_p50_minutes: float | None = None
    offer_age_p95_minutes: float | None = None

    @property
    def synced_ever(self) -> bool:
        steps = (self.fba_pull, self.offers_pull, self.price_push, self.quantity_push, self.order_poll)
        return self.last_call is not None or any(t is not None for t in steps)


@dataclass(frozen=True)
class Status:
    """`level` (ERROR, STALE, THROTTLED, NO DATA, OK), the one-line `line`, and every problem found."""

    level: str
    line: str
    problems: tuple[str, ...] = ()


_CALL_TEXT = {
    REVOKED: "grant revoked (ReauthorizationRequired): the seller must re-authorize the app in Seller Central",
    UNAUTHORIZED: "access refused (Unauthorized)",
    THROTTLED: "throttled by Amazon",
}


def health_text(call: CallOutcome | None, now: datetime) -> str:
    """Connection health as shown: `ok`, `throttled`, `ReauthorizationRequired`, `Unauthorized` or `error`, with
    the step and how long ago."""
    if call is None:
        return "no SP-API call recorded"
    age = _minutes(call.at, now) or 0.0
    text = f"{call.outcome} ({call.source}, {age_text(age)} ago)"
    return f"{text}: {call.detail}" if call.detail and call.outcome != OK else text


def _stale(facts: Facts, intervals: Intervals) -> list[str]:
    checks: list[tuple[str, datetime | None, float]] = [
        ("prices not pushed", facts.price_push, intervals.prices_minutes),
        ("stock not pushed", facts.quantity_push, intervals.inventory_minutes),
        ("FBA stock not pulled", facts.fba_pull, intervals.inventory_minutes),
    ]
    if facts.offers_expected:
        checks.append(("offers not pulled", facts.offers_pull, intervals.offers_minutes))
    if facts.orders_defined:
        checks.append(("orders not polled", facts.order_poll, intervals.orders_minutes))
    problems = []
    for what, last, limit in checks:
        age = _minutes(last, facts.now)
        if age is None:
            problems.append(f"{what.replace(' not ', ' never ')}")
        elif age > limit:
            problems.append(f"{what} for {age_text(age)}")
    for feed, recorded in sorted(facts.open_feeds.items(), key=lambda item: item[1]):
        age = _minutes(recorded, facts.now) or 0.0
        if age > intervals.prices_minutes:
            problems.append(f"feed {feed} open for {age_text(age)}")
    return problems


def assess(facts: Facts, intervals: Intervals) -> Status:
    """The channel's verdict: the worst level first, then every problem, in one line."""
    if not facts.synced_ever:
        return Status("NO DATA", "NO DATA: the channel has never synced")
    call = facts.last_call
    problems: list[str] = []
    level = "OK"
    if call is not None and call.outcome in (REVOKED, UNAUTHORIZED, ERROR):
        level = "ERROR"
        problems.append(_CALL_TEXT.get(call.outcome) or f"{call.source} failed: {call.detail or 'error'}")
    stale = _stale(facts, intervals)
    if stale and level == "OK":
        level = "STALE"
    problems.extend(stale)
    if call is not None and call.outcome == THROTTLED:
        level = "THROTTLED" if level == "OK" else level
        problems.append(f"{_CALL_TEXT[THROTTLED]} in {call.source}")
    if level != "OK":
        return Status(level, f"{level}: {'; '.join(problems)}", tuple(problems))
    parts = [
        f"prices pushed {age_text(_minutes(facts.price_push, facts.now) or 0)} ago",
        f"stock {age_text(_minutes(facts.quantity_push, facts.now) or 0)} ago",
    ]
    errors = sum(facts.errors_by_code.values())
    if errors:
        parts.append(f"{errors} SKU(s) in error")
    return Status("OK", "OK: " + ", ".join(parts))
