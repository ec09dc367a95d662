"""Shared fixtures: real MBPP problems from the data directory (GRAPHREPAIR_DATA or ../shared/data)."""

import os
from pathlib import Path

import pytest

from graphrepair.data.problems import load_mbpp


def data_dir() -> str:
    """The dataset directory used by the tests (a missing directory makes the loaders fail loudly)."""
    default = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    return os.environ.get("GRAPHREPAIR_DATA") or str(default)


@pytest.fixture(scope="session")
def mbpp():
    """All 974 MBPP problems, keyed by task id ("mbpp/2")."""
    return {p.task_id: p for p in load_mbpp(data_dir())}


@pytest.fixture(scope="session", autouse=True)
def graph_cache_under_tmp(tmp_path_factory):
    """Point the on-disk graph cache (graphrepair.graphs.cache) at a session temporary directory.

    Tests write only under pytest's temporary directories; subprocesses inherit the variable.
    """
    old = os.environ.get("GRAPHREPAIR_GRAPH_CACHE")
    os.environ["GRAPHREPAIR_GRAPH_CACHE"] = str(tmp_path_factory.mktemp("graph_cache"))
    yield
    if old is None:
        del os.environ["GRAPHREPAIR_GRAPH_CACHE"]
    else:
        os.environ["GRAPHREPAIR_GRAPH_CACHE"] = old
