"The paper's networks: parameter counts from the layer specification, features S, and other input shapes."

import pytest
import torch

from pls_edu.models import build_model
from pls_edu.methods import get_method


def conv(k, a, b):
    return k * k * a * b


def spec_count(arch, K=10, cin=3):
    "Count from the mixup-cifar10 layer list: 3x3 stem + bn, stages 64-512, blocks, shortcuts, linear."
    n, c = conv(3, cin, 64) + 2 * 64, 64
    blocks = [2, 2, 2, 2] if arch == 'preact-resnet18' else [3, 4, 6, 3]
    for stage, (planes, nb) in enumerate(zip((64, 128, 256, 512), blocks, strict=True)):
        for b in range(nb):
            stride = 2 if stage > 0 and b == 0 else 1
            if arch == 'preact-resnet18':  # bn, conv3x3, bn, conv3x3 [+ 1x1 conv shortcut, no bn]
                n += 2 * c + conv(3, c, planes) + 2 * planes + conv(3, planes, planes)
                n += conv(1, c, planes) if (stride != 1 or c != planes) else 0
                c = planes
            else:  # conv1x1, bn, conv3x3, bn, conv1x1 (x4), bn [+ conv1x1 + bn]
                o = 4 * planes
                n += conv(1, c, planes) + 2 * planes + conv(3, planes, planes) + 2 * planes + conv(1, planes, o) + 2 * o
                n += conv(1, c, o) + 2 * o if (stride != 1 or c != o) else 0
                c = o
    return n + c * K + K


def nparams(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize('arch', ['preact-resnet18', 'resnet50'])
@pytest.mark.parametrize('K,cin', [(10, 3), (100, 3), (10, 1), (200, 3)])
def test_parameter_counts_equal_the_layer_spec(arch, K, cin):
    assert nparams(build_model(arch, cin, K)) == spec_count(arch, K, cin)


def test_reference_totals_for_cifar10():
    # 3-channel 32x32 input, 10 classes: what the reference's ResNet18() / ResNet50() hold
    assert spec_count('preact-resnet18') == 11_171_274
    assert spec_count('resnet50') == 23_520_842


def test_pls_head_adds_exactly_one_linear_layer():
    base = nparams(build_model('preact-resnet18', 3, 100))
    assert nparams(build_model('preact-resnet18', 3, 100, get_method('pls').head_out(100))) == base + 512 * 100 + 100
    assert (
        nparams(build_model('resnet50', 3, 100, get_method('pls-coeff').head_out(100)))
        == nparams(build_model('resnet50', 3, 100)) + 2048 + 1
    )


@pytest.mark.parametrize('arch,feat', [('preact-resnet18', 512), ('resnet50', 2048), ('small-cnn', 64)])
@pytest.mark.parametrize('shape', [(1, 28, 28), (3, 32, 32), (3, 64, 64)])
def test_features_and_shapes(arch, feat, shape):
    net = build_model(arch, shape[0], 7, head_out=7).eval()
    x = torch.randn(2, *shape)
    with torch.no_grad():
        S = net.backbone(x)
        logits, u = net.forward_smooth(x)
    assert S.shape == (2, feat) and logits.shape == (2, 7) and u.shape == (2, 7)
    assert torch.allclose(u.sum(1), torch.ones(2), atol=1e-6)
    assert torch.allclose(logits, net.classifier(S), atol=1e-5)


def test_unknown_model_lists_choices():
    with pytest.raises(
        ValueError,
        match=r"unknown model 'wrn'; choose one of \['small-cnn', 'small-cnn-g3', 'small-cnn-g3-w64', 'preact-resnet18', 'resnet50'\]",
    ):
        build_model('wrn', 3, 10)
