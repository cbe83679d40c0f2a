"""Autoencoders: the article's shape bug, a working conv autoencoder, denoising, training."""

import os
import warnings

import pytest
import torch
import torch.nn.functional as F

from sslbook.article import ArticleAutoencoder, layer_shapes
from sslbook.data import to_float
from sslbook.evaluate import extract_features
from sslbook.methods import ConvAutoencoder, DenoisingAutoencoder
from sslbook.train import TrainConfig, fit


def smooth_images(n, seed=0):
    """Random 4x4 colour fields upsampled to 32x32: structured, compressible images."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g)
    x = F.interpolate(coarse, size=32, mode="bilinear", align_corners=False)
    return (x * 255).round().to(torch.uint8)


# -----------------------------------------------------------------------------
# the article's autoencoder


def test_article_autoencoder_returns_4x4_and_its_mse_fails():
    model, x = ArticleAutoencoder(), torch.rand(2, 3, 32, 32)
    out = model(x)
    assert out.shape == (2, 3, 4, 4)
    with warnings.catch_warnings():  # mse_loss warns about the sizes before it fails
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(RuntimeError, match="size of tensor"):
            F.mse_loss(out, x)


def test_layer_shapes_shows_where_the_size_is_lost():
    model = ArticleAutoencoder()
    shapes = layer_shapes(model, torch.rand(2, 3, 32, 32))
    pools = [s.shape for s in shapes if s.layer == "MaxPool2d"]
    assert pools == [(2, 64, 16, 16), (2, 128, 8, 8), (2, 256, 4, 4)]
    deconvs = [s.shape for s in shapes if s.layer == "ConvTranspose2d"]
    assert deconvs == [(2, 128, 4, 4), (2, 64, 4, 4), (2, 3, 4, 4)]
    assert [s.name for s in shapes[:3]] == ["encoder.0", "encoder.1", "encoder.2"]
    assert len(shapes) == 9 + 5  # every leaf layer, in the order it ran


def test_layer_shapes_removes_its_hooks_even_on_failure():
    model = ArticleAutoencoder()
    with pytest.raises(RuntimeError):
        layer_shapes(model, torch.rand(2, 1, 32, 32))  # one channel: the first conv fails
    assert all(not m._forward_hooks for m in model.modules())


# -----------------------------------------------------------------------------
# the working autoencoders


@pytest.mark.parametrize("cls", [ConvAutoencoder, DenoisingAutoencoder])
def test_reconstruction_has_the_input_shape_and_pixel_range(cls):
    model = cls(width=8, bottleneck=16)
    out = model.reconstruct(smooth_images(3))
    assert out["reconstruction"].shape == out["images"].shape == (3, 3, 32, 32)
    assert 0 <= out["reconstruction"].min() and out["reconstruction"].max() <= 1
    assert set(model(smooth_images(3))) == {"loss"}
    small = cls(width=8, bottleneck=16, image_size=16)
    assert small.reconstruct(smooth_images(2)[..., :16, :16])["reconstruction"].shape[-1] == 16


def test_encoder_is_a_backbone_with_the_bottleneck_as_feature():
    model = ConvAutoencoder(width=8, bottleneck=24)
    assert model.encoder.out_dim == 24
    assert extract_features(model.encoder, smooth_images(5)).shape == (5, 24)


class Spy(torch.nn.Module):
    """Records what it is given and returns ``output(x)``: stands in for encoder or decoder."""

    def __init__(self, output):
        super().__init__()
        self.output, self.seen = output, []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.output(x)


def test_denoising_feeds_noise_and_targets_the_clean_image():
    images = smooth_images(64)
    x = to_float(images)
    model = DenoisingAutoencoder(width=8, bottleneck=16, noise_std=0.2)
    model.encoder = Spy(lambda noisy: noisy)  # the "code" is the encoder's input itself
    # a decoder that returns the clean images exactly: zero loss iff the target is clean
    model.decoder = Spy(lambda code: x)
    assert model(images)["loss"].item() == 0.0
    noise = model.encoder.seen[0] - x
    assert noise.mean().item() == pytest.approx(0.0, abs=0.01)  # N(0, 0.2^2), not clamped
    assert noise.std().item() == pytest.approx(0.2, rel=0.02)
    assert (model.encoder.seen[0] < 0).any() and (model.encoder.seen[0] > 1).any()
    # a decoder that echoes its (noisy) input pays the noise: E[(x + e - x)^2] = 0.2^2
    model.decoder = Spy(lambda code: code)
    assert model(images)["loss"].item() == pytest.approx(0.04, rel=0.02)
    # fresh noise every step
    assert not torch.equal(model.encoder.seen[1], model.encoder.seen[0])
    plain = ConvAutoencoder(width=8, bottleneck=16)
    plain.encoder, plain.decoder = Spy(lambda v: v), Spy(lambda v: v)
    assert plain(images)["loss"].item() == 0.0  # without noise the input is the clean image
    with pytest.raises(ValueError, match="0"):
        DenoisingAutoencoder(noise_std=0.0)
    with pytest.raises(ValueError, match="-1"):
        ConvAutoencoder(noise_std=-1.0)


@pytest.mark.parametrize("noise_std", [0.0, 0.1])
def test_fit_lowers_the_reconstruction_loss(noise_std):
    torch.manual_seed(0)
    model = ConvAutoencoder(width=8, bottleneck=128, noise_std=noise_std)
    images = smooth_images(32)
    before = model.reconstruct(images)["loss"]
    config = TrainConfig(epochs=60, batch_size=32, lr=3e-3, progress=False, log_every=10)
    fit(model, images, config, device="cpu")
    after = model.reconstruct(images)["loss"]
    assert after < 0.5 * before, (before, after)


def dataset(name):
    if name == "synthetic":
        return smooth_images(640, seed=1)
    if not os.environ.get("SSLBOOK_DATA"):
        pytest.skip("SSLBOOK_DATA is not set: no offline CIFAR-10")
    from sslbook.data import cifar10

    return cifar10("train", download=False).images[:640]


@pytest.mark.parametrize("name", ["synthetic", "cifar"])
def test_brief_training_beats_the_mean_image(name):
    torch.manual_seed(0)
    images = dataset(name)
    train, held_out = images[:512], to_float(images[512:])
    model = ConvAutoencoder(width=8, bottleneck=128)
    config = TrainConfig(epochs=8, batch_size=32, lr=3e-3, progress=False, log_every=16)
    fit(model, train, config, device="cpu")
    mean_image = to_float(train).mean(dim=0, keepdim=True)  # the best constant prediction
    baseline = F.mse_loss(mean_image.expand_as(held_out), held_out).item()
    error = model.reconstruct(held_out)["loss"].item()
    assert error < 0.7 * baseline, (error, baseline)
