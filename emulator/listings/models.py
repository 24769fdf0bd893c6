"""Listings Items 2021-08-01 and Listings Restrictions: the listing store and Amazon's acceptance rules (no HTTP).

Rules the emulator enforces (codes are the emulator's, chosen after the ones Amazon reports; see README):
- a write to a SKU whose product type is gated for this seller → ERROR, category QUALIFICATION_REQUIRED;
- a new ASIN without `externally_assigned_product_identifier` (UPC/EAN/GTIN), without a `merchant_suggested_asin`
  that exists and without `supplier_declared_has_product_identifier_exemption` → ERROR 8560 (MISSING_ATTRIBUTE);
- a price outside the listing's minimum/maximum seller allowed price → ERROR, category INVALID_PRICE;
- a negative quantity → ERROR, INVALID_ATTRIBUTE; a quantity sent for an FBA listing → WARNING and ignored
  (Amazon manages FBA stock).
Errors reject the whole submission (status INVALID); warnings do not.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from emulator.clock import iso
from emulator.jsonutil import money_str
from seller.marketplaces import FBA_CHANNEL_CODE, MARKETPLACES

__all__ = ["Listing", "CatalogItem", "Change", "Issue", "evaluate_put", "evaluate_patch", "render_item"]

Issue = dict[str, Any]

OFFER_ATTRS = {"purchasable_offer", "fulfillment_availability"}
PRODUCT_ATTRS = {"item_name", "brand", "externally_assigned_product_identifier", "merchant_suggested_asin"}


@dataclass
class CatalogItem:
    asin: str
    product_type: str
    title: str
    brand: str | None = None
    identifiers: list[tuple[str, str]] = field(default_factory=list)  # (type, value), e.g. ("UPC", "0123…")


@dataclass
class Listing:
    seller_id: str
    marketplace_id: str
    sku: str
    asin: str
    product_type: str
    price: Decimal | None
    quantity: int
    fulfillment: str  # "FBA" | "FBM"
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    shipping: Decimal = Decimal(0)
    handling_time: int | None = None
    title: str = ""
    brand: str | None = None
    condition: str = "new_new"
    attributes: dict[str, Any] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    created: float = 0.0
    updated: float = 0.0

    @property
    def currency(self) -> str:
        return MARKETPLACES[self.marketplace_id].currency

    @property
    def decimals(self) -> int:
        return MARKETPLACES[self.marketplace_id].decimals


@dataclass
class Change:
    """What an accepted submission does to a listing. `None` = unchanged."""

    price: Decimal | None = None
    price_removed: bool = False
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    quantity: int | None = None
    handling_time: int | None = None
    fulfillment: str | None = None
    set_attrs: dict[str, Any] = field(default_factory=dict)
    del_attrs: list[str] = field(default_factory=list)
    replace_all_attrs: bool = False

    def apply(self, listing: Listing, now: float) -> None:
        if self.price is not None:
            listing.price = self.price
        if self.price_removed:
            listing.price = None
        if self.min_price is not None:
            listing.min_price = self.min_price
        if self.max_price is not None:
            listing.max_price = self.max_price
        if self.quantity is not None:
            listing.quantity = self.quantity
        if self.handling_time is not None:
            listing.handling_time = self.handling_time
        if self.fulfillment is not None:
            listing.fulfillment = self.fulfillment
        if self.replace_all_attrs:
            listing.attributes = {}
        for name in self.del_attrs:
            listing.attributes.pop(name, None)
        listing.attributes.update(self.set_attrs)
        if "item_name" in self.set_attrs:
            listing.title = _first_value(self.set_attrs["item_name"]) or listing.title
        listing.updated = now


# --- issues --------------------------------------------------------------------------------------------------------
def issue(
    code: str,
    message: str,
    severity: str,
    categories: list[str],
    attribute: str | None = None,
    marketplace_id: str | None = None,
    suppress: bool = False,
) -> Issue:
    out: Issue = {"code": code, "message": message, "severity": severity, "categories": categories}
    if attribute:
        out["attributeNames"] = [attribute]
    if suppress:
        out["enforcements"] = {"actions": [{"action": "LISTING_SUPPRESSED"}], "exemption": {"status": "NOT_EXEMPT"}}
    if marketplace_id:
        out["marketplaceIds"] = [marketplace_id]
    return out


def qualification_issue(product_type: str, marketplace_id: str) -> Issue:
    return issue(
        "6039",
        f"You need approval to list products of type '{product_type}' in this category. Request approval in "
        "Seller Central before listing.",
        "ERROR",
        ["QUALIFICATION_REQUIRED"],
        marketplace_id=marketplace_id,
        suppress=True,
    )


def missing_identifier_issue(sku: str) -> Issue:
    return issue(
        "8560",
        f"SKU {sku}: insufficient data to match or create an ASIN. Provide a product identifier (UPC, EAN or GTIN) in "
        "'externally_assigned_product_identifier' or declare a GTIN exemption "
        "('supplier_declared_has_product_identifier_exemption').",
        "ERROR",
        ["MISSING_ATTRIBUTE"],
        attribute="externally_assigned_product_identifier",
    )


def price_issue(price: Decimal, low: Decimal | None, high: Decimal | None, currency: str, mp: str) -> Issue:
    return issue(
        "90244",
        f"The price {price} {currency} is outside the minimum ({low}) and maximum ({high}) seller allowed price.",
        "ERROR",
        ["INVALID_PRICE"],
        attribute="purchasable_offer",
        marketplace_id=mp,
    )


def invalid_attribute_issue(attribute: str, message: str, code: str = "90220") -> Issue:
    return issue(code, message, "ERROR", ["INVALID_ATTRIBUTE"], attribute=attribute)


def fba_quantity_issue(sku: str, mp: str) -> Issue:
    return issue(
        "90111",
        f"SKU {sku} is fulfilled by Amazon; the quantity you sent was ignored (Amazon manages FBA stock).",
        "WARNING",
        ["INVALID_ATTRIBUTE"],
        attribute="fulfillment_availability",
        marketplace_id=mp,
    )


def unknown_sku_issue(sku: str) -> Issue:
    return issue(
        "90700",
        f"SKU {sku} does not exist; provide product data (operationType UPDATE with productType and attributes) "
        "to create it before sending offer-only changes.",
        "ERROR",
        ["MISSING_ATTRIBUTE"],
    )


def has_errors(issues: list[Issue]) -> bool:
    return any(i["severity"] == "ERROR" for i in issues)


# --- attribute parsing ---------------------------------------------------------------------------------------------
def _first_value(values: Any) -> Any:
    if isinstance(values, list) and values and isinstance(values[0], dict):
        return values[0].get("value")
    return None


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def _schedule_value(entries: Any) -> Decimal | None | str:
    """purchasable_offer.our_price → Decimal; "bad" when present but unreadable; None when absent."""
    if entries is None:
        return None
    try:
        raw = entries[0]["schedule"][0]["value_with_tax"]
    except (IndexError, KeyError, TypeError):
        return "bad"
    value = _decimal(raw)
    return "bad" if value is None else value


def _for_marketplace(values: list[Any], mp: str) -> Any:
    for entry in values:
        if isinstance(entry, dict) and entry.get("marketplace_id") in (None, mp):
            return entry
    return None


def read_attribute(
    name: str, values: Any, change: Change, listing: Listing | None, mp: str, issues: list[Issue]
) -> None:
    """Fold one attribute's values into `change`; problems become issues."""
    if not isinstance(values, list):
        issues.append(invalid_attribute_issue(name, f"'{name}' must be an array of values."))
        return
    if name == "purchasable_offer":
        offer = _for_marketplace(values, mp)
        if offer is None:
            return
        for key, target in (
            ("our_price", "price"),
            ("minimum_seller_allowed_price", "min_price"),
            ("maximum_seller_allowed_price", "max_price"),
        ):
            value = _schedule_value(offer.get(key))
            if value == "bad" or (isinstance(value, Decimal) and value < 0):
                issues.append(
                    invalid_attribute_issue(
                        "purchasable_offer", f"'purchasable_offer.{key}' must be a non-negative number in schedule[0]."
                    )
                )
            elif value is not None:
                setattr(change, target, value)
        change.set_attrs[name] = values
    elif name == "fulfillment_availability":
        entry = values[0] if values and isinstance(values[0], dict) else None
        if entry is None:
            issues.append(invalid_attribute_issue(name, "'fulfillment_availability' needs one value."))
            return
        code = str(entry.get("fulfillment_channel_code", "DEFAULT"))
        fba_listing = listing is not None and listing.fulfillment == "FBA"
        if "quantity" in entry:
            quantity = entry["quantity"]
            if isinstance(quantity, bool) or not isinstance(quantity, int):
                issues.append(invalid_attribute_issue(name, "'fulfillment_availability.quantity' must be an integer."))
            elif quantity < 0:
                issues.append(
                    invalid_attribute_issue(
                        name, f"The quantity {quantity} is negative; quantities must be 0 or more.", code="90122"
                    )
                )
            elif fba_listing:
                issues.append(fba_quantity_issue(listing.sku, mp))
            else:
                change.quantity = quantity
        lead = entry.get("lead_time_to_ship_max_days")
        if lead is not None:
            if isinstance(lead, bool) or not isinstance(lead, int) or not 0 <= lead <= 30:
                issues.append(invalid_attribute_issue(name, "'lead_time_to_ship_max_days' must be 0..30 days."))
            else:
                change.handling_time = lead
        if listing is None:
            change.fulfillment = "FBA" if code.startswith("AMAZON") else "FBM"
        if not fba_listing:
            change.set_attrs[name] = values
    else:
        change.set_attrs[name] = values


def check_offer(view: Listing, change: Change, issues: list[Issue]) -> None:
    """Price within the (possibly updated) min/max seller allowed price."""
    price = change.price if change.price is not None else None
    low = change.min_price if change.min_price is not None else view.min_price
    high = change.max_price if change.max_price is not None else view.max_price
    if price is None and (change.min_price is not None or change.max_price is not None):
        price = view.price
    if price is None:
        return
    if (low is not None and price < low) or (high is not None and price > high):
        issues.append(price_issue(price, low, high, view.currency, view.marketplace_id))


def evaluate_patch(
    listing: Listing | None,
    mp: str,
    product_type: str,
    patches: list[dict[str, Any]],
    gated: frozenset[str],
) -> tuple[Change, list[Issue]]:
    """Issues and the change a patch would make. `listing` None means the SKU does not exist (caller decides)."""
    change = Change()
    issues: list[Issue] = []
    effective_type = listing.product_type if listing else product_type
    if effective_type in gated or product_type in gated:
        issues.append(qualification_issue(effective_type if effective_type in gated else product_type, mp))
        return change, issues
    for patch in patches:
        op = patch.get("op")
        path = patch.get("path", "")
        if not isinstance(path, str) or not path.startswith("/attributes/") or path.count("/") != 2:
            issues.append(
                invalid_attribute_issue(str(path), f"Only top-level attributes can be patched, not {path!r}.")
            )
            continue
        name = path.split("/")[2]
        if op == "delete":
            if name == "purchasable_offer":
                change.price_removed = True
            elif name == "fulfillment_availability":
                change.quantity = 0
            change.del_attrs.append(name)
        elif op in ("add", "replace", "merge"):
            read_attribute(name, patch.get("value"), change, listing, mp, issues)
        else:
            issues.append(invalid_attribute_issue(name, f"Unsupported patch op {op!r}."))
    if listing is not None:
        check_offer(listing, change, issues)
    return change, issues


def new_asin(seed: str) -> str:
    return "B0" + hashlib.sha1(seed.encode()).hexdigest().upper()[:8]


def evaluate_put(
    listing: Listing | None,
    seller_id: str,
    mp: str,
    sku: str,
    product_type: str,
    requirements: str,
    attributes: dict[str, Any],
    catalog: dict[str, CatalogItem],
    gated: frozenset[str],
    now: float,
) -> tuple[Listing | None, CatalogItem | None, list[Issue]]:
    """The listing a full PUT would leave, the catalog item it creates (new ASIN) and the issues."""
    issues: list[Issue] = []
    new_catalog: CatalogItem | None = None
    if product_type in gated or (listing is not None and listing.product_type in gated):
        return None, None, [qualification_issue(product_type if product_type in gated else listing.product_type, mp)]
    if listing is not None:
        base = copy.deepcopy(listing)
        asin = listing.asin
    else:
        asin = None
        suggested = _first_value(attributes.get("merchant_suggested_asin"))
        identifiers = attributes.get("externally_assigned_product_identifier") or []
        exemption = _first_value(attributes.get("supplier_declared_has_product_identifier_exemption"))
        if suggested and suggested in catalog:
            asin = suggested
            if catalog[suggested].product_type in gated:
                return None, None, [qualification_issue(catalog[suggested].product_type, mp)]
        elif (
            identifiers
            and isinstance(identifiers, list)
            and isinstance(identifiers[0], dict)
            and identifiers[0].get("value")
        ):
            kind = str(identifiers[0].get("type", "upc")).upper()
            value = str(identifiers[0]["value"])
            asin = next((c.asin for c in catalog.values() if (kind, value) in c.identifiers), None)
            if asin is None:
                asin = new_asin(f"{kind}:{value}")
                new_catalog = CatalogItem(
                    asin,
                    product_type,
                    _first_value(attributes.get("item_name")) or sku,
                    _first_value(attributes.get("brand")),
                    [(kind, value)],
                )
        elif exemption is True or str(exemption).lower() == "true":
            asin = new_asin(f"exempt:{seller_id}:{sku}")
            new_catalog = CatalogItem(
                asin,
                product_type,
                _first_value(attributes.get("item_name")) or sku,
                _first_value(attributes.get("brand")),
            )
        else:
            return None, None, [missing_identifier_issue(sku)]
        base = Listing(
            seller_id,
            mp,
            sku,
            asin,
            product_type,
            None,
            0,
            "FBM",
            created=now,
            updated=now,
            title=_first_value(attributes.get("item_name")) or sku,
            brand=_first_value(attributes.get("brand")),
        )
    change = Change(replace_all_attrs=requirements != "LISTING_OFFER_ONLY")
    for name, values in attributes.items():
        read_attribute(name, values, change, listing, mp, issues)
    if "purchasable_offer" not in attributes and requirements != "LISTING_PRODUCT_ONLY":
        change.price_removed = listing is None
    check_offer(base, change, issues)
    if has_errors(issues):
        return None, None, issues
    change.apply(base, now)
    base.product_type = product_type or base.product_type
    return base, new_catalog, issues


# --- rendering (Item) ------------------------------------------------------------------------------------------------
def render_attributes(listing: Listing) -> dict[str, Any]:
    attrs: dict[str, Any] = copy.deepcopy(listing.attributes)
    mp = listing.marketplace_id
    attrs.setdefault("item_name", [{"value": listing.title, "marketplace_id": mp}])
    if listing.brand:
        attrs.setdefault("brand", [{"value": listing.brand, "marketplace_id": mp}])
    offer: dict[str, Any] = {"marketplace_id": mp, "currency": listing.currency, "audience": "ALL"}
    if listing.price is not None:
        offer["our_price"] = [{"schedule": [{"value_with_tax": listing.price}]}]
    if listing.min_price is not None:
        offer["minimum_seller_allowed_price"] = [{"schedule": [{"value_with_tax": listing.min_price}]}]
    if listing.max_price is not None:
        offer["maximum_seller_allowed_price"] = [{"schedule": [{"value_with_tax": listing.max_price}]}]
    attrs["purchasable_offer"] = [offer]
    code = fba_code(listing) if listing.fulfillment == "FBA" else "DEFAULT"
    fa: dict[str, Any] = {"fulfillment_channel_code": code}
    if listing.fulfillment == "FBM":
        fa["quantity"] = listing.quantity
        if listing.handling_time is not None:
            fa["lead_time_to_ship_max_days"] = listing.handling_time
    attrs["fulfillment_availability"] = [fa]
    return attrs


def fba_code(listing: Listing) -> str:
    return FBA_CHANNEL_CODE[MARKETPLACES[listing.marketplace_id].region]


def render_item(listing: Listing, included: list[str], fba_quantity: int | None) -> dict[str, Any]:
    mp = listing.marketplace_id
    item: dict[str, Any] = {"sku": listing.sku}
    quantity = fba_quantity if listing.fulfillment == "FBA" else listing.quantity
    if "summaries" in included:
        buyable = listing.price is not None and (quantity or 0) > 0 and not has_errors(listing.issues)
        summary: dict[str, Any] = {
            "marketplaceId": mp,
            "asin": listing.asin,
            "productType": listing.product_type,
            "conditionType": listing.condition,
            "status": ["BUYABLE", "DISCOVERABLE"] if buyable else ["DISCOVERABLE"],
            "itemName": listing.title,
            "createdDate": iso(listing.created),
            "lastUpdatedDate": iso(listing.updated),
        }
        if listing.fulfillment == "FBA":
            summary["fnSku"] = fnsku(listing.seller_id, listing.sku)
        item["summaries"] = [summary]
    if "attributes" in included:
        item["attributes"] = render_attributes(listing)
    if "issues" in included:
        item["issues"] = copy.deepcopy(listing.issues)
    if "offers" in included:
        item["offers"] = (
            [
                {
                    "marketplaceId": mp,
                    "offerType": "B2C",
                    "price": {"currencyCode": listing.currency, "amount": money_str(listing.price, listing.decimals)},
                }
            ]
            if listing.price is not None
            else []
        )
    if "fulfillmentAvailability" in included:
        code = fba_code(listing) if listing.fulfillment == "FBA" else "DEFAULT"
        item["fulfillmentAvailability"] = [{"fulfillmentChannelCode": code, "quantity": int(quantity or 0)}]
    if "procurement" in included:
        item["procurement"] = []
    if "relationships" in included:
        item["relationships"] = [{"marketplaceId": mp, "relationships": []}]
    if "productTypes" in included:
        item["productTypes"] = [{"marketplaceId": mp, "productType": listing.product_type}]
    return item


def fnsku(seller_id: str, sku: str) -> str:
    return "X00" + hashlib.sha1(f"{seller_id}:{sku}".encode()).hexdigest().upper()[:7]
