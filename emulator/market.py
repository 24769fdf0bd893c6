"""The emulated market around the seller: its settings (competitor moves per minute, the share of ASINs Amazon
notifies), the logs of competitor moves and of the seller's accepted prices, and the thread that moves competitors.

Every method that reads or writes the logs expects `EmulatorState.lock` to be held (the state's methods record into
them); the settings are plain attributes read without it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections import deque
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from emulator.clock import iso_ms
from seller.marketplaces import MARKETPLACES

if TYPE_CHECKING:
    from emulator.state import EmulatorState

__all__ = ["Market", "MarketWorld", "LOG_LIMIT", "quantized_move"]

log = logging.getLogger("emulator.market")

LOG_LIMIT = 100_000  # entries kept per log (moves, ourPrices); older ones are dropped
TICK_SECONDS = 0.05  # real seconds between the mover's looks at the clock


class Market:
    def __init__(self, seed: int, moves_per_minute: float = 0.0, notified_share: float = 1.0) -> None:
        self.seed = seed
        self._state: EmulatorState | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.moves_per_minute = 0.0
        self.notified_share = 1.0
        self.set_moves_per_minute(moves_per_minute)
        self.set_notified_share(notified_share)
        # (at, marketplaceId, asin, sellerId, price, notified) and (at, sellerId, marketplaceId, sku, asin, price)
        self.moves: deque[tuple[float, str, str, str, str, bool]] = deque(maxlen=LOG_LIMIT)
        self.our_prices: deque[tuple[float, str, str, str, str, str]] = deque(maxlen=LOG_LIMIT)

    # --- settings ------------------------------------------------------------------------------------------------
    def set_moves_per_minute(self, rate: float) -> None:
        """Change the rate (emulated minutes); a positive rate starts the mover if the server runs and it does not."""
        if not math.isfinite(rate) or rate < 0:
            raise ValueError("moves per minute must be a finite number >= 0")
        self.moves_per_minute = float(rate)
        if rate > 0 and self._state is not None and self._thread is None:
            self._start_thread()

    def set_notified_share(self, share: float) -> None:
        if not 0 <= share <= 1:
            raise ValueError("the notified share must be between 0 and 1")
        self.notified_share = float(share)

    def notified(self, marketplace_id: str, asin: str) -> bool:
        """Whether Amazon sends ANY_OFFER_CHANGED for this (marketplace, ASIN): a fixed draw per seed in [0, 1)."""
        if self.notified_share >= 1:
            return True
        digest = hashlib.blake2b(f"{self.seed}\0{marketplace_id}\0{asin}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64 < self.notified_share

    # --- logs (state lock held) --------------------------------------------------------------------------------------
    def record_move(
        self, at: float, marketplace_id: str, asin: str, seller_id: str, price: str, notified: bool
    ) -> None:
        self.moves.append((at, marketplace_id, asin, seller_id, price, notified))

    def record_our_price(self, at: float, seller_id: str, marketplace_id: str, sku: str, asin: str, price: str) -> None:
        self.our_prices.append((at, seller_id, marketplace_id, sku, asin, price))

    def settings(self) -> dict[str, float]:
        return {"movesPerMinute": self.moves_per_minute, "notifiedShare": self.notified_share}

    def logs(self, since_ms: int | None = None) -> dict[str, list[dict[str, Any]]]:
        """The moves and our prices, oldest first; `since_ms`: only those at or after it (epoch milliseconds)."""

        def keep(at: float) -> bool:
            return since_ms is None or math.floor(at * 1000) >= since_ms

        return {
            "moves": [
                {"at": iso_ms(at), "marketplaceId": mp, "asin": asin, "sellerId": seller, "price": price, "notified": n}
                for at, mp, asin, seller, price, n in self.moves
                if keep(at)
            ],
            "ourPrices": [
                {"at": iso_ms(at), "sellerId": seller, "marketplaceId": mp, "sku": sku, "asin": asin, "price": price}
                for at, seller, mp, sku, asin, price in self.our_prices
                if keep(at)
            ],
        }

    # --- the mover ---------------------------------------------------------------------------------------------------
    def start(self, state: EmulatorState) -> None:
        """Attach to the running server's state; the mover thread starts now if the rate is positive, else only when
        a positive rate is set."""
        self._state = state
        self._stopping.clear()
        if self.moves_per_minute > 0 and self._thread is None:
            self._start_thread()

    def stop(self) -> None:
        self._stopping.set()
        thread, self._thread, self._state = self._thread, None, None
        if thread is not None:
            thread.join(timeout=10)

    @property
    def mover_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name="spapi-emulator-market", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        state = self._state
        if state is None:
            return
        last = state.clock.now()
        owed = 0.0  # moves due and not made yet
        while not self._stopping.wait(TICK_SECONDS):
            now = state.clock.now()
            owed += max(0.0, now - last) * self.moves_per_minute / 60
            last = now
            while owed >= 1 and not self._stopping.is_set():
                owed -= 1
                try:
                    with state.lock:  # one move per lock hold: API requests interleave with a burst of moves
                        moved = state.move_competitor()
                except Exception:  # the mover must survive a bad move; the failure is logged
                    log.exception("competitor move failed")
                    moved = None
                if moved is None:  # nothing to move: no debt carried
                    owed = 0.0


def quantized_move(price: Decimal, decimals: int, percent_hundredths: int) -> Decimal:
    """`price` moved by `percent_hundredths` / 100 % in whole minor units (rounded half-even), at least one minor unit
    away from `price` (in the direction of the move, up for 0) and never below one minor unit."""
    minor = int(price.scaleb(decimals).to_integral_value())
    delta = int((Decimal(minor) * percent_hundredths / 10_000).to_integral_value())
    if delta == 0:
        delta = -1 if percent_hundredths < 0 else 1
    moved = max(1, minor + delta)
    if moved == minor:  # a one-unit price cannot go down
        moved = minor + 1
    return Decimal(moved).scaleb(-decimals)


class MarketWorld:
    """The market model (`emulator.market_model`) over the emulator's state (`--market`): one model market per
    (marketplace, ASIN) with a seller listing, its competitors given seeded strategies, each seller's listing as an
    offer priced from outside (its accepted prices), demand per ASIN. Stepped to the emulated clock by the server's
    ticker; a competitor's move goes through `EmulatorState.set_competitor_price` (ANY_OFFER_CHANGED, the moves log)
    and a sale won by a seller's listing becomes a buyer order (`create_order`: the orders APIs and ORDER_CHANGE see
    it). Every method expects the state lock to be held."""

    def __init__(self, state: EmulatorState, seed: int) -> None:
        from emulator.market_model import MarketModel

        self.state = state
        self.seed = seed
        self.model = MarketModel(seed, state.clock.now(), on_price=self._competitor_moved, on_sale=self._sold)
        self._skus: dict[tuple[tuple[str, str], str], str] = {}  # ((mp, asin), seller) -> the SKU that sells
        self._applying = False
        for key in sorted(state.store.offers.keys() | state.listing_markets()):
            self.add_market(key)

    def _rng(self, *parts: object) -> Any:
        import random

        return random.Random("/".join(str(p) for p in (self.seed, *parts)))

    def add_market(self, key: tuple[str, str]) -> None:
        import math

        from emulator.fees.models import size_tier as tier_of
        from emulator.market_model import Offer, competitor_strategy

        mp, asin = key
        if key in self.model.markets or not self.state.sellers_on(mp, asin):
            return
        decimals = MARKETPLACES[mp].decimals
        offers = []
        for c in self.state.store.offers.get(key, []):
            offer = Offer(
                c.seller_id,
                _minor(c.price, decimals),
                _minor(c.shipping, decimals),
                c.fulfillment == "FBA",
                c.feedback_rating,
                quantity=1_000_000,
            )
            offers.append(competitor_strategy(offer, self._rng(mp, asin, c.seller_id, "strategy")))
        rng = self._rng(mp, asin, "item")
        demand = math.exp(rng.uniform(math.log(0.05), math.log(2.0)))
        size_tier = tier_of(asin)[0]  # as getMyFeesEstimates answers for it
        for seller, sku in sorted(self.state.sellers_on(mp, asin)):
            listing = self.state.store.listings[(seller, mp, sku)]
            if listing.price is None or any(o.seller_id == seller for o in offers):
                continue
            self._skus[(key, seller)] = sku
            cost = getattr(self.state.store, "costs", {}).get((seller, mp, sku))
            offers.append(
                Offer(
                    seller,
                    _minor(listing.price, decimals),
                    _minor(listing.shipping, decimals),
                    listing.fulfillment == "FBA",
                    98,
                    quantity=self._quantity(listing),
                    cost_minor=None if cost is None else _minor(cost, decimals),
                    product_type=listing.product_type,
                    size_tier=size_tier,
                )
            )
        self.model.add_market(key, offers, demand)

    def _quantity(self, listing: Any) -> int:
        from emulator.listings.models import has_errors

        available = self.state.fba_quantity(listing) if listing.fulfillment == "FBA" else listing.quantity
        return 0 if has_errors(listing.issues) else available or 0

    # --- the state tells the model ------------------------------------------------------------------------------------
    def listing_changed(self, listing: Any) -> None:
        key = (listing.marketplace_id, listing.asin)
        if key not in self.model.markets:
            self.add_market(key)
            return
        if self._skus.get((key, listing.seller_id)) != listing.sku:
            return
        decimals = MARKETPLACES[listing.marketplace_id].decimals
        price = None if listing.price is None else _minor(listing.price, decimals)
        self.model.set_offer(key, listing.seller_id, price_minor=price, quantity=self._quantity(listing))

    def listing_removed(self, listing: Any) -> None:
        key = (listing.marketplace_id, listing.asin)
        if self._skus.get((key, listing.seller_id)) == listing.sku:
            del self._skus[(key, listing.seller_id)]
            self.model.set_offer(key, listing.seller_id, quantity=0)

    def sku_of(self, key: tuple[str, str], seller_id: str) -> str | None:
        """The SKU whose listing is `seller_id`'s offer on this market (None: a competitor)."""
        return self._skus.get((key, seller_id))

    def competitor_changed(self, mp: str, asin: str, seller_id: str, price: Decimal) -> None:
        key = (mp, asin)
        if self._applying or key not in self.model.markets:
            return
        decimals = MARKETPLACES[mp].decimals
        if not self.model.set_offer(key, seller_id, price_minor=_minor(price, decimals)):
            if self.model.offer(key, seller_id) is None:
                from emulator.market_model import Offer

                self.model.add_offer(key, Offer(seller_id, _minor(price, decimals), quantity=1_000_000))

    def step(self) -> None:
        self.model.advance_to(self.state.clock.now())

    # --- the model tells the state ------------------------------------------------------------------------------------
    def _competitor_moved(self, key: Any, offer: Any) -> None:
        mp, asin = key
        self._applying = True
        try:
            self.state.set_competitor_price(mp, asin, offer.seller_id, _amount(offer.price_minor, mp))
        finally:
            self._applying = False

    def _sold(self, key: Any, offer: Any, at: float) -> None:
        sku = self._skus.get((key, offer.seller_id))
        if sku is None:
            return  # a competitor's sale: counted in the model only
        mp, _ = key
        self.state.create_order(offer.seller_id, mp, [(sku, 1)], at=at)

    def summary(self) -> dict[str, Any]:
        """Per seller listing on the model: Buy Box seconds held, units and revenue; orders lost to suppression."""
        sellers: dict[str, dict[str, Any]] = {}
        for (key, seller), _sku in self._skus.items():
            entry = sellers.setdefault(seller, {"buyBoxSeconds": 0.0, "units": 0, "profitMinor": 0, "markets": 0})
            entry["buyBoxSeconds"] += self.model.held_seconds(key, seller)
            entry["markets"] += 1
        for sale in self.model.sales:
            entry = sellers.get(sale.seller_id)
            if entry is not None:
                entry["units"] += 1
                entry["profitMinor"] += sale.profit_minor or 0
        return {
            "markets": len(self.model.markets),
            "competitorPriceChanges": self.model.price_changes,
            "sales": len(self.model.sales),
            "lostOrders": self.model.lost_orders(),
            "sellers": sellers,
        }


def _minor(amount: Decimal, decimals: int) -> int:
    return int(amount.scaleb(decimals).to_integral_value())


def _amount(minor: int, mp: str) -> Decimal:
    return Decimal(minor).scaleb(-MARKETPLACES[mp].decimals)
