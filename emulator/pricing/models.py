"""Competitor offers per (marketplace, ASIN) and the featured offer (Buy Box) rule (no HTTP).

The Buy Box rule (documented simplification of Amazon's): among eligible offers — every competitor offer, and the
seller's own offer when it has a price and sellable stock and no ERROR issue — the winner is the offer with the lowest
landed price (listing price + shipping); on a tie an FBA offer beats a merchant-fulfilled one; a remaining tie goes to
the lower seller id, so the result is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

__all__ = ["CompetitorOffer", "OfferView", "buy_box_winner", "rank_key"]


@dataclass
class CompetitorOffer:
    seller_id: str
    price: Decimal
    shipping: Decimal
    fulfillment: str  # "FBA" | "FBM"
    observed_at: float
    feedback_rating: int = 95
    feedback_count: int = 1200


@dataclass(frozen=True)
class OfferView:
    """An offer as the pricing APIs see it: a competitor's or the seller's own (from its listing)."""

    seller_id: str
    price: Decimal
    shipping: Decimal
    fba: bool
    mine: bool
    eligible: bool
    sku: str | None = None
    feedback_rating: int = 95
    feedback_count: int = 1200

    @property
    def landed(self) -> Decimal:
        return self.price + self.shipping


def rank_key(offer: OfferView) -> tuple[Decimal, int, str]:
    return (offer.landed, 0 if offer.fba else 1, offer.seller_id)


def buy_box_winner(offers: list[OfferView]) -> OfferView | None:
    eligible = [o for o in offers if o.eligible]
    return min(eligible, key=rank_key) if eligible else None
