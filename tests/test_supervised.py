"""Supervised: cross-entropy on labelled images, the upper reference of every comparison."""

import copy
import math

import pytest
import torch
import torch.nn as nn

from sslbook.data import to_float
from sslbook.methods import Supervised
from sslbook.models import backbone


def no_augment(images, generator=None):
    return to_float(images)


class MeanColour(nn.Module):
    """A fixed encoder: each image's mean red, green and blue, so that logits are known."""

    out_dim = 3

    def forward(self, x):
        return x.mean(dim=(2, 3))  # (B, 3)


def solid(colours: list[int]) -> torch.Tensor:
    """One 8x8 image per entry, filled with pure red (0), green (1) or blue (2)."""
    x = torch.zeros(len(colours), 3, 8, 8, dtype=torch.uint8)
    x[torch.arange(len(colours)), torch.tensor(colours)] = 255
    return x


def test_loss_and_accuracy_on_a_batch_with_known_logits():
    # fc = identity: the logit of class c is the mean of channel c, 1 for the image's own colour
    # and 0 for the others, so the prediction is the colour and the loss is in closed form
    model = Supervised(MeanColour(), num_classes=3, augment=no_augment)
    with torch.no_grad():
        model.fc.weight.copy_(torch.eye(3))
        model.fc.bias.zero_()
    colours = [0, 1, 2, 0, 1, 2, 0, 1]
    labels = torch.tensor([0, 1, 2, 1, 1, 0, 0, 2])  # right at 0, 1, 2, 4 and 6: 5 of 8
    out = model(solid(colours), labels)
    assert out["accuracy"].item() == 5 / 8
    right = -math.log(math.e / (math.e + 2))  # -log softmax of the logit 1 against two 0s
    wrong = -math.log(1 / (math.e + 2))
    assert out["loss"].item() == pytest.approx((5 * right + 3 * wrong) / 8, rel=1e-6)
    all_right = model(solid(colours), torch.tensor(colours))
    assert all_right["accuracy"].item() == 1.0 and all_right["loss"].item() == pytest.approx(right)
    none_right = model(solid(colours), (torch.tensor(colours) + 1) % 3)
    assert none_right["accuracy"].item() == 0.0


def test_loss_is_the_float64_cross_entropy_of_the_network_and_reaches_the_encoder():
    model = Supervised(backbone("small_cnn", 8), num_classes=10, augment=no_augment)
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    labels = torch.tensor([3, 1, 4, 1, 5, 9])
    reference = copy.deepcopy(model).double()  # train mode: batch statistics, as in the step
    with torch.no_grad():
        logits = reference.fc(reference.encoder(to_float(images).double()))  # (6, 10)
    want = -sum(
        (logits[i, y] - torch.logsumexp(logits[i], dim=0)).item() for i, y in enumerate(labels)
    ) / len(labels)
    out = model(images, labels)
    assert out["loss"].item() == pytest.approx(want, rel=1e-5)
    hits = sum(int(logits[i].argmax() == y) for i, y in enumerate(labels))
    assert out["accuracy"].item() == hits / len(labels)
    assert 0.0 <= out["accuracy"].item() <= 1.0 and not out["accuracy"].requires_grad
    out["loss"].backward()
    grads = [p.grad for p in model.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


def test_default_augmentation_is_random_crop_and_flip_without_colour_changes():
    model = Supervised(MeanColour(), num_classes=3)
    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8, generator=g)
    views = model.augment(image.expand(16, -1, -1, -1), generator=g)
    assert views.shape == (16, 3, 32, 32)
    assert torch.unique(views.flatten(1), dim=0).shape[0] > 1  # random per image
    # a solid colour stays that colour: no jitter and no grayscale
    colour = model.augment(solid([0, 1, 2]).repeat_interleave(4, 0), generator=g)
    torch.testing.assert_close(colour.mean(dim=(2, 3)), torch.eye(3).repeat_interleave(4, 0))


def test_training_on_a_separable_dataset_drives_accuracy_up():
    # class = the dominant colour of an otherwise noisy image: learnable in a few steps
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat(8)  # 24 images
    x = 0.25 * torch.rand(24, 3, 32, 32, generator=g)
    x[torch.arange(24), labels] += 0.75
    images = (x * 255).round().to(torch.uint8)
    model = Supervised(backbone("small_cnn", 8), num_classes=3)  # default crop-and-flip
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    accuracies = []
    for _ in range(25):
        out = model(images, labels)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        accuracies.append(out["accuracy"].item())
    assert accuracies[0] < 0.6  # about chance, 1/3, before training
    assert min(accuracies[-3:]) == 1.0, accuracies
    model.eval()  # running statistics, fixed crops: still right on the training images
    with torch.no_grad():
        predictions = model.fc(model.encoder(to_float(images))).argmax(1)
    assert torch.equal(predictions, labels)


def test_bad_inputs_raise():
    model = Supervised(MeanColour(), num_classes=3, augment=no_augment)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 1]))
    with pytest.raises((ValueError, RuntimeError)):  # one label per image
        model(solid([0, 1, 2]), torch.tensor([0, 1]))
    with pytest.raises((IndexError, RuntimeError)):  # a class the 3-way head does not have
        model(solid([0, 1, 2]), torch.tensor([0, 1, 3]))
