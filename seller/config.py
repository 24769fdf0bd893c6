"""The seller's channel connections: one entry per Amazon marketplace, loaded from `channels.yaml`.

Amazon requires a sales channel to be enabled once per marketplace, so every entry names exactly one marketplace and
becomes one Dagster partition (its `name`). The file's path comes from `SALES_CHANNEL_CONFIG` (default
`channels.yaml` in the working directory); the seller's data directory from `SALES_CHANNEL_DATA` (default `./data`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from seller.marketplaces import MARKETPLACES, REGIONS, Marketplace

__all__ = [
    "Allocation",
    "Channel",
    "ChannelConfigError",
    "Pricing",
    "config_path",
    "data_dir",
    "load_channels",
    "parse_channels",
]

CONFIG_ENV = "SALES_CHANNEL_CONFIG"
DATA_ENV = "SALES_CHANNEL_DATA"

# Amazon merchant tokens are upper-case alphanumerics starting with "A" (e.g. A2EUQ1WTGCTBG2).
_SELLER_ID = re.compile(r"^A[0-9A-Z]{9,19}$")
# The partition key: short, lower-case, safe in file paths and Dagster partition keys (no commas).
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class ChannelConfigError(ValueError):
    """The channels file is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class Pricing:
    """How Buy Box prices are computed for one channel: the implicit `default` rule (the seed's `match_competitor`),
    the competitor filters every `match_competitor` step uses, and what a step does when there is no competitor or
    the competitor is below the SKU's floor. The defaults price exactly as the seed did."""

    undercut_percent: Decimal = Decimal("0.5")
    freshness_hours: int = 24
    compete_with: str = "all"  # "all" | "fba_only" | "featured" (Buy Box-eligible offers only)
    observation_retention_days: int = 30  # offer_observations / offer_snapshots older than this are deleted
    min_feedback_rating: Decimal | None = None  # percent positive; a competitor without a rating is kept
    min_feedback_count: int | None = None  # a competitor without a count is kept
    exclude_sellers: tuple[str, ...] = ()
    include_sellers: tuple[str, ...] = ()  # empty: every seller
    no_competitor: str = "base"  # "base" (the price so far) | "max" (max_price) | "hold" (Amazon's current price)
    below_floor: str = "floor"  # "floor" (the clamp lifts it) | "hold" (Amazon's current price) | "max" (max_price)
    default_rule: bool = True  # the implicit rule `default`: match_competitor, priority 0, scope all
    fees_max_age_days: int = 7  # Amazon's fee estimate of a SKU is asked again once older than this
    # Guards (pricing.guards): a SKU whose new price moves more than this percent from its published price is held
    # there (None: no guard); the push is blocked when more than `large_move_share` of the priced SKUs would drop by
    # more than `large_move_percent` in one run.
    max_change_percent: Decimal | None = None
    large_move_percent: Decimal = Decimal(20)
    large_move_share: Decimal = Decimal("0.2")


@dataclass(frozen=True)
class Allocation:
    """How much of a SKU's available FBM stock (master minus the seller's open reservations) one channel shows.

    Applied in this order, never below 0: minus `safety_buffer` units, times `allocation_percent` / 100 rounded down
    to a whole unit, at most `max_quantity` (None: no cap). The defaults show everything available."""

    safety_buffer: int = 0
    allocation_percent: Decimal = Decimal(100)  # 0-100, at most 2 decimals
    max_quantity: int | None = None

    @property
    def basis_points(self) -> int:
        """`allocation_percent` in hundredths of a percent (a whole number: at most 2 decimals)."""
        return int(self.allocation_percent * 100)

    def describe(self) -> str:
        cap = "none" if self.max_quantity is None else str(self.max_quantity)
        return (
            f"safety_buffer {self.safety_buffer}, allocation_percent {self.allocation_percent.normalize():f}, "
            f"max_quantity {cap}"
        )


@dataclass(frozen=True)
class Channel:
    name: str
    seller_id: str
    marketplace_id: str
    region: str
    enable_notifications: bool = False
    use_feed: str = "auto"  # "auto" | "true" | "false"
    pricing: Pricing = field(default_factory=Pricing)
    allocation: Allocation = field(default_factory=Allocation)

    @property
    def marketplace(self) -> Marketplace:
        return MARKETPLACES[self.marketplace_id]

    @property
    def currency(self) -> str:
        return self.marketplace.currency

    @property
    def decimals(self) -> int:
        return self.marketplace.decimals


def config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV) or "channels.yaml")


def data_dir() -> Path:
    return Path(os.environ.get(DATA_ENV) or "data")


def load_channels(path: str | os.PathLike[str] | None = None) -> dict[str, Channel]:
    """Read and validate the channels file; channels keyed by name, in file order."""
    path = Path(path) if path is not None else config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ChannelConfigError(f"{path}: cannot read the channels file ({exc.strerror})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ChannelConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_channels(doc, source=str(path))


def parse_channels(doc: Any, source: str = "channels.yaml") -> dict[str, Channel]:
    """Validate a parsed channels document against the marketplace table."""
    entries = doc.get("channels") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ChannelConfigError(f"{source}: expected a non-empty list under 'channels'")
    channels: dict[str, Channel] = {}
    first_of_account: dict[tuple[str, str], tuple[int, Channel]] = {}
    for index, entry in enumerate(entries, start=1):
        channel = _parse_entry(entry, f"{source}: channel entry {index}")
        if channel.name in channels:
            raise ChannelConfigError(
                f"{source}: channel entry {index} ({channel.name!r}): duplicate name {channel.name!r} "
                "(each marketplace connection needs its own name)"
            )
        account = (channel.seller_id, channel.region)
        if account in first_of_account:
            _same_allocation(first_of_account[account], (index, channel), source)
        else:
            first_of_account[account] = (index, channel)
        channels[channel.name] = channel
    return channels


def _same_allocation(first: tuple[int, Channel], other: tuple[int, Channel], source: str) -> None:
    """Amazon's unified account: one seller's marketplaces of a region hold ONE quantity per SKU (the last quantity
    sent wins), so two channels of one seller and region must compute the same figure: equal allocation settings."""
    (index_a, a), (index_b, b) = first, other
    for key in ("safety_buffer", "allocation_percent", "max_quantity"):
        mine, theirs = getattr(b.allocation, key), getattr(a.allocation, key)
        if mine != theirs:
            raise ChannelConfigError(
                f"{source}: channel entry {index_b} ({b.name!r}): allocation.{key} is {_shown(mine)} but channel "
                f"entry {index_a} ({a.name!r}) has {_shown(theirs)}; channels of one seller in one region "
                f"({b.seller_id}, {b.region}) publish one quantity per SKU on Amazon (a unified account: the last "
                "quantity sent wins), so their allocation settings must be equal"
            )


def _shown(value: int | Decimal | None) -> str:
    if value is None:
        return "not set"
    return f"{value.normalize():f}" if isinstance(value, Decimal) else str(value)


def _parse_entry(entry: Any, where: str) -> Channel:
    if not isinstance(entry, dict):
        raise ChannelConfigError(f"{where}: expected a mapping with name, seller_id, marketplace_id, region")
    missing = [k for k in ("name", "seller_id", "marketplace_id", "region") if not entry.get(k)]
    if missing:
        raise ChannelConfigError(f"{where}: missing {', '.join(missing)}")
    name = str(entry["name"])
    where = f"{where} ({name!r})"
    if not _NAME.match(name):
        raise ChannelConfigError(f"{where}: name must be lower-case letters, digits, '-' or '_' (max 32)")
    seller_id = str(entry["seller_id"])
    if not _SELLER_ID.match(seller_id):
        raise ChannelConfigError(
            f"{where}: malformed seller_id {seller_id!r} (Amazon merchant tokens look like A2EUQ1WTGCTBG2)"
        )
    region = str(entry["region"]).lower()
    if region not in REGIONS:
        raise ChannelConfigError(f"{where}: region must be one of {', '.join(REGIONS)}, not {region!r}")
    marketplace_id = str(entry["marketplace_id"])
    market = MARKETPLACES.get(marketplace_id)
    if market is None:
        raise ChannelConfigError(f"{where}: unknown marketplace_id {marketplace_id!r}")
    if market.region != region:
        raise ChannelConfigError(
            f"{where}: marketplace {marketplace_id} ({market.country}) belongs to region {market.region}, not {region}"
        )
    use_feed = str(entry.get("use_feed", "auto")).lower()
    if use_feed not in ("auto", "true", "false"):
        raise ChannelConfigError(f"{where}: use_feed must be auto, true or false, not {use_feed!r}")
    notifications = entry.get("enable_notifications", False)
    if not isinstance(notifications, bool):
        raise ChannelConfigError(f"{where}: enable_notifications must be true or false")
    return Channel(
        name=name,
        seller_id=seller_id,
        marketplace_id=marketplace_id,
        region=region,
        enable_notifications=notifications,
        use_feed=use_feed,
        pricing=_parse_pricing(entry.get("pricing") or {}, where),
        allocation=_parse_allocation(entry.get("allocation") or {}, where),
    )


_GUARDS = ("max_change_percent", "large_move_percent", "large_move_share")


_PRICING_KEYS = {
    "undercut_percent",
    "freshness_hours",
    "compete_with",
    "observation_retention_days",
    "min_feedback_rating",
    "min_feedback_count",
    "exclude_sellers",
    "include_sellers",
    "fees_max_age_days",
    "no_competitor",
    "below_floor",
    "default_rule",
    *_GUARDS,
}


def _parse_pricing(block: Any, where: str) -> Pricing:
    if not isinstance(block, dict):
        raise ChannelConfigError(f"{where}: pricing must be a mapping")
    unknown = set(block) - _PRICING_KEYS
    if unknown:
        raise ChannelConfigError(f"{where}: unknown pricing keys {sorted(unknown)}")
    try:
        undercut = Decimal(str(block.get("undercut_percent", "0.5")))
    except InvalidOperation:
        raise ChannelConfigError(f"{where}: pricing.undercut_percent must be a number") from None
    if not Decimal(0) <= undercut < Decimal(100) or undercut.as_tuple().exponent < -4:
        raise ChannelConfigError(f"{where}: pricing.undercut_percent must be in [0, 100) with ≤ 4 decimals")
    freshness = _positive_whole(block, "freshness_hours", 24, "hours", where)
    compete_with = str(block.get("compete_with", "all"))
    if compete_with not in ("all", "fba_only", "featured"):
        raise ChannelConfigError(f"{where}: pricing.compete_with must be all, fba_only or featured")
    retention = _positive_whole(block, "observation_retention_days", 30, "days", where)
    rating = block.get("min_feedback_rating")
    if rating is not None:
        try:
            rating = Decimal(str(rating)) if not isinstance(rating, bool) else None
        except InvalidOperation:
            rating = None
        if rating is None or not rating.is_finite() or not Decimal(0) <= rating <= 100:
            raise ChannelConfigError(f"{where}: pricing.min_feedback_rating must be a percentage in [0, 100]")
    count = block.get("min_feedback_count")
    if count is not None and not _whole(count):
        raise ChannelConfigError(f"{where}: pricing.min_feedback_count must be a whole number ≥ 0")
    sellers = {
        key: _seller_list(block.get(key), f"{where}: pricing.{key}") for key in ("exclude_sellers", "include_sellers")
    }
    choices = {}
    for key, allowed in (("no_competitor", ("base", "max", "hold")), ("below_floor", ("floor", "hold", "max"))):
        choices[key] = str(block.get(key, allowed[0]))
        if choices[key] not in allowed:
            raise ChannelConfigError(f"{where}: pricing.{key} must be {', '.join(allowed[:-1])} or {allowed[-1]}")
    default_rule = block.get("default_rule", True)
    if not isinstance(default_rule, bool):
        raise ChannelConfigError(f"{where}: pricing.default_rule must be true or false")
    fees_age = _positive_whole(block, "fees_max_age_days", 7, "days", where)
    return Pricing(
        undercut_percent=undercut,
        freshness_hours=freshness,
        compete_with=compete_with,
        observation_retention_days=retention,
        min_feedback_rating=rating,
        min_feedback_count=count,
        **sellers,
        **choices,
        default_rule=default_rule,
        fees_max_age_days=fees_age,
        **_parse_guards(block, where),
    )


def _positive_whole(block: dict, key: str, default: int, unit: str, where: str) -> int:
    value = block.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ChannelConfigError(f"{where}: pricing.{key} must be a positive whole number of {unit}")
    return value


def _seller_list(value: Any, where: str) -> tuple[str, ...]:
    """A list of Amazon seller ids (merchant tokens)."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and _SELLER_ID.match(v) for v in value):
        raise ChannelConfigError(f"{where} must be a list of seller ids (merchant tokens such as A2EUQ1WTGCTBG2)")
    return tuple(value)


def _parse_guards(block: dict, where: str) -> dict[str, Decimal | None]:
    """The guards of a pricing block (each with ≤ 4 decimals): max_change_percent a percent > 0, absent or null for
    no guard; large_move_percent a percent in (0, 100]; large_move_share a fraction of the priced SKUs in [0, 1]."""
    limit = _guard_number(block, "max_change_percent", None, where)
    if limit is not None and limit <= 0:
        raise ChannelConfigError(f"{where}: pricing.max_change_percent must be > 0 (or null: no guard), not {limit}")
    drop = _guard_number(block, "large_move_percent", Decimal(20), where)
    if not Decimal(0) < drop <= Decimal(100):
        raise ChannelConfigError(f"{where}: pricing.large_move_percent must be a percent in (0, 100], not {drop}")
    share = _guard_number(block, "large_move_share", Decimal("0.2"), where)
    if not Decimal(0) <= share <= Decimal(1):
        raise ChannelConfigError(
            f"{where}: pricing.large_move_share must be a fraction of the priced SKUs in [0, 1] (0.2 = 20 %), "
            f"not {share}"
        )
    return {"max_change_percent": limit, "large_move_percent": drop, "large_move_share": share}


def _guard_number(block: dict, key: str, default: Decimal | None, where: str) -> Decimal | None:
    raw = block.get(key, default)
    if raw is None and default is None:
        return None
    try:
        value = None if isinstance(raw, bool) or raw is None else Decimal(str(raw))
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or value.as_tuple().exponent < -4:
        raise ChannelConfigError(f"{where}: pricing.{key} must be a number with ≤ 4 decimals, not {raw!r}")
    return value


def _parse_allocation(block: Any, where: str) -> Allocation:
    if not isinstance(block, dict):
        raise ChannelConfigError(f"{where}: allocation must be a mapping")
    unknown = set(block) - {"safety_buffer", "allocation_percent", "max_quantity"}
    if unknown:
        raise ChannelConfigError(f"{where}: unknown allocation keys {sorted(unknown)}")
    buffer = block.get("safety_buffer", 0)
    if not _whole(buffer):
        raise ChannelConfigError(f"{where}: allocation.safety_buffer must be a whole number of units ≥ 0")
    cap = block.get("max_quantity")
    if cap is not None and not _whole(cap):
        raise ChannelConfigError(f"{where}: allocation.max_quantity must be a whole number of units ≥ 0 (or absent)")
    percent = block.get("allocation_percent", 100)
    try:
        share = Decimal(str(percent)) if not isinstance(percent, bool) else None
    except InvalidOperation:
        share = None
    if share is None or not share.is_finite() or not Decimal(0) <= share <= 100 or share.as_tuple().exponent < -2:
        raise ChannelConfigError(
            f"{where}: allocation.allocation_percent must be a number in [0, 100] with ≤ 2 decimals"
        )
    return Allocation(safety_buffer=buffer, allocation_percent=share, max_quantity=cap)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
