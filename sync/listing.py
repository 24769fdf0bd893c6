"""Creating a listing: the attributes putListingsItem needs, and when to refuse before calling Amazon. Dagster-free.

A new offer needs the product's identifier (UPC/EAN/GTIN/ISBN from master_inventory) or, for a brand the seller
has in Brand Registry, the identifier exemption. Gated categories are checked first (getListingsRestrictions when an
ASIN is known, else a VALIDATION_PREVIEW put) so a restricted product is recorded, not submitted, with the approval
link Amazon gives for the channel's marketplace (only the restrictions answer has one); an ASIN Amazon does not know
there (ASIN_NOT_FOUND) is an `error` with code `ResourceNotFound`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from resources.spapi import SpApiClient
from seller.config import Channel
from sync.outcomes import from_issues, seed_code

__all__ = ["ListingRefused", "ListingResult", "listing_attributes", "create_listing"]


class ListingRefused(ValueError):
    """The listing cannot be submitted as configured (the message says what the seller must add)."""


@dataclass(frozen=True)
class ListingResult:
    status: str  # accepted | warning | error | category_restricted
    code: str | None
    message: str | None
    asin: str | None = None
    approval_link: str | None = None


def listing_attributes(
    sku: str, product: Mapping[str, Any], channel: Channel, attributes: Mapping[str, Any], brand_registered: bool
) -> dict[str, Any]:
    """The seller's attributes plus item_name/brand from the master and the identifier (or the exemption)."""
    mp = channel.marketplace_id
    merged: dict[str, Any] = {}
    if product.get("title"):
        merged["item_name"] = [{"value": product["title"], "marketplace_id": mp}]
    if product.get("brand"):
        merged["brand"] = [{"value": product["brand"], "marketplace_id": mp}]
    if product.get("product_id"):
        merged["externally_assigned_product_identifier"] = [
            {
                "type": str(product.get("product_id_type") or "UPC").lower(),
                "value": product["product_id"],
                "marketplace_id": mp,
            }
        ]
    elif brand_registered:
        merged["supplier_declared_has_product_identifier_exemption"] = [{"value": True, "marketplace_id": mp}]
    else:
        raise ListingRefused(
            f"SKU {sku}: no product_id (UPC/EAN/GTIN) in master_inventory and the brand is not marked as registered; "
            "add the identifier to master_inventory, or set brand_registered: true if the brand is in Amazon's "
            "Brand Registry (identifier exemption)"
        )
    merged.update(attributes)
    return merged


def create_listing(
    client: SpApiClient,
    channel: Channel,
    sku: str,
    product_type: str,
    attributes: dict[str, Any],
    asin: str | None = None,
) -> ListingResult:
    mp = [channel.marketplace_id]
    if asin:
        attributes = {**attributes, "merchant_suggested_asin": [{"value": asin, "marketplace_id": mp[0]}]}
        restrictions = client.get_listings_restrictions(asin, mp, condition_type="new_new", product_type=product_type)
        reasons = [
            r
            for entry in restrictions
            if entry.get("marketplaceId") in (None, mp[0])
            for r in entry.get("reasons") or []
        ]
        if reasons:
            return _restricted(asin, reasons)
    preview = client.put_listings_item(
        sku, mp, product_type=product_type, attributes=attributes, mode="VALIDATION_PREVIEW"
    )
    outcome = from_issues(sku, preview)
    if outcome.status == "category_restricted":
        # A listing issue carries no link: Amazon gives approval links only in getListingsRestrictions (by ASIN).
        return ListingResult(outcome.status, outcome.code, outcome.message, asin)
    answer = client.put_listings_item(sku, mp, product_type=product_type, attributes=attributes)
    outcome = from_issues(sku, answer)
    if outcome.status not in ("accepted", "warning"):
        return ListingResult(outcome.status, outcome.code, outcome.message, asin)
    item = client.get_listings_item(sku, mp, included_data=["summaries"])
    new_asin = next((s.get("asin") for s in item.get("summaries") or [] if s.get("asin")), asin)
    return ListingResult(outcome.status, outcome.code, outcome.message, new_asin)


def _restricted(asin: str, reasons: list[dict[str, Any]]) -> ListingResult:
    """getListingsRestrictions' reasons for the channel's marketplace → the result, with the approval link Amazon
    gives there (each marketplace's own Seller Central). ASIN_NOT_FOUND: Amazon has no such ASIN in the marketplace."""
    missing = [r for r in reasons if seed_code(r.get("reasonCode")) == "ResourceNotFound"]
    if missing:
        return ListingResult(
            "error", "ResourceNotFound", f"[{missing[0]['reasonCode']}] {missing[0].get('message', '')}", asin
        )
    links = [link["resource"] for r in reasons for link in r.get("links") or [] if link.get("resource")]
    return ListingResult(
        "category_restricted",
        "category_restricted",
        f"[{reasons[0].get('reasonCode', '')}] {reasons[0].get('message', '')}",
        asin,
        links[0] if links else None,
    )
