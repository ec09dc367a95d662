"""Shared fixtures: real MBPP problems from the data directory (GRAPHREPAIR_DATA or ../shared/data)."""

import os
from pathlib import Path

import pytest

from graphrepair.data import load_mbpp


def data_dir() -> str:
    """The dataset directory used by the tests (a missing directory makes the loaders fail loudly)."""
    default = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    return os.environ.get("GRAPHREPAIR_DATA") or str(default)


@pytest.fixture(scope="session")
def mbpp():
    """All 974 MBPP problems, keyed by task id ("mbpp/2")."""
    return {p.task_id: p for p in load_mbpp(data_dir())}
