"""Notification bodies as Amazon sends them (PascalCase; FEED_PROCESSING_FINISHED camelCase), an SNS wrapper, and
the SP-API, SQS, sensor and enable_channel calls the notification tests share."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import dagster as dg

from seller.config import parse_channels

REPO = Path(__file__).resolve().parents[2]
SMALL = REPO / "tests" / "data" / "small"

SELLER = "A3DEMOSELLER01"
US = "ATVPDKIKX0DER"
UK = "A1F83G8C2ARO7P"
DE = "A1PA6795UKMFR9"

CHANNELS = parse_channels(
    {
        "channels": [
            {"name": "us", "seller_id": SELLER, "marketplace_id": US, "region": "na", "enable_notifications": True},
            {"name": "uk", "seller_id": SELLER, "marketplace_id": UK, "region": "eu", "enable_notifications": True},
            {"name": "de", "seller_id": SELLER, "marketplace_id": DE, "region": "eu", "enable_notifications": True},
        ]
    }
)


def order_change(
    order_id: str,
    status: str,
    at: str,
    items: list[tuple[str, int]] | None = None,
    *,
    market: str = US,
    seller: str = SELLER,
    fulfillment: str = "MFN",
    notification_id: str | None = None,
    purchase_date: str = "2026-11-29T09:00:00Z",
) -> dict[str, Any]:
    return {
        "NotificationVersion": "1.0",
        "NotificationType": "ORDER_CHANGE",
        "PayloadVersion": "1.0",
        "EventTime": at,
        "Payload": {
            "OrderChangeNotification": {
                "NotificationLevel": "OrderLevel",
                "SellerId": seller,
                "AmazonOrderId": order_id,
                "OrderChangeType": "OrderStatusChange",
                "OrderChangeTrigger": {"TimeOfOrderChange": at, "ChangeReason": "Order status changed"},
                "Summary": {
                    "MarketplaceId": market,
                    "OrderStatus": status,
                    "PurchaseDate": purchase_date,
                    "FulfillmentType": fulfillment,
                    "OrderItems": [
                        {"OrderItemId": f"{order_id}-{n}", "SellerSKU": sku, "SupplySourceId": "DEFAULT", "Quantity": q}
                        for n, (sku, q) in enumerate(items or [])
                    ],
                },
            }
        },
        "NotificationMetadata": {
            "ApplicationId": "amzn1.sellerapps.app.test",
            "SubscriptionId": "sub-1",
            "PublishTime": at,
            "NotificationId": notification_id or str(uuid.uuid4()),
        },
    }


def fba_change(sku: str, fulfillable: int, at: str, markets: tuple[str, ...] = (US,)) -> dict[str, Any]:
    return {
        "NotificationVersion": "1.0",
        "NotificationType": "FBA_INVENTORY_AVAILABILITY_CHANGES",
        "PayloadVersion": "1.0",
        "EventTime": at,
        "Payload": {
            "SellerId": SELLER,
            "FNSKU": "X00TEST",
            "ASIN": "B000000001",
            "SKU": sku,
            "FulfillmentInventoryByMarketplace": [
                {"MarketplaceId": m, "ItemName": sku, "FulfillmentInventory": {"Fulfillable": fulfillable}}
                for m in markets
            ],
        },
    }


def offer_change(asin: str, at: str, market: str = US, lowest: str = "17.99") -> dict[str, Any]:
    money = {"Amount": lowest, "CurrencyCode": "USD"}
    return {
        "NotificationVersion": "1.0",
        "NotificationType": "ANY_OFFER_CHANGED",
        "PayloadVersion": "1.0",
        "EventTime": at,
        "Payload": {
            "AnyOfferChangedNotification": {
                "SellerId": SELLER,
                "OfferChangeTrigger": {
                    "MarketplaceId": market,
                    "ASIN": asin,
                    "ItemCondition": "new",
                    "TimeOfOfferChange": at,
                    "OfferChangeType": "External",
                },
                "Summary": {"LowestPrices": [{"Condition": "new", "LandedPrice": money}], "BuyBoxPrices": []},
                "Offers": [{"SellerId": "A1COMPETITOR01", "ListingPrice": money}],
            }
        },
        "NotificationMetadata": {"PublishTime": at, "NotificationId": str(uuid.uuid4())},
    }


def feed_finished(feed_id: str, at: str) -> dict[str, Any]:
    return {
        "notificationVersion": "2020-09-04",
        "notificationType": "FEED_PROCESSING_FINISHED",
        "payloadVersion": "2020-09-04",
        "eventTime": at,
        "payload": {
            "feedProcessingFinishedNotification": {
                "sellerId": SELLER,
                "feedId": feed_id,
                "feedType": "JSON_LISTINGS_FEED",
                "processingStatus": "DONE",
            }
        },
        "notificationMetadata": {"publishTime": at, "notificationId": str(uuid.uuid4())},
    }


def sns(document: dict[str, Any]) -> str:
    """The notification as an SNS topic would wrap it for an SQS subscriber."""
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:sales-channel",
            "Message": json.dumps(document),
            "Timestamp": "2026-11-29T10:00:00.000Z",
        }
    )


def spapi_for(server: Any, tmp_path: Path) -> Any:
    from resources.spapi_resource import SpApiResource

    creds = server.state.store.tokens.credentials
    return SpApiResource(
        client_id=creds.client_id,
        client_secret=creds.client_secret,
        refresh_token=creds.refresh_token,
        endpoint=server.url,
        token_url=server.token_url,
        state_dir=str(tmp_path / "spapi"),
        requests_per_minute=0,
        requests_per_day=0,
    )


def sqs(endpoint: str) -> Any:
    return boto3.client(
        "sqs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )


def enable(name: str, spapi: Any, instance: dg.DagsterInstance) -> dg.ExecuteJobResult:
    """The real `enable_channel` job for channel `name`, recorded in `instance`."""
    from pipelines.enablement import enable_channel

    result = enable_channel.execute_in_process(
        run_config={"ops": {"enable_channel_op": {"config": {"channel": name}}}},
        resources={"spapi": spapi},
        instance=instance,
        raise_on_error=False,
    )
    assert result.success, f"enable_channel {name} failed"
    return result


def run_sensor(data_dir: Path, instance: dg.DagsterInstance, cursor: str | None = None) -> dg.SensorResult:
    """One tick of the real `sqs_notifications_sensor` on `instance`."""
    from pipelines.sensors import sqs_notifications_sensor
    from resources.warehouse import Warehouse

    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"warehouse": Warehouse(data_dir=str(data_dir))}
    )
    return sqs_notifications_sensor(context)


def store_rows(data_dir: Path, sql: str) -> list[tuple]:
    """`sql` on the notification store (the file, or the Postgres schema in the deployed mode)."""
    from resources.warehouse import Warehouse

    with Warehouse(data_dir=str(data_dir)).connect_notifications(read_only=True) as con:
        return con.execute(sql).fetchall()


def offer_change_full(
    asin: str,
    at: str,
    offers: list[tuple[str, str, str, bool, bool | None]],
    *,
    market: str = US,
    buybox: str | None = None,
    threshold: str | None = None,
) -> dict[str, Any]:
    """ANY_OFFER_CHANGED as Amazon sends it (AnyOfferChangedNotification.json): `offers` are (seller, listing price,
    shipping, FBA, IsBuyBoxWinner or None to leave the flag out, as the schema does)."""

    def money(amount: str) -> dict[str, Any]:
        return {"Amount": float(amount), "CurrencyCode": "USD"}  # Amazon's JSON numbers

    fba = sum(1 for o in offers if o[3])
    landed = sorted(offers, key=lambda o: float(o[1]) + float(o[2]))
    summary: dict[str, Any] = {
        "NumberOfOffers": [
            {"Condition": "new", "FulfillmentChannel": "Amazon", "OfferCount": fba},
            {"Condition": "new", "FulfillmentChannel": "Merchant", "OfferCount": len(offers) - fba},
        ],
        "LowestPrices": [
            {
                "Condition": "new",
                "FulfillmentChannel": "Amazon" if o[3] else "Merchant",
                "LandedPrice": money(str(float(o[1]) + float(o[2]))),
                "ListingPrice": money(o[1]),
                "Shipping": money(o[2]),
            }
            for o in landed[:2]
        ],
        "BuyBoxPrices": [{"Condition": "new", "LandedPrice": money(buybox)}] if buybox else [],
        "TotalBuyBoxEligibleOffers": len(offers),
    }
    if threshold:
        summary["CompetitivePriceThreshold"] = money(threshold)
    rendered = []
    for seller, price, shipping, is_fba, winner in offers:
        offer: dict[str, Any] = {
            "SellerId": seller,
            "SubCondition": "new",
            "SellerFeedbackRating": {"SellerPositiveFeedbackRating": 97.5, "FeedbackCount": 4321},
            "ShippingTime": {"MinimumHours": 24, "MaximumHours": 48, "AvailabilityType": "NOW"},
            "ListingPrice": money(price),
            "Shipping": money(shipping),
            "IsFulfilledByAmazon": is_fba,
            "PrimeInformation": {"IsOfferPrime": is_fba, "IsOfferNationalPrime": is_fba},
            "IsFeaturedMerchant": True,
            "ShipsDomestically": True,
        }
        if winner is not None:
            offer["IsBuyBoxWinner"] = winner
        rendered.append(offer)
    return {
        "NotificationVersion": "1.0",
        "NotificationType": "ANY_OFFER_CHANGED",
        "PayloadVersion": "1.0",
        "EventTime": at,
        "Payload": {
            "AnyOfferChangedNotification": {
                "SellerId": SELLER,
                "OfferChangeTrigger": {
                    "MarketplaceId": market,
                    "ASIN": asin,
                    "ItemCondition": "new",
                    "TimeOfOfferChange": at,
                    "OfferChangeType": "External",
                },
                "Summary": summary,
                "Offers": rendered,
            }
        },
        "NotificationMetadata": {
            "ApplicationId": "amzn1.sellerapps.app.test",
            "SubscriptionId": "sub-1",
            "PublishTime": at,
            "NotificationId": str(uuid.uuid4()),
        },
    }
