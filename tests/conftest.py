"""Shared pytest fixtures."""

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data_root() -> Path:
    """The read-only shared datasets (real Omniglot subset, glyphs); never copied into the
    project."""
    candidates = [os.environ.get("METALEARN_DATA_ROOT"),
                  Path(__file__).resolve().parents[2] / "shared" / "datasets"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "omniglot-py").is_dir():
            return Path(candidate)
    pytest.skip("shared datasets not found: set METALEARN_DATA_ROOT to a folder holding "
                "omniglot-py/ (and glyphs/), or place them at ../shared/datasets beside the repo")


@pytest.fixture
def float64():
    """Exact comparisons: build and run in float64, restoring the default dtype afterwards."""
    import torch
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)
