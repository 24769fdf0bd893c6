"""Amazon's marketplace table: id, country, region, currency and the currency's minor-unit decimals.

Source: https://developer-docs.amazon.com/sp-api/docs/marketplace-ids (ids, regions), ISO 4217 (decimals).
This is plain reference data; the pipeline and the emulator may both read it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Marketplace", "MARKETPLACES", "REGIONS", "marketplace", "FBA_CHANNEL_CODE"]


@dataclass(frozen=True)
class Marketplace:
    marketplace_id: str
    country: str
    region: str
    currency: str
    decimals: int


_ROWS = [
    ("A2EUQ1WTGCTBG2", "CA", "na", "CAD", 2),
    ("ATVPDKIKX0DER", "US", "na", "USD", 2),
    ("A1AM78C64UM0Y8", "MX", "na", "MXN", 2),
    ("A2Q3Y263D00KWC", "BR", "na", "BRL", 2),
    ("A28R8C7NBKEWEA", "IE", "eu", "EUR", 2),
    ("A1RKKUPIHCS9HS", "ES", "eu", "EUR", 2),
    ("A1F83G8C2ARO7P", "UK", "eu", "GBP", 2),
    ("A13V1IB3VIYZZH", "FR", "eu", "EUR", 2),
    ("AMEN7PMS3EDWL", "BE", "eu", "EUR", 2),
    ("A1805IZSGTT6HS", "NL", "eu", "EUR", 2),
    ("A1PA6795UKMFR9", "DE", "eu", "EUR", 2),
    ("APJ6JRA9NG5V4", "IT", "eu", "EUR", 2),
    ("A2NODRKZP88ZB9", "SE", "eu", "SEK", 2),
    ("AE08WJ6YKNBMC", "ZA", "eu", "ZAR", 2),
    ("A1C3SOZRARQ6R3", "PL", "eu", "PLN", 2),
    ("ARBP9OOSHTCHU", "EG", "eu", "EGP", 2),
    ("A33AVAJ2PDY3EV", "TR", "eu", "TRY", 2),
    ("A17E79C6D8DWNP", "SA", "eu", "SAR", 2),
    ("A2VIGQ35RCS4UG", "AE", "eu", "AED", 2),
    ("A21TJRUUN4KGV", "IN", "eu", "INR", 2),
    ("A19VAU5U5O7RUS", "SG", "fe", "SGD", 2),
    ("A39IBJ37TRP1C6", "AU", "fe", "AUD", 2),
    ("A1VC38T7YXB528", "JP", "fe", "JPY", 0),
]

MARKETPLACES: dict[str, Marketplace] = {row[0]: Marketplace(*row) for row in _ROWS}
REGIONS = ("na", "eu", "fe")

# The fulfillment-channel code an FBA offer carries in feeds, per region (AMAZON_NA in Amazon's schema example).
FBA_CHANNEL_CODE = {"na": "AMAZON_NA", "eu": "AMAZON_EU", "fe": "AMAZON_FE"}


def marketplace(marketplace_id: str) -> Marketplace:
    """The marketplace with this id; KeyError naming the id when Amazon has no such marketplace."""
    try:
        return MARKETPLACES[marketplace_id]
    except KeyError:
        raise KeyError(f"unknown Amazon marketplace id {marketplace_id!r}") from None
