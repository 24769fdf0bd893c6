"""Notifications: the seller's SQS queue, Amazon's destination for it, and the channel's subscriptions.

SQS configuration (environment):
- `SALES_CHANNEL_SQS_ENDPOINT`: the SQS endpoint URL. Unset: AWS itself (boto3's default endpoint for the region).
  With the emulator target it must point at a moto server (`uv run moto_server -p 5000` →
  `http://127.0.0.1:5000`, and start the emulator with `--sqs-endpoint` the same URL); without it the sensor skips.
- `AWS_REGION` (else `AWS_DEFAULT_REGION`, else `us-east-1`): the queue's region.
- `SALES_CHANNEL_SQS_QUEUE`: the queue name, `{seller_id}` is replaced (default `sales-channel-{seller_id}`: one
  queue per seller, shared by its channels, since subscriptions are per seller).
- `SALES_CHANNEL_SQS_WAIT_SECONDS` (default 2): the sensor's long-poll wait per receive (keep a tick under 60 s).
AWS credentials come from boto3's usual chain; against a custom endpoint without credentials, moto's `testing` ones.
"""

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from pipelines.partitions import channel_for, channel_partitions
from resources.spapi import ResourceNotFound, SpApiClient, SpApiError
from resources.spapi_resource import SpApiResource
from resources.warehouse import Warehouse
from seller.config import Channel
from sync.notifications import SUBSCRIBED_TYPES, queue_policy

__all__ = [
    "SqsSettings",
    "ensure_queue",
    "ensure_subscriptions",
    "notification_subscriptions",
    "sqs_client",
    "wire_notifications",
]

ENDPOINT_ENV = "SALES_CHANNEL_SQS_ENDPOINT"
QUEUE_ENV = "SALES_CHANNEL_SQS_QUEUE"
WAIT_ENV = "SALES_CHANNEL_SQS_WAIT_SECONDS"
DEFAULT_QUEUE = "sales-channel-{seller_id}"


@dataclass(frozen=True)
class SqsSettings:
    endpoint: str | None
    region: str
    queue_template: str = DEFAULT_QUEUE
    wait_seconds: int = 2

    @classmethod
    def from_env(cls) -> "SqsSettings":
        return cls(
            endpoint=os.environ.get(ENDPOINT_ENV) or None,
            region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            queue_template=os.environ.get(QUEUE_ENV) or DEFAULT_QUEUE,
            wait_seconds=int(os.environ.get(WAIT_ENV) or 2),
        )

    def queue_name(self, seller_id: str) -> str:
        return self.queue_template.format(seller_id=seller_id)

    @property
    def configured(self) -> bool:
        """False when the emulator is the target and no SQS endpoint was given (nothing to poll)."""
        return self.endpoint is not None or os.environ.get("SALES_CHANNEL_SPAPI", "emulator") == "amazon"


def sqs_client(settings: SqsSettings) -> Any:
    """A boto3 SQS client for the settings (short timeouts: a sensor tick must stay well under 60 s)."""
    import boto3
    from botocore.config import Config

    kwargs: dict[str, Any] = {
        "region_name": settings.region,
        "config": Config(
            connect_timeout=5, read_timeout=settings.wait_seconds + 10, retries={"max_attempts": 3, "mode": "standard"}
        ),
    }
    if settings.endpoint:
        kwargs["endpoint_url"] = settings.endpoint
        if not os.environ.get("AWS_ACCESS_KEY_ID") and not os.environ.get("AWS_PROFILE"):
            kwargs.update(aws_access_key_id="testing", aws_secret_access_key="testing")  # moto accepts any
    return boto3.client("sqs", **kwargs)


def queue_url(sqs: Any, name: str) -> str | None:
    try:
        return sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except sqs.exceptions.QueueDoesNotExist:
        return None


def ensure_queue(sqs: Any, name: str) -> tuple[str, str, bool]:
    """(queue URL, queue ARN, created): the standard queue `name`, created if missing, with the policy letting
    Amazon's notifications account send to it. Idempotent."""
    url = queue_url(sqs, name)
    created = url is None
    if url is None:
        url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": queue_policy(arn)})
    return url, arn, created


def _destination_for(client: SpApiClient, arn: str) -> dict[str, Any] | None:
    for destination in client.get_destinations():
        if ((destination.get("resource") or {}).get("sqs") or {}).get("arn") == arn:
            return destination
    return None


def ensure_subscriptions(client: SpApiClient, arn: str, name: str) -> dict[str, Any]:
    """The destination for `arn` and the seller's subscription to every type in `SUBSCRIBED_TYPES`, each created
    only when missing. Returns {destination_id, created: [...], subscriptions: {type: id}}."""
    created: list[str] = []
    destination = _destination_for(client, arn)
    if destination is None:
        try:
            destination = client.create_destination(name, arn)
            created.append("destination")
        except SpApiError as exc:
            if exc.status != 409:  # a concurrent run created it first
                raise
            destination = _destination_for(client, arn)
            if destination is None:
                raise
    destination_id = destination["destinationId"]
    subscriptions: dict[str, str] = {}
    for notification_type, version in SUBSCRIBED_TYPES.items():
        try:
            current = client.get_subscription(notification_type)
        except ResourceNotFound:
            current = None
        if current is None:
            try:
                current = client.create_subscription(notification_type, destination_id, payload_version=version)
                created.append(notification_type)
            except SpApiError as exc:
                if exc.status != 409:
                    raise
                current = client.get_subscription(notification_type)
        elif current.get("destinationId") != destination_id:
            raise dg.Failure(
                description=(
                    f"{notification_type} is already subscribed to destination {current.get('destinationId')}, not "
                    f"to this queue's {destination_id}; delete that subscription to move it here"
                )
            )
        subscriptions[notification_type] = current["subscriptionId"]
    return {"destination_id": destination_id, "created": created, "subscriptions": subscriptions}


def wire_notifications(channel: Channel, client: SpApiClient, settings: SqsSettings) -> dict[str, Any]:
    """Queue, destination and subscriptions for the channel's seller; idempotent."""
    sqs = sqs_client(settings)
    name = settings.queue_name(channel.seller_id)
    url, arn, queue_created = ensure_queue(sqs, name)
    result = ensure_subscriptions(client, arn, name)
    if queue_created:
        result["created"].insert(0, "queue")
    return {"queue_url": url, "queue_arn": arn, **result}


@dg.asset(
    partitions_def=channel_partitions,
    group_name="notifications",
    kinds={"sqs"},
    pool="spapi",
)
def notification_subscriptions(
    context: dg.AssetExecutionContext, spapi: SpApiResource, warehouse: Warehouse
) -> dg.MaterializeResult:
    """The channel's notification wiring: the seller's SQS queue (with Amazon's send policy), the SP-API destination
    for it and the seller's ORDER_CHANGE, FBA_INVENTORY_AVAILABILITY_CHANGES and ANY_OFFER_CHANGED subscriptions;
    one row per notification type. Each piece is created only when missing, so a re-run changes nothing. Source:
    SQS (boto3) and the Notifications API; nothing is done for a channel without `enable_notifications: true`."""
    channel = channel_for(context.partition_key)
    if not channel.enable_notifications:
        return dg.MaterializeResult(metadata={"enabled": False})
    settings = SqsSettings.from_env()
    if not settings.configured:  # the emulator target without an SQS server: nothing to wire (and nothing fails)
        reason = f"{ENDPOINT_ENV} is not set: point it at a moto server to use notifications with the emulator"
        context.log.warning(reason)
        return dg.MaterializeResult(metadata={"enabled": False, "skipped": reason})
    client = spapi.client_for(channel.seller_id, region=channel.region)
    result = wire_notifications(channel, client, settings)
    now = datetime.now(UTC)
    with warehouse.connect(channel.name) as con:
        con.execute(
            "CREATE OR REPLACE TABLE notification_subscriptions (channel VARCHAR, notification_type VARCHAR, "
            "subscription_id VARCHAR, destination_id VARCHAR, queue_arn VARCHAR, checked_at TIMESTAMPTZ)"
        )
        con.executemany(
            "INSERT INTO notification_subscriptions VALUES (?, ?, ?, ?, ?, ?)",
            [
                [channel.name, kind, sub_id, result["destination_id"], result["queue_arn"], now]
                for kind, sub_id in result["subscriptions"].items()
            ],
        )
    context.log.info(f"notifications for {channel.name}: created {result['created'] or 'nothing (all present)'}")
    return dg.MaterializeResult(
        metadata={
            "enabled": True,
            "queue_arn": result["queue_arn"],
            "destination_id": result["destination_id"],
            "created": ", ".join(result["created"]) or "nothing",
            "dagster/row_count": len(result["subscriptions"]),
            **spapi.metadata(),
        }
    )
