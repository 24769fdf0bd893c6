import shutil
from pathlib import Path

import pytest

from seller.config import load_channels

SMALL = Path(__file__).parent.parent / "data" / "small"
REPO = Path(__file__).parent.parent.parent


@pytest.fixture
def channels():
    return load_channels(REPO / "channels.yaml")


@pytest.fixture
def small_seller(tmp_path) -> Path:
    """A copy of the hand-written small seller (tests/data/small) in a fresh data directory."""
    data = tmp_path / "data"
    shutil.copytree(SMALL, data)
    return data
