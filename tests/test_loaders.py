"The fast device loader against the torchvision DataLoader baseline: same batches in distribution, same targets."

import numpy as np
import pytest
import torch

from pls_edu.data import ImageData
from pls_edu.loaders import DeviceLoader, baseline_loader, crop_flip
from pls_edu.methods import Draws, get_method, method_batch

W = 32


def position_data(n=600, pad=4, flip=True):
    "Images whose channels encode row + 1, column + 1 and 255 (so padding, which is 0, is recognisable)."
    r = torch.arange(W, dtype=torch.uint8).view(W, 1).expand(W, W) + 1
    c = torch.arange(W, dtype=torch.uint8).view(1, W).expand(W, W) + 1
    img = torch.stack([r, c, torch.full((W, W), 255, dtype=torch.uint8)])
    x = img.expand(n, 3, W, W).contiguous()
    y = torch.arange(n) % 10
    # mean 0 and std 1/255 make the normalized value equal the raw pixel value
    return ImageData(
        'pos', x, y, x[:10], y[:10], [str(i) for i in range(10)], (0.0, 0.0, 0.0), (1 / 255,) * 3, pad, flip
    )


def decode(xb, pad=4):
    "Per image: (dy, dx, flipped) recovered from the position encoding."
    xb = xb.round().long()
    out = []
    for im in xb:
        valid = im[2] == 255
        rr, cc = valid.nonzero(as_tuple=True)
        dy = int(im[0][rr[0], cc[0]] - 1 - rr[0]) + pad
        row = im[1][rr[0]][valid[rr[0]]]
        flipped = len(row) > 1 and int(row[0]) > int(row[1])
        dx = (
            (int(im[1][rr[0], cc[0]] - 1 + cc[0]) - (W - 1) + pad)
            if flipped
            else (int(im[1][rr[0], cc[0]] - 1 - cc[0]) + pad)
        )
        out.append((dy, dx, flipped))
    return np.array(out)


def epoch(loader):
    xs, ys = zip(*[(x, y) for x, y in loader], strict=True)
    return torch.cat(xs), torch.cat(ys)


def test_crop_flip_matches_pad_then_slice():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (5, 3, 9, 7), dtype=torch.uint8, generator=g)
    dy, dx = torch.randint(0, 5, (5,), generator=g), torch.randint(0, 5, (5,), generator=g)
    fl = torch.tensor([True, False, True, False, False])
    out = crop_flip(x, 2, dy, dx, fl)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(5):
        ref = padded[i, :, dy[i] : dy[i] + 9, dx[i] : dx[i] + 7]
        assert torch.equal(out[i], ref.flip(-1) if fl[i] else ref)


def test_same_batches_in_distribution():
    data = position_data()
    dev_x, dev_y = epoch(DeviceLoader(data, batch_size=128, generator=torch.Generator().manual_seed(0)))
    torch.manual_seed(0)
    base_x, base_y = epoch(baseline_loader(data, batch_size=128, generator=torch.Generator().manual_seed(0)))
    # every sample exactly once per epoch in both: identical label counts
    assert torch.equal(torch.bincount(dev_y), torch.bincount(base_y)) and len(dev_y) == len(base_y) == 600
    d, b = decode(dev_x), decode(base_x)
    for o in (d, b):
        assert o[:, :2].min() == 0 and o[:, :2].max() == 8  # offsets cover exactly 0..2*pad
        counts = np.stack([np.bincount(o[:, k], minlength=9) for k in (0, 1)])
        assert (np.abs(counts - 600 / 9) < 5 * np.sqrt(600 / 9)).all()  # uniform over the 9 offsets
        assert abs(o[:, 2].mean() - 0.5) < 0.1  # flips half the time
    # pixel statistics agree: share of padding pixels and per-channel means
    for ch in range(3):
        assert abs(float(dev_x[:, ch].mean() - base_x[:, ch].mean())) < 0.02 * float(base_x[:, ch].mean())

    def pad_share(x):
        return float((x[:, 2] == 0).float().mean())

    expected = 1 - (np.mean([1 - abs(k - 4) / W for k in range(9)])) ** 2  # E[padding fraction] of a random crop
    assert abs(pad_share(dev_x) - expected) < 0.01 and abs(pad_share(base_x) - expected) < 0.01


def test_no_flip_where_labels_forbid_it():
    data = position_data(flip=False)
    d = decode(epoch(DeviceLoader(data, batch_size=200, generator=torch.Generator().manual_seed(1)))[0])
    b = decode(epoch(baseline_loader(data, batch_size=200))[0])
    assert not d[:, 2].any() and not b[:, 2].any()


@pytest.mark.parametrize('name,step', [('pls', 1), ('pls', 0), ('mixup', 0), ('uls-0.2', 0)])
def test_identical_targets_for_the_same_pairing(name, step):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (64,), generator=g)
    data = ImageData('rand', x, y, x, y, [str(i) for i in range(10)], (0.5, 0.4, 0.3), (0.2, 0.25, 0.3), 4, True)
    xd, yd = next(iter(DeviceLoader(data, 'test', batch_size=64, shuffle=False)))
    xb, yb = next(iter(baseline_loader(data, 'test', batch_size=64, shuffle=False)))
    assert torch.allclose(xd, xb, atol=1e-5) and torch.equal(yd, yb)

    class Probe(torch.nn.Module):
        def forward(self, x):
            self.x = x
            return torch.zeros(len(x), 10)

    outs = []
    for xx, yy in ((xd, yd), (xb, yb)):
        p = Probe()
        draws = Draws(torch.Generator().manual_seed(5), np.random.default_rng(5))
        method = get_method('pls-no-learned' if name == 'pls' else name)
        q = method_batch(method, p, xx, yy, 10, step, draws=draws).targets
        outs.append((p.x, q))
    assert torch.allclose(outs[0][0], outs[1][0], atol=1e-5) and torch.equal(outs[0][1], outs[1][1])


def test_batch_size_larger_than_dataset():
    with pytest.raises(ValueError, match='batch_size 700 is larger than the train split of pos'):
        DeviceLoader(position_data(), batch_size=700)
