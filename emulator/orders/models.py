"""Orders v0: orders and their items as the emulator stores them, rendered in the v0 shape (string money)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from emulator.clock import iso
from emulator.jsonutil import money_str

__all__ = ["Order", "OrderItem", "render_order", "render_item"]


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
