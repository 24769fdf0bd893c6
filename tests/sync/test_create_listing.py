"""create_listing_job against the emulator: refused early, category_restricted, and listed with a new ASIN."""

import httpx
import pytest

from assets.listings import create_listing_job
from resources.warehouse import Warehouse
from tests.sync.helpers import prepare_offline, query, seller_dir, spapi_for, start_emulator


@pytest.fixture
def setup(tmp_path, emulator_factory):
    data = seller_dir(tmp_path)
    master = data / "master_inventory.csv"
    master.write_text(master.read_text() + "NEW-1,5,19.99,,,099999999993,UPC,Acme,Acme Watch,WATCH\n")
    server = start_emulator(emulator_factory, data)
    resources = {"warehouse": Warehouse(data_dir=str(data)), "spapi": spapi_for(server, tmp_path)}
    prepare_offline(data, "us", resources["spapi"])
    return data, resources


def create(resources, **config):
    return create_listing_job.execute_in_process(
        run_config={"ops": {"create_listing_op": {"config": {"channel": "us", **config}}}},
        resources=resources,
        raise_on_error=False,
    )


def test_without_identifier_or_brand_registry_it_refuses_before_calling_amazon(setup):
    data, resources = setup
    result = create(resources, sku="UNMAPPED", product_type="PRODUCT")
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "no product_id" in failure.step_failure_data.error.message
    assert query(data, "us", "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'listing_mappings'") == [(0,)]


def test_a_gated_category_is_recorded_not_submitted(setup):
    data, resources = setup
    assert create(resources, sku="NEW-1", product_type="WATCH").success
    rows = query(data, "us", "SELECT status, code, approval_link FROM listing_mappings WHERE sku = 'NEW-1'")
    # without an ASIN only the validation preview tells, and its issue carries no approval link
    assert rows == [("category_restricted", "category_restricted", None)]
    history = query(data, "us", "SELECT status FROM sync_history WHERE operation = 'create_listing'")
    assert history == [("category_restricted",)]


def test_a_gated_category_on_uk_records_the_uk_approval_link_amazon_gives(setup):
    data, resources = setup
    prepare_offline(data, "uk", resources["spapi"])
    assert create(resources, channel="uk", sku="NEW-1", product_type="WATCH", asin="B000000001").success
    [(status, code, link)] = query(data, "uk", "SELECT status, code, approval_link FROM listing_mappings")
    assert (status, code) == ("category_restricted", "category_restricted")
    assert httpx.URL(link).host == "sellercentral.amazon.co.uk" and "B000000001" in link
    [(message,)] = query(data, "uk", "SELECT message FROM sync_history WHERE operation = 'create_listing'")
    assert message.startswith("[APPROVAL_REQUIRED]") and message.endswith(link)


def test_an_unknown_asin_is_resource_not_found_not_category_restricted(setup):
    data, resources = setup
    assert create(resources, sku="NEW-1", product_type="PRODUCT", asin="B0NOSUCH00").success
    rows = query(data, "us", "SELECT status, code, approval_link FROM listing_mappings WHERE sku = 'NEW-1'")
    assert rows == [("error", "ResourceNotFound", None)]
    [(code, message)] = query(data, "us", "SELECT code, message FROM sync_history WHERE operation = 'create_listing'")
    assert code == "ResourceNotFound" and message.startswith("[ASIN_NOT_FOUND]")


def test_a_registered_brand_is_listed_and_its_new_asin_recorded(setup):
    data, resources = setup
    assert create(resources, sku="UNMAPPED", product_type="PRODUCT", brand_registered=True).success
    [(status, asin)] = query(data, "us", "SELECT status, asin FROM listing_mappings WHERE sku = 'UNMAPPED'")
    assert status == "accepted" and asin and asin.startswith("B0")
