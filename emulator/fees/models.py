"""The emulator's fee model (documented in emulator/README.md, "Fees"): what getMyFeesEstimates answers. No HTTP.

Per item: a referral fee (a rate of the price per product type, never below the type's minimum), a variable closing
fee for media product types, and for an FBA offer a fulfilment fee by the item's size tier, which a hash of the ASIN
decides (the catalog holds no dimensions). Amounts are exact Decimals in the marketplace's currency: the figures
below for a currency with a minor unit of 2 decimals, ×100 in whole units for one without (JPY).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

__all__ = [
    "FeeBreakdown",
    "ReferralTerms",
    "REFERRAL",
    "MEDIA_TYPES",
    "FBA_FEES",
    "estimate",
    "referral_terms",
    "size_tier",
]


@dataclass(frozen=True)
class ReferralTerms:
    rate: Decimal  # a fraction of the price
    minimum: Decimal  # per item, in the 2-decimal figures


DEFAULT_TERMS = ReferralTerms(Decimal("0.15"), Decimal("0.30"))
REFERRAL: dict[str, ReferralTerms] = {
    "WATCH": ReferralTerms(Decimal("0.16"), Decimal("2.00")),
    "ELECTRONICS": ReferralTerms(Decimal("0.08"), Decimal("0.30")),
    "BOOK": ReferralTerms(Decimal("0.15"), Decimal("0")),
    "MUSIC": ReferralTerms(Decimal("0.15"), Decimal("0")),
    "VIDEO": ReferralTerms(Decimal("0.15"), Decimal("0")),
    "DVD": ReferralTerms(Decimal("0.15"), Decimal("0")),
    "VIDEO_GAMES": ReferralTerms(Decimal("0.15"), Decimal("0")),
}
MEDIA_TYPES = frozenset({"BOOK", "MUSIC", "VIDEO", "DVD", "VIDEO_GAMES"})
CLOSING_FEE = Decimal("1.80")
# (tier, share of ASINs below which a hash bucket falls in it, FBA fulfilment fee per unit)
FBA_FEES: tuple[tuple[str, int, Decimal], ...] = (
    ("small_standard", 60, Decimal("3.22")),
    ("large_standard", 95, Decimal("5.40")),
    ("large_bulky", 100, Decimal("9.73")),
)


@dataclass(frozen=True)
class FeeBreakdown:
    referral: Decimal
    closing: Decimal
    fba: Decimal  # 0 for a merchant-fulfilled offer
    tier: str

    @property
    def total(self) -> Decimal:
        return self.referral + self.closing + self.fba


def referral_terms(product_type: str) -> ReferralTerms:
    return REFERRAL.get(product_type.upper(), DEFAULT_TERMS)


def size_tier(asin: str) -> tuple[str, Decimal]:
    """The ASIN's size tier and FBA fee (2-decimal figure): bucket = the first two bytes of SHA-256(ASIN, ASCII) as a
    big-endian integer, mod 100; below 60 small standard, below 95 large standard, else large bulky."""
    bucket = int.from_bytes(hashlib.sha256(asin.encode("ascii")).digest()[:2], "big") % 100
    return next((tier, fee) for tier, below, fee in FBA_FEES if bucket < below)


def _scaled(amount: Decimal, decimals: int) -> Decimal:
    """A 2-decimal figure in a currency with `decimals` minor digits (0: ×100, whole units)."""
    return amount if decimals == 2 else (amount * 100).quantize(Decimal(1).scaleb(-decimals))


def estimate(product_type: str, asin: str, price: Decimal, amazon_fulfilled: bool, decimals: int) -> FeeBreakdown:
    """The fees of one item sold at `price` (listing price plus shipping, in the marketplace's currency)."""
    terms = referral_terms(product_type)
    unit = Decimal(1).scaleb(-decimals)
    referral = max((price * terms.rate).quantize(unit, ROUND_HALF_UP), _scaled(terms.minimum, decimals))
    closing = _scaled(CLOSING_FEE, decimals) if product_type.upper() in MEDIA_TYPES else Decimal(0)
    tier, fba = size_tier(asin)
    return FeeBreakdown(
        referral.quantize(unit),
        closing.quantize(unit),
        _scaled(fba, decimals).quantize(unit) if amazon_fulfilled else Decimal(0).quantize(unit),
        tier,
    )
