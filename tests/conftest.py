"""Shared fixtures. Tests run on the CPU with a fixed seed and few threads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def cifar10_tarball() -> Path:
    """../shared/data/cifar10-jpeg.tar.gz, or skip where the machine has no shared data."""
    p = SHARED_DATA / "cifar10-jpeg.tar.gz"
    if not p.exists():
        pytest.skip(f"{p} is absent (a fresh machine has no ../shared)")
    return p
