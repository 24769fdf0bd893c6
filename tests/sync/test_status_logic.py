"""The channel verdict from gathered facts (sync.status), without Dagster: fresh, stale, revoked grant, throttled,
never synced, and the intervals' configuration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sync.status import CallOutcome, Facts, Intervals, assess, classify_error, freshness, latest_call

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def fresh(**changes) -> Facts:
    """A channel whose every step succeeded a few minutes ago, its last call ok."""
    base = {
        "channel": "us",
        "now": NOW,
        "last_call": CallOutcome(ago(2), "ok", "listings_submission"),
        "fba_pull": ago(20),
        "offers_pull": ago(4),
        "price_push": ago(3),
        "quantity_push": ago(20),
    }
    return Facts(**{**base, **changes})


def test_a_fresh_channel_is_ok_with_its_push_ages():
    status = assess(fresh(errors_by_code={"InvalidInput": 2}), Intervals())
    assert status.level == "OK"
    assert status.line == "OK: prices pushed 3 min ago, stock 20 min ago, 2 SKU(s) in error"


def test_prices_not_pushed_within_the_interval_is_stale_and_says_for_how_long():
    status = assess(fresh(price_push=ago(47)), Intervals())
    assert status.line == "STALE: prices not pushed for 47 min"
    # the same age within a longer configured interval is fine
    assert assess(fresh(price_push=ago(47)), Intervals(prices_minutes=60)).level == "OK"


def test_every_stale_step_is_listed_and_an_old_open_feed_too():
    facts = fresh(quantity_push=ago(185), fba_pull=ago(185), offers_pull=None, open_feeds={"F-9": ago(52)})
    assert assess(facts, Intervals()).line == (
        "STALE: stock not pushed for 3 h 5 min; FBA stock not pulled for 3 h 5 min; offers never pulled; "
        "feed F-9 open for 52 min"
    )


def test_offers_and_orders_count_only_when_expected():
    assert assess(fresh(offers_pull=None, offers_expected=False), Intervals()).level == "OK"
    assert assess(fresh(orders_defined=True), Intervals()).line == "STALE: orders never polled"
    assert assess(fresh(orders_defined=True, order_poll=ago(4)), Intervals()).level == "OK"


def test_a_revoked_grant_is_an_error_first_even_when_the_data_is_fresh():
    revoked = CallOutcome(ago(1), "ReauthorizationRequired", "fba_inventory", "LWA refused the refresh token")
    status = assess(fresh(last_call=revoked), Intervals())
    assert status.level == "ERROR"
    assert status.line.startswith("ERROR: grant revoked (ReauthorizationRequired)")
    # and with stale pushes, the error comes first, the staleness after it
    line = assess(fresh(last_call=revoked, price_push=ago(125)), Intervals()).line
    assert line.startswith("ERROR: grant revoked") and line.endswith("; prices not pushed for 2 h 5 min")


def test_a_later_successful_call_clears_the_error():
    revoked = CallOutcome(ago(30), "ReauthorizationRequired", "fba_inventory")
    ok = CallOutcome(ago(5), "ok", "enable_channel")
    assert latest_call([revoked, None, ok]) == ok
    assert latest_call([ok, CallOutcome(ago(5), "throttled", "offer_observations")]).outcome == "throttled"
    assert latest_call([]) is None


def test_a_throttled_last_call_is_shown_but_staleness_wins():
    throttled = CallOutcome(ago(1), "throttled", "offer_observations", "QuotaExceeded in getItemOffersBatch")
    assert (
        assess(fresh(last_call=throttled), Intervals()).line == "THROTTLED: throttled by Amazon in offer_observations"
    )
    stale = assess(fresh(last_call=throttled, price_push=ago(40)), Intervals())
    assert stale.line == "STALE: prices not pushed for 40 min; throttled by Amazon in offer_observations"


def test_a_channel_that_never_synced_has_no_data():
    assert assess(Facts(channel="de", now=NOW), Intervals()).line == "NO DATA: the channel has never synced"


@pytest.mark.parametrize(
    ("names", "message", "outcome"),
    [
        (["DagsterExecutionStepExecutionError", "ReauthorizationRequired"], "LWA refused", "ReauthorizationRequired"),
        (["Failure", "Unauthorized"], "seller did not authorize (invalid_grant: revoked)", "ReauthorizationRequired"),
        (["DagsterExecutionStepExecutionError", "QuotaExceeded"], "429", "throttled"),
        (["Throttled"], "daily cap spent", "throttled"),
        (["Failure", "Unauthorized"], "403", "Unauthorized"),
        (["DagsterExecutionStepExecutionError", "MissingSellerGrant"], "set SPAPI_LWA_REFRESH_TOKEN_X", "Unauthorized"),
        (["DagsterExecutionStepExecutionError", "ServerError"], "503", "error"),
        (["Timeout"], "no answer", "error"),
        (["DagsterExecutionStepExecutionError", "IOException"], "Could not set lock on file", None),
    ],
)
def test_failures_are_classified_by_the_client_exception_they_carry(names, message, outcome):
    assert classify_error(names, message) == outcome


def test_freshness_sentence_and_verdict():
    assert freshness(ago(31), NOW, 30, "prices pushed") == (False, "prices pushed 31 min ago (expected within 30 min)")
    assert freshness(ago(29), NOW, 30, "prices pushed") == (True, "prices pushed 29 min ago (within 30 min)")
    assert freshness(None, NOW, 30, "prices pushed") == (False, "prices pushed: never")


def test_intervals_come_from_the_environment():
    assert Intervals.from_env({}) == Intervals(30, 120, 15, 15)
    env = {"SALES_CHANNEL_STALE_PRICES_MINUTES": "45", "SALES_CHANNEL_STALE_INVENTORY_MINUTES": " 90 "}
    assert Intervals.from_env(env) == Intervals(prices_minutes=45, inventory_minutes=90)
    with pytest.raises(ValueError, match="SALES_CHANNEL_STALE_OFFERS_MINUTES must be a number of minutes > 0"):
        Intervals.from_env({"SALES_CHANNEL_STALE_OFFERS_MINUTES": "0"})
