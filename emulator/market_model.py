"""The market model (`--market`, and `bench.market` in process): competitors with named repricing strategies, the Buy
Box award re-evaluated after every price change, suppression, Poisson demand going to the winner, and the fee model
that turns a sale into a profit. A documented model (emulator/README.md, "Market model"), not Amazon's algorithm.

Pure logic on integer minor units and the model's own simulated clock (epoch seconds): `MarketModel.advance_to(t)`
plays every event up to `t` in time order. It knows nothing of HTTP or of `EmulatorState`; the emulator wires it
through two callbacks (a competitor's new price, a sale) and tells it about the seller's accepted prices with
`set_offer`. All randomness comes from generators seeded by (seed, market, seller, purpose), so a market replays
identically whatever the seller's own prices do to it: the same orders arrive at the same times, and a random walk
draws the same steps.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from emulator.fees.models import CLOSING_FEE, FBA_FEES, MEDIA_TYPES, referral_terms

__all__ = [
    "ELIGIBLE_MIN_RATING",
    "STRATEGIES",
    "MarketModel",
    "Offer",
    "Sale",
    "award",
    "fees_minor",
    "fee_parts",
    "next_price",
    "score_e4",
]

STRATEGIES = ("static", "match_lowest", "undercut_bot", "stay_above", "random_walk")
ELIGIBLE_MIN_RATING = 70  # percent; a competitor below it is never awarded the Buy Box
FBA_ADVANTAGE_E4 = 300  # 3 % off the landed price in the score
FEEDBACK_ADVANTAGE_E4 = 100  # 1 % off for a feedback rating of 95 % or more
FEEDBACK_ADVANTAGE_RATING = 95
SUPPRESS_ABOVE_E1 = 12  # suppressed while the best eligible landed price > 1.2 × the reference price
HISTORY_HOURS = 24
HOUR = 3600.0


@dataclass
class Offer:
    """One offer on one market (a marketplace's ASIN). `strategy` None: priced from outside (the seller's own offer,
    from its accepted prices). Competitor strategies use `floor_minor`, `ceiling_minor`, `step_minor` (the undercut
    step; stay_above's margin; random_walk's largest move in hundredths of a percent) and move every `interval_s`."""

    seller_id: str
    price_minor: int
    shipping_minor: int = 0
    fba: bool = False
    feedback_rating: int | None = 95
    quantity: int = 1
    strategy: str | None = None
    floor_minor: int = 1
    ceiling_minor: int = 0
    step_minor: int = 1
    interval_s: float = 0.0
    cost_minor: int | None = None  # the seller's unit cost; profit is counted for offers that have one
    product_type: str = "PRODUCT"
    size_tier: str = "small_standard"

    @property
    def landed(self) -> int:
        return self.price_minor + self.shipping_minor


@dataclass(frozen=True)
class Sale:
    at: float
    market: Hashable
    seller_id: str
    price_minor: int
    fees_minor: int
    profit_minor: int | None  # None: the seller's cost is unknown


# --- the award ---------------------------------------------------------------------------------------------------
def eligible(offer: Offer) -> bool:
    return offer.quantity > 0 and (offer.feedback_rating is None or offer.feedback_rating >= ELIGIBLE_MIN_RATING)


def score_e4(offer: Offer) -> int:
    """The award score × 10000 (lower wins): landed × (10000 − 300·[FBA] − 100·[feedback ≥ 95]), exact."""
    advantage = FBA_ADVANTAGE_E4 * offer.fba
    if offer.feedback_rating is not None and offer.feedback_rating >= FEEDBACK_ADVANTAGE_RATING:
        advantage += FEEDBACK_ADVANTAGE_E4
    return offer.landed * (10_000 - advantage)


def _award_key(offer: Offer) -> tuple[int, int, int, str]:
    rating = -1 if offer.feedback_rating is None else offer.feedback_rating
    return (score_e4(offer), 0 if offer.fba else 1, -rating, offer.seller_id)


def suppressed(best_landed: int, reference_x2: int | None) -> bool:
    """`reference_x2`: twice the reference price (the median of an even count is a half-unit); None: no history."""
    return reference_x2 is not None and best_landed * 10 * 2 > SUPPRESS_ABOVE_E1 * reference_x2


def award(offers: Iterable[Offer], reference_x2: int | None = None) -> Offer | None:
    """The Buy Box winner among the eligible offers, or None (no eligible offer, or suppressed)."""
    candidates = [o for o in offers if eligible(o)]
    if not candidates:
        return None
    if suppressed(min(o.landed for o in candidates), reference_x2):
        return None
    return min(candidates, key=_award_key)


def median_x2(values: Iterable[int]) -> int | None:
    """Twice the median (exact: the sum of the two middle values for an even count); None when empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    mid = len(ordered) // 2
    return 2 * ordered[mid] if len(ordered) % 2 else ordered[mid - 1] + ordered[mid]


# --- competitor strategies ------------------------------------------------------------------------------------------
def next_price(offer: Offer, lowest_other: int | None, rng: random.Random) -> int:
    """The price a competitor's strategy sets at its tick; `lowest_other`: the lowest landed price of the other
    in-stock offers on the market (None: it is alone)."""
    s = offer.strategy
    if s == "random_walk":
        move = rng.randint(-offer.step_minor, offer.step_minor)  # hundredths of a percent
        moved = offer.price_minor + offer.price_minor * move // 10_000
        return max(offer.floor_minor, min(offer.ceiling_minor, moved))
    if s in (None, "static"):
        return offer.price_minor
    if lowest_other is None:
        return offer.ceiling_minor
    if s == "match_lowest":
        return max(offer.floor_minor, min(offer.ceiling_minor, lowest_other - offer.shipping_minor))
    if s == "undercut_bot":
        target = lowest_other - offer.step_minor - offer.shipping_minor
        return offer.ceiling_minor if target < offer.floor_minor else min(target, offer.ceiling_minor)
    if s == "stay_above":
        return max(offer.floor_minor, min(offer.ceiling_minor, lowest_other + offer.step_minor - offer.shipping_minor))
    raise ValueError(f"unknown strategy {s!r}")


# --- fees: the emulator's one fee model (emulator/fees/models.py, what getMyFeesEstimates answers) ---------------
def fee_parts(product_type: str, fba: bool, size_tier: str) -> tuple[int, int]:
    """(referral rate × 10000, fixed fees in minor units: FBA fulfilment fee of the size tier + media closing fee),
    for a currency with 2 decimals."""
    fixed = Decimal(0)
    if fba:
        fixed += next(fee for tier, _, fee in FBA_FEES if tier == size_tier)
    if product_type.upper() in MEDIA_TYPES:
        fixed += CLOSING_FEE
    return int(referral_terms(product_type).rate * 10_000), int(fixed * 100)


def fees_minor(price_minor: int, product_type: str, fba: bool, size_tier: str) -> int:
    """Amazon's fees on one unit sold at `price_minor`: referral (rounded half up, at least the type's minimum) +
    fixed fees."""
    rate, fixed = fee_parts(product_type, fba, size_tier)
    referral = max((price_minor * rate + 5_000) // 10_000, int(referral_terms(product_type).minimum * 100))
    return referral + fixed


# --- the model ---------------------------------------------------------------------------------------------------
@dataclass
class _Market:
    key: Hashable
    offers: list[Offer]
    demand_per_hour: float
    demand_rng: random.Random
    winner: Offer | None = None
    since: float = 0.0  # start of the current winner segment
    held: dict[str, float] = field(default_factory=dict)  # seconds each seller held the Buy Box
    history: deque[int] = field(default_factory=lambda: deque(maxlen=HISTORY_HOURS))
    hour_low: int | None = None  # lowest eligible landed price seen in the current hour
    lowest: dict[str, int] = field(default_factory=dict)  # lowest price each seller reached
    lost_orders: int = 0


class MarketModel:
    """Markets stepped on one simulated clock from `start`. `on_price(market, offer)`: a competitor's strategy set a new
    price. `on_sale(market, offer, at)`: an order went to `offer` (the winner). Both run inside `advance_to`."""

    def __init__(
        self,
        seed: int,
        start: float,
        *,
        on_price: Callable[[Hashable, Offer], None] | None = None,
        on_sale: Callable[[Hashable, Offer, float], None] | None = None,
    ) -> None:
        self.seed = seed
        self.start = start
        self.now = start
        self.markets: dict[Hashable, _Market] = {}
        self.sales: list[Sale] = []
        self.price_changes = 0  # competitor moves that changed a price
        self._on_price = on_price
        self._on_sale = on_sale
        self._events: list[tuple[float, int, int, Hashable, int]] = []
        self._seq = 0
        self._rngs: dict[tuple[Hashable, str], random.Random] = {}
        self._next_hour = start  # the first hour event draws the first hour's orders
        self._push(start, _HOUR, None, -1)

    def _rng(self, *parts: object) -> random.Random:
        return random.Random("/".join(str(p) for p in (self.seed, *parts)))

    def _push(self, at: float, kind: int, key: Hashable, index: int) -> None:
        self._seq += 1
        heapq.heappush(self._events, (at, kind, self._seq, key, index))

    # --- set-up and outside changes ------------------------------------------------------------------------------
    def add_market(self, key: Hashable, offers: list[Offer], demand_per_hour: float) -> None:
        if key in self.markets:
            raise ValueError(f"market {key!r} exists")
        market = _Market(key, offers, demand_per_hour, self._rng(key, "demand"), since=self.now)
        self.markets[key] = market
        for index, offer in enumerate(offers):
            self._schedule_first_move(market, index, offer)
        self._reevaluate(market)
        market.hour_low = self._lowest_eligible(market)
        if self._next_hour > self.start:  # the hour's orders are drawn already: this market's, for the rest of it
            self._draw_orders(market, self._next_hour - HOUR, self._next_hour, from_at=self.now)

    def _schedule_first_move(self, market: _Market, index: int, offer: Offer) -> None:
        if offer.strategy in (None, "static") or offer.interval_s <= 0:
            return
        rng = self._rng(market.key, offer.seller_id, "moves")
        self._rngs[(market.key, offer.seller_id)] = rng
        self._push(self.now + rng.random() * offer.interval_s, _MOVE, market.key, index)

    def add_offer(self, key: Hashable, offer: Offer) -> None:
        market = self.markets[key]
        market.offers.append(offer)
        self._schedule_first_move(market, len(market.offers) - 1, offer)
        self._reevaluate(market)

    def offer(self, key: Hashable, seller_id: str) -> Offer | None:
        return next((o for o in self.markets[key].offers if o.seller_id == seller_id), None)

    def set_offer(
        self, key: Hashable, seller_id: str, *, price_minor: int | None = None, quantity: int | None = None
    ) -> bool:
        """A change from outside (an accepted price of the seller's, a stock change), effective now; the award is
        re-evaluated. Whether anything changed."""
        offer = self.offer(key, seller_id)
        if offer is None:
            return False
        changed = False
        if price_minor is not None and price_minor != offer.price_minor:
            offer.price_minor = price_minor
            changed = True
        if quantity is not None and quantity != offer.quantity:
            offer.quantity = quantity
            changed = True
        if changed:
            self._reevaluate(self.markets[key])
        return changed

    # --- read-outs -----------------------------------------------------------------------------------------------
    def winner(self, key: Hashable) -> Offer | None:
        return self.markets[key].winner

    def held_seconds(self, key: Hashable, seller_id: str) -> float:
        """Seconds `seller_id` held the Buy Box on this market, up to now."""
        market = self.markets[key]
        held = market.held.get(seller_id, 0.0)
        if market.winner is not None and market.winner.seller_id == seller_id:
            held += self.now - market.since
        return held

    def lowest_price(self, key: Hashable, seller_id: str) -> int | None:
        return self.markets[key].lowest.get(seller_id)

    def reference_x2(self, key: Hashable) -> int | None:
        return median_x2(self.markets[key].history)

    def lost_orders(self) -> int:
        return sum(m.lost_orders for m in self.markets.values())

    # --- the clock ---------------------------------------------------------------------------------------------------
    def advance_to(self, t: float) -> None:
        """Play every event at or before `t`, in time order (hour boundaries first, then moves, then orders, at
        equal times); then the clock reads `t`."""
        while self._events and self._events[0][0] <= t:
            at, kind, _, key, index = heapq.heappop(self._events)
            self.now = max(self.now, at)
            if kind == _HOUR:
                self._hour()
            elif kind == _MOVE:
                self._move(self.markets[key], index)
            else:
                self._order(self.markets[key])
        self.now = max(self.now, t)

    def _hour(self) -> None:
        hour_start = self._next_hour
        self._next_hour = hour_start + HOUR
        self._push(self._next_hour, _HOUR, None, -1)
        for market in self.markets.values():
            if hour_start > self.start and market.hour_low is not None:
                market.history.append(market.hour_low)
            market.hour_low = self._lowest_eligible(market)
            self._reevaluate(market)  # the reference moved: suppression may start or end
            self._draw_orders(market, hour_start, self._next_hour)

    def _draw_orders(self, market: _Market, start: float, end: float, from_at: float | None = None) -> None:
        """This hour's orders: a Poisson count, then uniform times; drawn from the market's own generator whatever
        happened before, so the same seed gives the same orders."""
        rng = market.demand_rng
        count = _poisson(rng, market.demand_per_hour)
        for _ in range(count):
            at = start + rng.random() * (end - start)
            if from_at is None or at >= from_at:
                self._push(at, _ORDER, market.key, -1)

    def _move(self, market: _Market, index: int) -> None:
        offer = market.offers[index]
        rng = self._rngs[(market.key, offer.seller_id)]
        others = [o.landed for o in market.offers if o is not offer and o.quantity > 0]
        price = next_price(offer, min(others) if others else None, rng)
        self._push(self.now + offer.interval_s, _MOVE, market.key, index)
        if price != offer.price_minor:
            offer.price_minor = price
            self.price_changes += 1
            if self._on_price is not None:
                self._on_price(market.key, offer)
            self._reevaluate(market)

    def _order(self, market: _Market) -> None:
        offer = market.winner
        if offer is None:
            market.lost_orders += 1
            return
        fees = fees_minor(offer.price_minor, offer.product_type, offer.fba, offer.size_tier)
        profit = None if offer.cost_minor is None else offer.price_minor - offer.cost_minor - fees
        self.sales.append(Sale(self.now, market.key, offer.seller_id, offer.price_minor, fees, profit))
        if self._on_sale is not None:
            self._on_sale(market.key, offer, self.now)

    # --- the award, re-evaluated ---------------------------------------------------------------------------------
    @staticmethod
    def _lowest_eligible(market: _Market) -> int | None:
        landed = [o.landed for o in market.offers if eligible(o)]
        return min(landed) if landed else None

    def _reevaluate(self, market: _Market) -> None:
        if market.winner is not None:
            seller = market.winner.seller_id
            market.held[seller] = market.held.get(seller, 0.0) + (self.now - market.since)
        market.since = self.now
        low = self._lowest_eligible(market)
        if low is not None and (market.hour_low is None or low < market.hour_low):
            market.hour_low = low
        market.winner = award(market.offers, median_x2(market.history))
        for offer in market.offers:
            if offer.price_minor < market.lowest.get(offer.seller_id, offer.price_minor + 1):
                market.lowest[offer.seller_id] = offer.price_minor


_HOUR, _MOVE, _ORDER = 0, 1, 2


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method (λ here is a few orders an hour at most)."""
    if lam <= 0:
        return 0
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


# --- the emulator's market: strategies for the competitors it holds ---------------------------------------------------
_EMULATOR_MIX = (("static", 25), ("match_lowest", 20), ("undercut_bot", 15), ("stay_above", 10), ("random_walk", 30))


def weighted_choice(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


def competitor_strategy(offer: Offer, rng: random.Random, strategy: str | None = None) -> Offer:
    """Give a competitor (at its current price p) a strategy from the emulator's mix (or `strategy`) with parameters
    relative to p: match_lowest floor 0.85p, ceiling 1.3p, every 15 min; undercut_bot floor 0.7p, ceiling 1.2p,
    step max(1, p/200), every 10 min; stay_above floor p, ceiling 1.3p, 1 % above the lowest, every 60 min;
    random_walk within [0.8p, 1.25p], up to ±3 % every 60 min; static never moves."""
    p = offer.price_minor
    offer.strategy = strategy or weighted_choice(rng, _EMULATOR_MIX)
    offer.floor_minor, offer.ceiling_minor, offer.step_minor, offer.interval_s = p, p, 1, 0.0
    if offer.strategy == "match_lowest":
        offer.floor_minor, offer.ceiling_minor, offer.interval_s = p * 85 // 100, p * 130 // 100, 900.0
    elif offer.strategy == "undercut_bot":
        offer.floor_minor, offer.ceiling_minor, offer.interval_s = p * 70 // 100, p * 120 // 100, 600.0
        offer.step_minor = max(1, p // 200)
    elif offer.strategy == "stay_above":
        offer.ceiling_minor, offer.step_minor, offer.interval_s = p * 130 // 100, max(1, p // 100), 3600.0
    elif offer.strategy == "random_walk":
        offer.floor_minor, offer.ceiling_minor, offer.interval_s = p * 80 // 100, p * 125 // 100, 3600.0
        offer.step_minor = 300
    offer.floor_minor = max(1, offer.floor_minor)
    return offer
