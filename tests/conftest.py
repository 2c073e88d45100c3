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


@pytest.fixture(scope='session')
def real_root():
    "The repository's data folder with real MNIST in it: CI fetches it with the README's command, and so does this."
    from pls_edu.fetch import data_main
    from pls_edu.fetch import mnist_ready

    root = Path(__file__).resolve().parent.parent / 'data'
    if mnist_ready(root) is not None:
        data_main(['mnist', '--data-root', str(root), '--no-progress'])
    return root
