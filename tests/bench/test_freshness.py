"""The freshness benchmark's arithmetic (bench.freshness): moves against our accepted prices, in the emulator's
clock. The benchmark itself (Postgres, the daemon, the emulator at Amazon's rates) is run by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from bench.freshness import measure, parse_moves, percentile, seller_counts

SELLER, US, DE = "A3DEMOSELLER01", "ATVPDKIKX0DER", "A1PA6795UKMFR9"
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC).timestamp()


def _iso(offset: float) -> str:
    return datetime.fromtimestamp(T0 + offset, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _move(offset: float, asin: str, seller: str, price: str, notified: bool, marketplace: str = US) -> dict:
    return {"at": _iso(offset), "marketplaceId": marketplace, "asin": asin, "sellerId": seller, "price": price,
            "notified": notified}  # fmt: skip


def _ours(offset: float, sku: str, seller: str = SELLER, marketplace: str = US, asin: str = "") -> dict:
    return {"at": _iso(offset), "sellerId": seller, "marketplaceId": marketplace, "sku": sku, "asin": asin,
            "price": "9.45"}  # fmt: skip


OFFERS = {
    "B0AAAAAAAA": {
        "A1COMPETITORX": (Decimal("10.00"), Decimal("0")),
        "A2COMPETITORY": (Decimal("12.00"), Decimal("1.00")),
    },
    "B0BBBBBBBB": {"A1COMPETITORX": (Decimal("20.00"), Decimal("0"))},
    "B0CCCCCCCC": {"A1COMPETITORX": (Decimal("30.00"), Decimal("3.99"))},
    "B0DDDDDDDD": {"A1COMPETITORX": (Decimal("40.00"), Decimal("0"))},
}
ASIN_OF_SKU = {"SKU-A": "B0AAAAAAAA", "SKU-B": "B0BBBBBBBB", "SKU-C": "B0CCCCCCCC", "SKU-D": "B0DDDDDDDD"}


def _result(**overrides):
    moves = parse_moves(
        [
            _move(130, "B0CCCCCCCC", "A1COMPETITORX", "28.00", True),  # listed out of order: sorted by time
            _move(100, "B0AAAAAAAA", "A2COMPETITORY", "13.00", True),  # Y rises while X stays lowest: no change
            _move(110, "B0AAAAAAAA", "A1COMPETITORX", "9.50", True),  # the lowest falls: repriced 40 s later
            _move(120, "B0BBBBBBBB", "A1COMPETITORX", "21.00", False),  # silent: never repriced
            _move(140, "B0DDDDDDDD", "A1COMPETITORX", "39.00", True),  # notified, never repriced
            _move(150, "B0DDDDDDDD", "A1COMPETITORX", "39.00", True, marketplace=DE),  # another marketplace
        ],
        US,
    )
    our_prices = [
        _ours(150, "SKU-A"),
        _ours(130, "SKU-C"),  # in the move's own second: not a reaction to it
        _ours(200, "SKU-UNMAPPED", asin="B0CCCCCCCC"),  # the emulator's ASIN when the mappings lack the SKU
        _ours(145, "SKU-D", seller="A9OTHERSELLER1"),  # another seller's price
        _ours(146, "SKU-D", marketplace=DE),  # our price elsewhere
    ]
    kwargs = {
        "seller_id": SELLER,
        "marketplace_id": US,
        "asin_of_sku": ASIN_OF_SKU,
        "offers": OFFERS,
        "newest_observation": {"B0BBBBBBBB": T0 + 60, "B0AAAAAAAA": T0},
        "ended_at": T0 + 660,
        "requests": 150,
        "throttled": 0,
        "minutes": 10.0,
        **overrides,
    }
    return measure(moves, our_prices, **kwargs)


def test_moves_against_our_accepted_prices() -> None:
    result = _result()
    assert result.moves == 5
    assert result.no_change_needed == 1
    by_asin = {(o.move.asin, o.move.seller_id): o for o in result.outcomes}
    assert not by_asin[("B0AAAAAAAA", "A2COMPETITORY")].needs_change
    assert by_asin[("B0AAAAAAAA", "A2COMPETITORY")].reaction_s is None  # never "repriced", although ours changed
    assert by_asin[("B0AAAAAAAA", "A1COMPETITORX")].reaction_s == 40
    assert by_asin[("B0CCCCCCCC", "A1COMPETITORX")].reaction_s == 70
    assert by_asin[("B0DDDDDDDD", "A1COMPETITORX")].reaction_s is None
    assert by_asin[("B0BBBBBBBB", "A1COMPETITORX")].needs_change
    assert result.reactions(True) == [40, 70] and result.reactions(False) == []
    assert result.repriced == 2
    assert result.silent_ages_min == (10.0,)  # B0BBBBBBBB: observed at +60, the bench ended at +660
    assert result.line() == (
        "freshness: notified_p50_s=40 notified_p95_s=70 silent_max_age_min=10.0 moves=5 repriced=2 throttled=0 "
        "requests_per_min=15.0"
    )


def test_a_move_replays_on_the_earlier_ones() -> None:
    """A competitor that undercut earlier is the lowest: its rise back changes the lowest price again."""
    moves = parse_moves(
        [
            _move(10, "B0BBBBBBBB", "A1COMPETITORX", "15.00", True),
            _move(20, "B0BBBBBBBB", "A1COMPETITORX", "15.00", True),  # the same price again: nothing to do
            _move(30, "B0BBBBBBBB", "A1COMPETITORX", "25.00", True),
        ],
        US,
    )
    result = measure(
        moves,
        [_ours(12, "SKU-B"), _ours(35, "SKU-B")],
        seller_id=SELLER,
        marketplace_id=US,
        asin_of_sku=ASIN_OF_SKU,
        offers=OFFERS,
        newest_observation={},
        ended_at=T0 + 60,
        requests=0,
        throttled=3,
        minutes=1.0,
    )
    assert [o.needs_change for o in result.outcomes] == [True, False, True]
    assert [o.reaction_s for o in result.outcomes] == [2, None, 5]
    assert result.line() == (
        "freshness: notified_p50_s=2 notified_p95_s=5 silent_max_age_min=n/a moves=3 repriced=2 throttled=3 "
        "requests_per_min=0.0"
    )


def test_nothing_measured_prints_n_a() -> None:
    result = measure(
        [], [], seller_id=SELLER, marketplace_id=US, asin_of_sku={}, offers={}, newest_observation={},
        ended_at=T0, requests=0, throttled=0, minutes=0.0,
    )  # fmt: skip
    assert result.line() == (
        "freshness: notified_p50_s=n/a notified_p95_s=n/a silent_max_age_min=n/a moves=0 repriced=0 throttled=0 "
        "requests_per_min=0.0"
    )


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [([], 50, None), ([7.0], 95, 7.0), ([1, 2, 3, 4], 50, 2), ([1, 2, 3, 4], 95, 4), (list(range(1, 101)), 95, 95)],
)
def test_percentile_is_nearest_rank(values: list[float], p: float, expected: float | None) -> None:
    assert percentile(values, p) == expected


def test_seller_counts_are_differences_of_the_emulator_counters() -> None:
    before = {
        "requests": {SELLER: {"getItemOffersBatch": 4, "patchListingsItem": 2}, "A9OTHERSELLER1": {"getOrders": 9}},
        "throttled": {SELLER: {"bucket": 1, "cap": 0}},
    }
    after = {
        "requests": {SELLER: {"getItemOffersBatch": 10, "patchListingsItem": 2, "createFeed": 1}},
        "throttled": {SELLER: {"bucket": 1, "cap": 2}, "A9OTHERSELLER1": {"bucket": 5, "cap": 0}},
    }
    assert seller_counts(before, after, SELLER) == ({"getItemOffersBatch": 6, "createFeed": 1}, 2)
    assert seller_counts({}, after, SELLER) == ({"getItemOffersBatch": 10, "patchListingsItem": 2, "createFeed": 1}, 3)
