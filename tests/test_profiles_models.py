import pytest
import torch

import sslbook
from sslbook.masking import mask_patches, random_mask
from sslbook.models import Classifier, backbone, projection_head, resnet18


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("SSLBOOK_PROFILE", "cpu")
    assert sslbook.profile().name == "cpu"
    monkeypatch.setenv("SSLBOOK_PROFILE", "huge")
    with pytest.raises(
        ValueError, match="unknown profile 'huge': expected one of smoke, cpu, full"
    ):
        sslbook.profile()


def test_smoke_is_smaller_than_cpu_is_smaller_than_full():
    smoke, cpu, full = (sslbook.profile(n) for n in ("smoke", "cpu", "full"))
    assert smoke.train_size < cpu.train_size and full.train_size is None
    assert smoke.epochs < cpu.epochs < full.epochs


def test_cifar_resnet18_matches_the_reference_parameter_count():
    # 11,173,962 parameters with a 10-way linear classifier (the usual CIFAR ResNet-18).
    net = Classifier(resnet18(), num_classes=10)
    assert sum(p.numel() for p in net.parameters()) == 11_173_962
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 10)


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


def test_unknown_backbone():
    with pytest.raises(ValueError, match="expected one of small_cnn, resnet18"):
        backbone("vgg")


def test_random_mask_hides_exactly_the_ratio_uniformly():
    mask = random_mask(4000, 64, 0.75, generator=torch.Generator().manual_seed(0))
    assert (mask.sum(1) == 48).all()
    # Every position is hidden about 75 % of the time.
    assert (mask.float().mean(0) - 0.75).abs().max() < 0.035
    with pytest.raises(ValueError, match=r"in \(0, 1\), got 1.0"):
        random_mask(1, 64, 1.0)


def test_mask_patches_greys_exactly_the_hidden_patches():
    images = torch.rand(2, 3, 32, 32)
    mask = torch.zeros(2, 64, dtype=torch.bool)
    mask[0, 9] = True  # row 1, column 1 of the 8x8 grid of 4x4 patches
    out = mask_patches(images, mask, patch_size=4)
    assert (out[0, :, 4:8, 4:8] == 0.5).all()
    changed = (out != images).any(1)
    assert changed[0, 4:8, 4:8].sum() == changed.sum()
