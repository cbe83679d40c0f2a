import pytest
import torch

import sslbook
from sslbook.masking import mask_patches
from sslbook.methods import Supervised
from sslbook.models import backbone, projection_head, resnet18


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("SSLBOOK_PROFILE", "cpu")
    assert sslbook.profile().name == "cpu"
    monkeypatch.setenv("SSLBOOK_PROFILE", "huge")
    with pytest.raises(
        ValueError, match="unknown profile 'huge': expected one of smoke, cpu, colab, full"
    ):
        sslbook.profile()


def test_smoke_is_smaller_than_cpu_is_smaller_than_full():
    smoke, cpu, colab, full = (sslbook.profile(n) for n in ("smoke", "cpu", "colab", "full"))
    assert smoke.train_size < cpu.train_size and colab.train_size is full.train_size is None
    assert smoke.epochs < cpu.epochs < full.epochs and colab.epochs < full.epochs


def test_colab_is_the_default_on_cuda_and_smoke_elsewhere(monkeypatch):
    monkeypatch.delenv("SSLBOOK_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert sslbook.profile().name == "colab"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert sslbook.profile().name == "smoke"


def test_cifar_resnet18_matches_the_reference_parameter_count():
    # 11,173,962 parameters with a 10-way linear classifier (the usual CIFAR ResNet-18).
    net = Supervised(resnet18(), num_classes=10)
    assert sum(p.numel() for p in net.parameters()) == 11_173_962
    assert net.logits(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    # the keys of saved supervised networks: the backbone and its linear classifier
    assert {key.split(".")[0] for key in net.state_dict()} == {"encoder", "fc"}


@pytest.mark.parametrize(
    "name,width,dim", [("small_cnn", 32, 128), ("small_cnn", 64, 256), ("resnet18", 16, 128)]
)
def test_backbones_output_their_declared_dim(name, width, dim):
    net = backbone(name, width)
    assert net.out_dim == dim
    assert net(torch.rand(3, 3, 32, 32)).shape == (3, dim)
    assert projection_head(dim)(net(torch.rand(3, 3, 32, 32))).shape == (3, 128)
    with pytest.raises(ValueError, match="uint8"):
        net(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


@pytest.mark.parametrize("name", ["small_cnn", "resnet18"])
def test_channels_last_and_default_layout_compute_the_same_function(name):
    # The backbones compute in channels-last memory for speed (channels_last=True); values and
    # gradients must equal those of the default NCHW layout up to float rounding.
    torch.manual_seed(0)
    fast = backbone(name, 16, channels_last=True).double()
    plain = backbone(name, 16, channels_last=False).double()
    plain.load_state_dict(fast.state_dict())
    x = torch.rand(4, 3, 32, 32, dtype=torch.float64)
    outs, grads = [], []
    for net in (fast, plain):
        out = net(x)
        outs.append(out)
        grads.append(torch.autograd.grad(out.square().sum(), list(net.parameters())))
    torch.testing.assert_close(outs[0], outs[1])
    for g, r in zip(*grads, strict=True):
        torch.testing.assert_close(g, r)


def test_unknown_backbone():
    with pytest.raises(ValueError, match="expected one of small_cnn, resnet18"):
        backbone("vgg")


def test_mask_patches_greys_exactly_the_hidden_patches():
    images = torch.rand(2, 3, 32, 32)
    mask = torch.zeros(2, 64, dtype=torch.bool)
    mask[0, 9] = True  # row 1, column 1 of the 8x8 grid of 4x4 patches
    out = mask_patches(images, mask, patch_size=4)
    assert (out[0, :, 4:8, 4:8] == 0.5).all()
    changed = (out != images).any(1)
    assert changed[0, 4:8, 4:8].sum() == changed.sum()


def test_attention_matches_the_explicit_softmax_and_ignores_padding():
    from sslbook.models import TransformerBlock

    block = TransformerBlock(dim=16, heads=4).eval()
    x = torch.randn(3, 7, 16)
    padding = torch.zeros(3, 7, dtype=torch.bool)
    padding[1, 5:] = True
    fused = block(x, padding)
    explicit, weights = block(x, padding, return_weights=True)
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-5)
    assert weights.shape == (3, 4, 7, 7)
    assert (weights[1, :, :, 5:] == 0).all()  # nobody attends to padding
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4, 7))
    # changing the padded tokens changes nothing at the real positions
    x2 = x.clone()
    x2[1, 5:] = torch.randn(2, 16) * 10
    torch.testing.assert_close(block(x2, padding)[1, :5], fused[1, :5], rtol=1e-5, atol=1e-5)


def test_amp_dtype_is_float32_on_the_cpu_unless_enabled():
    from sslbook.device import amp_dtype, autocast, cpu_has_bf16

    assert amp_dtype("cpu") is None and amp_dtype("cpu", False) is None
    assert amp_dtype("cpu", True) is torch.bfloat16
    a = torch.randn(4, 4)
    with autocast("cpu", True):
        assert (a @ a).dtype is torch.bfloat16
    with autocast("cpu"):
        assert (a @ a).dtype is torch.float32
    assert isinstance(cpu_has_bf16(), bool)
