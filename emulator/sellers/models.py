"""Sellers v1: marketplace details Amazon returns in getMarketplaceParticipations (reference data, no HTTP)."""

from __future__ import annotations

from typing import Any

from seller.marketplaces import MARKETPLACES

__all__ = ["DOMAINS", "LANGUAGES", "render_participation", "sales_channel"]

# Amazon retail domain per marketplace country code (as in the seller table of spapi-facts §2.2).
DOMAINS = {
    "CA": "www.amazon.ca",
    "US": "www.amazon.com",
    "MX": "www.amazon.com.mx",
    "BR": "www.amazon.com.br",
    "IE": "www.amazon.ie",
    "ES": "www.amazon.es",
    "UK": "www.amazon.co.uk",
    "FR": "www.amazon.fr",
    "BE": "www.amazon.com.be",
    "NL": "www.amazon.nl",
    "DE": "www.amazon.de",
    "IT": "www.amazon.it",
    "SE": "www.amazon.se",
    "ZA": "www.amazon.co.za",
    "PL": "www.amazon.pl",
    "EG": "www.amazon.eg",
    "TR": "www.amazon.com.tr",
    "SA": "www.amazon.sa",
    "AE": "www.amazon.ae",
    "IN": "www.amazon.in",
    "SG": "www.amazon.sg",
    "AU": "www.amazon.com.au",
    "JP": "www.amazon.co.jp",
}
LANGUAGES = {
    "CA": "en_CA",
    "US": "en_US",
    "MX": "es_MX",
    "BR": "pt_BR",
    "IE": "en_IE",
    "ES": "es_ES",
    "UK": "en_GB",
    "FR": "fr_FR",
    "BE": "fr_BE",
    "NL": "nl_NL",
    "DE": "de_DE",
    "IT": "it_IT",
    "SE": "sv_SE",
    "ZA": "en_ZA",
    "PL": "pl_PL",
    "EG": "ar_EG",
    "TR": "tr_TR",
    "SA": "ar_SA",
    "AE": "en_AE",
    "IN": "en_IN",
    "SG": "en_SG",
    "AU": "en_AU",
    "JP": "ja_JP",
}


def sales_channel(marketplace_id: str) -> str:
    domain = DOMAINS[MARKETPLACES[marketplace_id].country]
    return "Amazon." + domain.split("amazon.", 1)[1]


def render_participation(marketplace_id: str, store_name: str) -> dict[str, Any]:
    market = MARKETPLACES[marketplace_id]
    country = "GB" if market.country == "UK" else market.country
    return {
        "marketplace": {
            "id": marketplace_id,
            "name": sales_channel(marketplace_id),
            "countryCode": country,
            "defaultCurrencyCode": market.currency,
            "defaultLanguageCode": LANGUAGES[market.country],
            "domainName": DOMAINS[market.country],
        },
        "participation": {"isParticipating": True, "hasSuspendedListings": False},
        "storeName": store_name,
    }
