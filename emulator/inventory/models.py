"""FBA Inventory v1: Amazon-held stock per (seller, marketplace, SKU) and its summary shape (no HTTP)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emulator.clock import iso

__all__ = ["FbaStock", "render_summary"]


@dataclass
class FbaStock:
    seller_id: str
    marketplace_id: str
    sku: str
    asin: str
    fnsku: str
    product_name: str
    fulfillable: int
    inbound_working: int = 0
    inbound_shipped: int = 0
    inbound_receiving: int = 0
    reserved_customer_orders: int = 0
    unfulfillable: int = 0
    updated: float = 0.0

    @property
    def total(self) -> int:
        return (
            self.fulfillable
            + self.inbound_working
            + self.inbound_shipped
            + self.inbound_receiving
            + self.reserved_customer_orders
            + self.unfulfillable
        )


def render_summary(stock: FbaStock, details: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "asin": stock.asin,
        "fnSku": stock.fnsku,
        "sellerSku": stock.sku,
        "condition": "NewItem",
        "lastUpdatedTime": iso(stock.updated),
        "productName": stock.product_name,
        "totalQuantity": stock.total,
        "stores": [],
    }
    if details:
        out["inventoryDetails"] = {
            "fulfillableQuantity": stock.fulfillable,
            "inboundWorkingQuantity": stock.inbound_working,
            "inboundShippedQuantity": stock.inbound_shipped,
            "inboundReceivingQuantity": stock.inbound_receiving,
            "reservedQuantity": {
                "totalReservedQuantity": stock.reserved_customer_orders,
                "pendingCustomerOrderQuantity": stock.reserved_customer_orders,
                "pendingTransshipmentQuantity": 0,
                "fcProcessingQuantity": 0,
            },
            "researchingQuantity": {"totalResearchingQuantity": 0, "researchingQuantityBreakdown": []},
            "unfulfillableQuantity": {
                "totalUnfulfillableQuantity": stock.unfulfillable,
                "customerDamagedQuantity": 0,
                "warehouseDamagedQuantity": 0,
                "distributorDamagedQuantity": 0,
                "carrierDamagedQuantity": 0,
                "defectiveQuantity": 0,
                "expiredQuantity": 0,
            },
        }
    return out
