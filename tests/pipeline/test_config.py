"""The channels config: validated against the marketplace table, errors name the entry."""

from decimal import Decimal

import pytest

from seller.config import Allocation, ChannelConfigError, load_channels, parse_channels


def entry(**over):
    base = {"name": "us", "seller_id": "A3DEMOSELLER01", "marketplace_id": "ATVPDKIKX0DER", "region": "na"}
    return {**base, **over}


def test_repository_default_config_loads(channels):
    assert list(channels) == ["us", "uk", "de"]
    assert channels["uk"].currency == "GBP"
    assert channels["de"].pricing.compete_with == "fba_only"
    assert channels["de"].pricing.observation_retention_days == 30  # the default


def test_fees_max_age_days_defaults_to_a_week_and_is_read_per_channel():
    channels = parse_channels({"channels": [entry(), entry(name="us2", pricing={"fees_max_age_days": 3})]})
    assert (channels["us"].pricing.fees_max_age_days, channels["us2"].pricing.fees_max_age_days) == (7, 3)


def test_jp_channel_has_no_minor_unit():
    channels = parse_channels({"channels": [entry(name="jp", marketplace_id="A1VC38T7YXB528", region="fe")]})
    assert (channels["jp"].currency, channels["jp"].decimals) == ("JPY", 0)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (
            [entry(marketplace_id="A1F83G8C2ARO7P")],
            "channel entry 1 ('us'): marketplace A1F83G8C2ARO7P (UK) belongs to region eu, not na",
        ),
        ([entry(), entry(seller_id="A3OTHERSELLER1")], "channel entry 2 ('us'): duplicate name 'us'"),
        ([entry(seller_id="seller-1")], "channel entry 1 ('us'): malformed seller_id 'seller-1'"),
        ([entry(marketplace_id="XXXXXXXX")], "unknown marketplace_id 'XXXXXXXX'"),
        ([entry(region="us")], "region must be one of na, eu, fe"),
        ([entry(use_feed="sometimes")], "use_feed must be auto, true or false"),
        ([entry(pricing={"undercut_percent": 150})], "undercut_percent must be in [0, 100)"),
        ([entry(pricing={"observation_retention_days": 0})], "observation_retention_days must be a positive"),
        ([entry(pricing={"compete_with": "cheapest"})], "pricing.compete_with must be all, fba_only or featured"),
        ([entry(pricing={"min_feedback_rating": 101})], "pricing.min_feedback_rating must be a percentage"),
        ([entry(pricing={"min_feedback_count": -1})], "pricing.min_feedback_count must be a whole number"),
        ([entry(pricing={"exclude_sellers": "A1COMPETITOR01"})], "pricing.exclude_sellers must be a list of seller"),
        ([entry(pricing={"include_sellers": ["me"]})], "pricing.include_sellers must be a list of seller ids"),
        ([entry(pricing={"no_competitor": "floor"})], "pricing.no_competitor must be base, max or hold"),
        ([entry(pricing={"below_floor": "base"})], "pricing.below_floor must be floor, hold or max"),
        ([entry(pricing={"default_rule": "no"})], "pricing.default_rule must be true or false"),
        ([entry(pricing={"fees_max_age_days": 0})], "channel entry 1 ('us'): pricing.fees_max_age_days must be"),
        ([entry(pricing={"fees_max_age_days": "7"})], "pricing.fees_max_age_days must be a positive whole number"),
        ([{"name": "us"}], "channel entry 1: missing seller_id, marketplace_id, region"),
    ],
)
def test_invalid_entries_are_named(entries, message):
    with pytest.raises(ChannelConfigError) as err:
        parse_channels({"channels": entries}, source="channels.yaml")
    assert message in str(err.value)
    assert str(err.value).startswith("channels.yaml: ")


def test_unreadable_file_is_a_clear_error(tmp_path):
    with pytest.raises(ChannelConfigError, match="cannot read the channels file"):
        load_channels(tmp_path / "nope.yaml")


def test_allocation_defaults_show_everything():
    channel = parse_channels({"channels": [entry()]})["us"]
    assert channel.allocation == Allocation(safety_buffer=0, allocation_percent=Decimal(100), max_quantity=None)
    assert channel.allocation.basis_points == 10_000


def test_allocation_is_read_per_channel():
    channels = parse_channels(
        {
            "channels": [
                entry(allocation={"safety_buffer": 2, "allocation_percent": 33.33, "max_quantity": 0}),
                entry(name="uk", marketplace_id="A1F83G8C2ARO7P", region="eu", allocation={"allocation_percent": 0}),
            ]
        }
    )
    assert channels["us"].allocation == Allocation(2, Decimal("33.33"), 0)
    assert channels["us"].allocation.basis_points == 3333
    assert channels["uk"].allocation == Allocation(0, Decimal(0), None)


@pytest.mark.parametrize(
    ("allocation", "message"),
    [
        ({"safety_buffer": -1}, "allocation.safety_buffer must be a whole number of units ≥ 0"),
        ({"safety_buffer": 1.5}, "allocation.safety_buffer must be a whole number of units ≥ 0"),
        ({"safety_buffer": True}, "allocation.safety_buffer must be a whole number of units ≥ 0"),
        ({"max_quantity": -3}, "allocation.max_quantity must be a whole number of units ≥ 0 (or absent)"),
        ({"max_quantity": "ten"}, "allocation.max_quantity must be a whole number of units ≥ 0 (or absent)"),
        ({"allocation_percent": 100.5}, "allocation.allocation_percent must be a number in [0, 100] with ≤ 2 decimals"),
        ({"allocation_percent": -1}, "allocation.allocation_percent must be a number in [0, 100] with ≤ 2 decimals"),
        (
            {"allocation_percent": 12.345},
            "allocation.allocation_percent must be a number in [0, 100] with ≤ 2 decimals",
        ),
        (
            {"allocation_percent": "half"},
            "allocation.allocation_percent must be a number in [0, 100] with ≤ 2 decimals",
        ),
        (
            {"allocation_percent": ".nan"},
            "allocation.allocation_percent must be a number in [0, 100] with ≤ 2 decimals",
        ),
        ({"allocation_percent": False}, "allocation.allocation_percent must be a number in [0, 100] with ≤ 2 decimals"),
        ({"buffer": 2}, "unknown allocation keys ['buffer']"),
        ([2], "allocation must be a mapping"),
    ],
)
def test_invalid_allocation_is_named(allocation, message):
    with pytest.raises(ChannelConfigError) as err:
        parse_channels({"channels": [entry(allocation=allocation)]}, source="channels.yaml")
    assert str(err.value) == f"channels.yaml: channel entry 1 ('us'): {message}"


def eu(name, marketplace_id, seller_id="A3DEMOSELLER01", **allocation):
    return entry(name=name, seller_id=seller_id, marketplace_id=marketplace_id, region="eu", allocation=allocation)


UNIFIED = (
    "channels of one seller in one region (A3DEMOSELLER01, eu) publish one quantity per SKU on Amazon (a unified "
    "account: the last quantity sent wins), so their allocation settings must be equal"
)


@pytest.mark.parametrize(
    ("uk", "de", "message"),
    [
        ({"safety_buffer": 2}, {}, "allocation.safety_buffer is 0 but channel entry 2 ('uk') has 2"),
        (
            {"allocation_percent": 50},
            {"allocation_percent": 50.5},
            "allocation.allocation_percent is 50.5 but channel entry 2 ('uk') has 50",
        ),
        ({"max_quantity": 10}, {}, "allocation.max_quantity is not set but channel entry 2 ('uk') has 10"),
    ],
)
def test_different_allocation_in_one_unified_account_is_refused_naming_both_entries(uk, de, message):
    entries = [entry(), eu("uk", "A1F83G8C2ARO7P", **uk), eu("de", "A1PA6795UKMFR9", **de)]
    with pytest.raises(ChannelConfigError) as err:
        parse_channels({"channels": entries}, source="channels.yaml")
    assert str(err.value) == f"channels.yaml: channel entry 3 ('de'): {message}; {UNIFIED}"


def test_allocation_may_differ_across_regions_and_sellers():
    channels = parse_channels(
        {
            "channels": [
                entry(allocation={"allocation_percent": 40}),  # na
                eu("uk", "A1F83G8C2ARO7P", allocation_percent=60),
                eu("de", "A1PA6795UKMFR9", allocation_percent=60.00),  # equal: 60 and 60.00
                eu("de2", "A1PA6795UKMFR9", seller_id="A3OTHERSELLER1", safety_buffer=5),  # another seller's account
            ]
        }
    )
    assert [c.allocation.basis_points for c in channels.values()] == [4000, 6000, 6000, 10_000]
    assert channels["de2"].allocation.safety_buffer == 5


def test_pricing_filters_and_scenarios_are_read_and_default_to_the_seed_rule():
    from seller.config import Pricing

    assert parse_channels({"channels": [entry()]})["us"].pricing == Pricing()
    pricing = parse_channels(
        {
            "channels": [
                entry(
                    pricing={
                        "compete_with": "featured",
                        "min_feedback_rating": 95.5,
                        "min_feedback_count": 100,
                        "exclude_sellers": ["A1COMPETITOR01"],
                        "include_sellers": ["A2COMPETITOR02", "A3COMPETITOR03"],
                        "no_competitor": "hold",
                        "below_floor": "max",
                        "default_rule": False,
                    }
                )
            ]
        }
    )["us"].pricing
    assert (pricing.compete_with, pricing.min_feedback_rating, pricing.min_feedback_count) == (
        "featured",
        Decimal("95.5"),
        100,
    )
    assert pricing.exclude_sellers == ("A1COMPETITOR01",)
    assert pricing.include_sellers == ("A2COMPETITOR02", "A3COMPETITOR03")
    assert (pricing.no_competitor, pricing.below_floor, pricing.default_rule) == ("hold", "max", False)
