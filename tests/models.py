"""Where Amazon's official models and schemas are read from (never copied into this repository)."""

import json
import os
from pathlib import Path

import pytest

MODELS_DIR = Path(os.environ.get("SPAPI_MODELS_DIR") or Path(__file__).resolve().parents[2] / "shared" / "spapi-models")


def load_schema(relative: str) -> dict:
    """A JSON schema from the shared models folder, or skip the test with the reason."""
    path = MODELS_DIR / relative
    if not path.exists():
        pytest.skip(f"Amazon's SP-API models are not available at {MODELS_DIR} (set SPAPI_MODELS_DIR)")
    return json.loads(path.read_text(encoding="utf-8"))
