import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(1)  # CPU results depend on the thread count; tests compare runs, so fix it


@pytest.fixture(autouse=True)
def _seeded():
    "Each test draws the same numbers whatever ran before it, so a failure reproduces with `pytest -k` alone."
    import numpy as np

    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope='session')
def digits():
    from pls_edu.data import load_digits_data

    return load_digits_data()
