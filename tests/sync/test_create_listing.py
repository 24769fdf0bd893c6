"""create_listing_job against the emulator: refused early, category_restricted, and listed with a new ASIN."""

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
    assert rows[0][:2] == ("category_restricted", "category_restricted") and rows[0][2].startswith("https://")
    history = query(data, "us", "SELECT status FROM sync_history WHERE operation = 'create_listing'")
    assert history == [("category_restricted",)]


def test_a_registered_brand_is_listed_and_its_new_asin_recorded(setup):
    data, resources = setup
    assert create(resources, sku="UNMAPPED", product_type="PRODUCT", brand_registered=True).success
    [(status, asin)] = query(data, "us", "SELECT status, asin FROM listing_mappings WHERE sku = 'UNMAPPED'")
    assert status == "accepted" and asin and asin.startswith("B0")
