"Tiny datasets written in each dataset's native on-disk format, for the real loaders to read back."

import gzip, pickle, struct, sys
from pathlib import Path

import numpy as np


def write_idx(path, arr, gz=True):
    "An IDX file (MNIST format): magic (0, 0, type 0x08 = uint8, ndim), big-endian dims, then the bytes."
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    data = (
        struct.pack('>BBBB', 0, 0, 0x08, arr.ndim) + b''.join(struct.pack('>I', d) for d in arr.shape) + arr.tobytes()
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(str(path) + '.gz', 'wb') as f:
            f.write(data)
    else:
        path.write_bytes(data)


def make_mnist(root, folder='MNIST', n_train=12, n_test=6, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (('train', n_train), ('t10k', n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = np.arange(n, dtype=np.uint8) % 10
        write_idx(Path(root) / folder / 'raw' / f'{split}-images-idx3-ubyte', x, gz)
        write_idx(Path(root) / folder / 'raw' / f'{split}-labels-idx1-ubyte', y, gz)
        out[split] = (x, y)
    return out


def make_cifar(root, hundred=False, n=4, seed=0):
    "CIFAR python batches: pickled dicts with 'data' (N x 3072, channel-major) and labels; plus the meta file."
    rng = np.random.default_rng(seed)
    K = 100 if hundred else 10
    d = Path(root) / ('cifar-100-python' if hundred else 'cifar-10-batches-py')
    d.mkdir(parents=True, exist_ok=True)
    files = ['train', 'test'] if hundred else [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']
    out = {}
    for f in files:
        x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, K, n)]
        entry = {'data': x.reshape(n, -1), ('fine_labels' if hundred else 'labels'): y}
        if hundred:
            entry['coarse_labels'] = [v // 5 for v in y]
        with open(d / f, 'wb') as fh:
            pickle.dump(entry, fh)
        out[f] = (x, y)
    meta = (
        {'fine_label_names': [f'class{i}' for i in range(100)]}
        if hundred
        else {'label_names': [f'class{i}' for i in range(10)]}
    )
    with open(d / ('meta' if hundred else 'batches.meta'), 'wb') as fh:
        pickle.dump(meta, fh)
    return out


def make_svhn(root, n=5, seed=0):
    "SVHN .mat files: X (32, 32, 3, N) uint8 and y (N, 1) with digit 0 stored as label 10."
    import scipy.io

    rng = np.random.default_rng(seed)
    d = Path(root) / 'svhn'
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    for split in ('train', 'test'):
        x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        digits = np.arange(n) % 10
        scipy.io.savemat(
            d / f'{split}_32x32.mat', {'X': x.transpose(2, 3, 1, 0), 'y': np.where(digits == 0, 10, digits)[:, None]}
        )
        out[split] = (x, digits)
    return out


def make_tiny_imagenet(root, wnids=('n02', 'n01', 'n03'), per_class=2, seed=0):
    "A tiny-imagenet-200 tree of JPEGs; wnids deliberately not sorted, and one grayscale image per split."
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = Path(root) / 'tiny-imagenet-200'
    (base / 'val' / 'images').mkdir(parents=True, exist_ok=True)
    (base / 'wnids.txt').write_text('\n'.join(wnids) + '\n')

    def save(path, gray):
        a = rng.integers(0, 256, (64, 64) if gray else (64, 64, 3), dtype=np.uint8)
        Image.fromarray(a, 'L' if gray else 'RGB').save(path, quality=95)

    for ci, w in enumerate(wnids):
        d = base / 'train' / w / 'images'
        d.mkdir(parents=True, exist_ok=True)
        (base / 'train' / w / f'{w}_boxes.txt').write_text('')
        for k in range(per_class):
            save(d / f'{w}_{k}.JPEG', gray=(ci == 0 and k == 0))
    lines = []
    for i, w in enumerate(reversed(wnids)):
        name = f'val_{i}.JPEG'
        save(base / 'val' / 'images' / name, gray=(i == 1))
        lines.append(f'{name}\t{w}\t0\t0\t63\t63')
    (base / 'val' / 'val_annotations.txt').write_text('\n'.join(lines) + '\n')
    return base


def fake_result(out, cfg, error, best=None, n_test=1000):
    "A finished run's files as `run_one` writes them, with `error` % of `n_test` test images wrong."
    import dataclasses
    from pls_edu.files import save_json
    from pls_edu.results import LOGITS, RESULT, run_dir

    d = run_dir(out, cfg)
    d.mkdir(parents=True, exist_ok=True)
    labels = np.arange(n_test) % 10
    logits = np.eye(10, dtype=np.float32)[labels] * 5
    wrong = round(error * n_test / 100)
    logits[:wrong] = np.roll(logits[:wrong], 1, axis=1)
    np.savez_compressed(d / LOGITS, test_logits=logits, test_labels=labels)
    final = {'error': error, 'best_error': error if best is None else best}
    final.update(winning_softmax=0.9, ece=0.01, nll=0.1)
    result = {'id': d.name, 'config': dataclasses.asdict(cfg.resolved()), 'history': [], 'final': final}
    save_json(d / RESULT, {**result, 'status': 'done'})
    return d


# the command lines, as a test starts them in a fresh process
PLS_TRAIN = [sys.executable, '-c', 'from pls_edu.traincli import train_main; train_main()']
PLS_SWEEP = [sys.executable, '-m', 'pls_edu.sweepcli']
