"""The channels config: validated against the marketplace table, errors name the entry."""

import pytest

from seller.config import ChannelConfigError, load_channels, parse_channels


def entry(**over):
    base = {"name": "us", "seller_id": "A3DEMOSELLER01", "marketplace_id": "ATVPDKIKX0DER", "region": "na"}
    return {**base, **over}


def test_repository_default_config_loads(channels):
    assert list(channels) == ["us", "uk", "de"]
    assert channels["uk"].currency == "GBP"
    assert channels["de"].pricing.compete_with == "fba_only"
    assert channels["de"].pricing.observation_retention_days == 30  # the default


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
