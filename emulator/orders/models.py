"""Orders as the emulator stores them, rendered in the Orders v0 shape (PascalCase, `payload` wrapper) and in the
Orders 2026-01-01 shape (camelCase, items embedded, `includedData` sections); both carry money as decimal strings."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from emulator.clock import iso
from emulator.jsonutil import money_str

__all__ = [
    "Order",
    "OrderItem",
    "render_order",
    "render_item",
    "render_order_2026",
    "FULFILLMENT_STATUS",
    "INCLUDED_DATA",
]


@dataclass
class OrderItem:
    order_item_id: str
    sku: str
    asin: str
    title: str
    quantity: int
    item_price: Decimal  # total for the line (unit price × quantity), as Orders v0 reports ItemPrice
    shipping_price: Decimal = Decimal(0)
    quantity_shipped: int = 0


@dataclass
class Order:
    order_id: str
    seller_id: str
    marketplace_id: str
    currency: str
    decimals: int
    purchase_date: float
    last_update: float
    status: str  # Pending | Unshipped | PartiallyShipped | Shipped | Canceled
    fulfillment_channel: str  # AFN | MFN
    items: list[OrderItem] = field(default_factory=list)
    shipments: list[dict[str, Any]] = field(default_factory=list)
    cancelled_by: str | None = None  # BUYER | MERCHANT | AMAZON, once Canceled

    @property
    def total(self) -> Decimal:
        return sum((i.item_price + i.shipping_price for i in self.items), Decimal(0))


def _money(amount: Decimal, order: Order) -> dict[str, str]:
    return {"CurrencyCode": order.currency, "Amount": money_str(amount, order.decimals)}


def render_order(order: Order, sales_channel: str) -> dict[str, Any]:
    shipped = sum(i.quantity_shipped for i in order.items)
    ordered = sum(i.quantity for i in order.items)
    out: dict[str, Any] = {
        "AmazonOrderId": order.order_id,
        "PurchaseDate": iso(order.purchase_date),
        "LastUpdateDate": iso(order.last_update),
        "OrderStatus": order.status,
        "FulfillmentChannel": order.fulfillment_channel,
        "SalesChannel": sales_channel,
        "ShipServiceLevel": "Std Domestic",
        "NumberOfItemsShipped": shipped,
        "NumberOfItemsUnshipped": ordered - shipped,
        "PaymentMethod": "Other",
        "MarketplaceId": order.marketplace_id,
        "ShipmentServiceLevelCategory": "Standard",
        "OrderType": "StandardOrder",
        "IsBusinessOrder": False,
        "IsPrime": order.fulfillment_channel == "AFN",
        "IsPremiumOrder": False,
        "IsGlobalExpressEnabled": False,
        "IsReplacementOrder": False,
        "IsSoldByAB": False,
        "IsISPU": False,
        "IsAccessPointOrder": False,
    }
    if order.status != "Pending":
        out["OrderTotal"] = _money(order.total, order)
    return out


def render_item(order: Order, item: OrderItem) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ASIN": item.asin,
        "SellerSKU": item.sku,
        "OrderItemId": item.order_item_id,
        "Title": item.title,
        "QuantityOrdered": item.quantity,
        "QuantityShipped": item.quantity_shipped,
        "IsGift": "false",
        "ConditionId": "New",
        "ConditionSubtypeId": "New",
        "IsTransparency": False,
    }
    if order.status != "Pending":
        zero = Decimal(0)
        out.update(
            ItemPrice=_money(item.item_price, order),
            ShippingPrice=_money(item.shipping_price, order),
            ItemTax=_money(zero, order),
            ShippingTax=_money(zero, order),
            PromotionDiscount=_money(zero, order),
            PromotionDiscountTax=_money(zero, order),
        )
    return out


# --- Orders 2026-01-01 -----------------------------------------------------------------------------------------------
# v0 OrderStatus → 2026-01-01 FulfillmentStatus. InvoiceUnconfirmed (all shipped, invoice pending; China) has no
# counterpart in the new enum and the emulator never produces it: it reads as SHIPPED.
FULFILLMENT_STATUS = {
    "PendingAvailability": "PENDING_AVAILABILITY",
    "Pending": "PENDING",
    "Unshipped": "UNSHIPPED",
    "PartiallyShipped": "PARTIALLY_SHIPPED",
    "Shipped": "SHIPPED",
    "InvoiceUnconfirmed": "SHIPPED",
    "Canceled": "CANCELLED",
    "Unfulfillable": "UNFULFILLABLE",
}
INCLUDED_DATA = frozenset(
    {
        "BUYER",
        "RECIPIENT",
        "PROCEEDS",
        "EXPENSE",
        "PROMOTION",
        "CANCELLATION",
        "FULFILLMENT",
        "PACKAGES",
        "TAX",
        "PAYMENT",
        "FULFILLMENT_ORDERS",
    }
)


def _money_2026(amount: Decimal, order: Order) -> dict[str, str]:
    return {"amount": money_str(amount, order.decimals), "currencyCode": order.currency}


def _unit_price(item: OrderItem) -> Decimal:
    return item.item_price / item.quantity if item.quantity else item.item_price


def _item_2026(order: Order, item: OrderItem, included: frozenset[str]) -> dict[str, Any]:
    priced = order.status != "Pending"  # as in v0, a Pending order carries no prices yet
    product: dict[str, Any] = {
        "asin": item.asin,
        "title": item.title,
        "sellerSku": item.sku,
        "condition": {"conditionType": "NEW", "conditionSubtype": "NEW"},
    }
    if priced:
        product["price"] = {"unitPrice": _money_2026(_unit_price(item), order)}
    out: dict[str, Any] = {"orderItemId": item.order_item_id, "quantityOrdered": item.quantity, "product": product}
    if "PROCEEDS" in included and priced:
        out["proceeds"] = {
            "proceedsTotal": _money_2026(item.item_price + item.shipping_price, order),
            "breakdowns": [
                {"type": "ITEM", "subtotal": _money_2026(item.item_price, order)},
                {"type": "SHIPPING", "subtotal": _money_2026(item.shipping_price, order)},
            ],
        }
    if "CANCELLATION" in included and order.status == "Canceled":
        out["cancellation"] = {"cancellationExecution": {"cancelledBy": order.cancelled_by or "BUYER"}}
    if "FULFILLMENT" in included:
        out["fulfillment"] = {
            "quantityFulfilled": item.quantity_shipped,
            "quantityUnfulfilled": item.quantity - item.quantity_shipped,
        }
    return out


def _package_2026(package: dict[str, Any]) -> dict[str, Any]:
    carrier = package.get("carrierName") if package.get("carrierCode") == "Other" else package.get("carrierCode")
    out: dict[str, Any] = {
        "packageReferenceId": str(package["packageReferenceId"]),
        "packageStatus": {"status": "SHIPPED"},
        "carrier": str(carrier),
        "shipTime": str(package["shipDate"]),
        "trackingNumber": str(package["trackingNumber"]),
        "packageItems": [
            {"orderItemId": str(line["orderItemId"]), "quantity": int(line["quantity"])}
            for line in package["orderItems"]
        ],
    }
    if package.get("shippingMethod"):
        out["shippingService"] = str(package["shippingMethod"])
    return out


def render_order_2026(order: Order, marketplace_name: str, included: frozenset[str]) -> dict[str, Any]:
    """An `Order` of Orders 2026-01-01. The base order always carries its items; `included` (the request's
    `includedData`) adds the FULFILLMENT, PROCEEDS, PACKAGES and CANCELLATION sections. The emulator holds no buyer,
    recipient, expense, promotion, tax, payment or fulfillment-order data: those values are accepted and add nothing."""
    out: dict[str, Any] = {
        "orderId": order.order_id,
        "createdTime": iso(order.purchase_date),
        "lastUpdatedTime": iso(order.last_update),
        "programs": ["PRIME"] if order.fulfillment_channel == "AFN" else [],
        "salesChannel": {
            "channelName": "AMAZON",
            "marketplaceId": order.marketplace_id,
            "marketplaceName": marketplace_name,
        },
    }
    if "PROCEEDS" in included and order.status != "Pending":
        items = sum((i.item_price for i in order.items), Decimal(0))
        shipping = sum((i.shipping_price for i in order.items), Decimal(0))
        out["proceeds"] = {
            "grandTotal": _money_2026(order.total, order),
            "breakdowns": [
                {"type": "ITEM", "subtotal": _money_2026(items, order)},
                {"type": "SHIPPING", "subtotal": _money_2026(shipping, order)},
            ],
        }
    if "FULFILLMENT" in included:
        out["fulfillment"] = {
            "fulfillmentStatus": FULFILLMENT_STATUS[order.status],
            "fulfilledBy": "AMAZON" if order.fulfillment_channel == "AFN" else "MERCHANT",
            "fulfillmentServiceLevel": "STANDARD",
        }
    out["orderItems"] = [_item_2026(order, item, included) for item in order.items]
    if "PACKAGES" in included and order.fulfillment_channel == "MFN":  # packages exist for FBM orders only
        out["packages"] = [_package_2026(package) for package in order.shipments]
    return out
