"""The operations registry against Amazon's own models (read from shared/spapi-models, never copied)."""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal
from pathlib import Path

import pytest

from resources.spapi.operations import NOTIFICATIONS_SCOPE, OPERATIONS, operation

REPO_ROOT = Path(__file__).resolve().parents[2]


def _models_dir() -> Path:
    override = os.environ.get("SPAPI_MODELS_DIR")
    if override:
        return Path(override) / "models" if (Path(override) / "models").is_dir() else Path(override)
    return REPO_ROOT.parent / "shared" / "spapi-models" / "models"


MODELS = _models_dir()
needs_models = pytest.mark.skipif(
    not MODELS.is_dir(), reason=f"Amazon's SP-API models not found at {MODELS} (set SPAPI_MODELS_DIR)"
)

# "| Rate (requests per second) | Burst |\n| ---- | ---- |\n| 5 | 10 |" in each operation description.
_USAGE_PLAN = re.compile(
    r"\|\s*Rate \(requests per second\)\s*\|\s*Burst\s*\|\s*\n\|[-\s|]+\|\s*\n\|\s*([\d.]+)\s*\|\s*(\d+)\s*\|"
)


def _model_operations(model: str) -> dict[str, tuple[str, str, dict]]:
    doc = json.loads((MODELS / f"{model}.json").read_text(encoding="utf-8"))
    found = {}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and "operationId" in op:
                found[op["operationId"]] = (method.upper(), path, op)
    return found


@needs_models
@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_registry_matches_model(name: str) -> None:
    op = OPERATIONS[name]
    model_ops = _model_operations(op.model)
    assert name in model_ops, f"{name} is not an operation of {op.model}.json"
    method, path, spec = model_ops[name]
    assert (op.method, op.path) == (method, path)
    match = _USAGE_PLAN.search(spec.get("description", ""))
    assert match, f"{name}: no usage plan table in the model description"
    assert Decimal(str(op.rate)) == Decimal(match.group(1)), f"{name}: rate {op.rate} != model {match.group(1)}"
    assert op.burst == int(match.group(2))


@needs_models
def test_grantless_flags_match_model_text() -> None:
    model_ops = _model_operations("notifications")
    for name, op in OPERATIONS.items():
        if op.model != "notifications":
            continue
        grantless = f"`{name}` operation is grantless" in model_ops[name][2]["description"]
        assert (op.grantless_scope == NOTIFICATIONS_SCOPE) == grantless, name


def test_render_path_encodes_sku_once() -> None:
    op = operation("getListingsItem")
    assert op.render_path(sellerId="A1", sku="AB/C D%") == "/listings/2021-08-01/items/A1/AB%2FC%20D%25"
    with pytest.raises(KeyError):
        op.render_path(sellerId="A1")
    with pytest.raises(KeyError, match="unknown SP-API operation"):
        operation("noSuchOperation")
