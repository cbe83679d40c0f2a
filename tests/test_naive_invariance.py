"""NaiveInvariance: the objective that only asks two views to agree, and so collapses."""

import copy
import math

import pytest
import torch

from sslbook.data import to_float
from sslbook.evaluate import embedding_std
from sslbook.methods import NaiveInvariance
from sslbook.models import backbone


def tiny_encoder():
    return backbone("small_cnn", 8)  # out_dim 32


def images(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)


class TakeTurns:
    """An augmentation that returns the given views in turn, one per call (the method calls it
    once per view), so that the test knows exactly what went through each branch."""

    def __init__(self, *views):
        self.views, self.calls = views, 0

    def __call__(self, batch, generator=None):
        view = self.views[self.calls % len(self.views)]
        self.calls += 1
        return view


def mean_cosine(z1: torch.Tensor, z2: torch.Tensor) -> float:
    """mean_i cos(z1_i, z2_i), written out in float64."""
    total = 0.0
    for a, b in zip(z1.double().tolist(), z2.double().tolist(), strict=True):
        dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
        norms = math.sqrt(math.fsum(x * x for x in a) * math.fsum(y * y for y in b))
        total += dot / norms
    return total / len(z1)


def test_loss_is_minus_the_mean_cosine_of_the_two_views_embeddings():
    x = images(6)
    x1, x2 = to_float(x), to_float(x.flip(-1))
    model = NaiveInvariance(tiny_encoder(), proj_dim=16, augment=TakeTurns(x1, x2))
    reference = copy.deepcopy(model).double()  # train mode: one pass per view, as the method
    with torch.no_grad():
        z1 = reference.projector(reference.encoder(x1.double()))
        z2 = reference.projector(reference.encoder(x2.double()))
    out = model(x)
    assert out["loss"].item() == pytest.approx(-mean_cosine(z1, z2), rel=1e-5)
    assert -1 <= out["loss"].item() < -mean_cosine(z1, z1.roll(1, 0))  # pairing matters
    assert out["std"].item() == pytest.approx(embedding_std(z1).item(), rel=1e-4)
    assert not out["std"].requires_grad and out["loss"].requires_grad


def test_identical_views_already_reach_the_trivial_minimum():
    # nothing but agreement is asked for: two equal views give the lowest possible loss, -1
    model = NaiveInvariance(
        tiny_encoder(), proj_dim=16, augment=lambda b, generator=None: to_float(b)
    )
    assert model(images(6))["loss"].item() == pytest.approx(-1.0, abs=1e-6)


def test_gradient_flows_through_both_branches_as_the_closed_form_says():
    x = images(6)
    x1, x2 = to_float(x), to_float(x.flip(-1))
    model = NaiveInvariance(tiny_encoder(), proj_dim=16, augment=TakeTurns(x1, x2))
    z = []
    model.projector.register_forward_hook(lambda module, inputs, output: z.append(output))
    loss = model(x)["loss"]
    g1, g2 = torch.autograd.grad(loss, z)  # no stop-gradient: both views get a gradient

    def d_minus_cos(a, b):
        """d/da of -mean_i cos(a_i, b_i), in float64: -(b / (|a||b|) - cos a / |a|^2) / B."""
        a, b = a.detach().double(), b.detach().double()
        na, nb = a.norm(dim=1, keepdim=True), b.norm(dim=1, keepdim=True)
        cos = (a * b).sum(1, keepdim=True) / (na * nb)
        return -(b / (na * nb) - cos * a / na**2) / len(a)

    torch.testing.assert_close(g1.double(), d_minus_cos(z[0], z[1]), rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(g2.double(), d_minus_cos(z[1], z[0]), rtol=1e-4, atol=1e-7)
    assert g1.abs().max() > 1e-4 and g2.abs().max() > 1e-4


def _train(model, data, steps=30):
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    stds = []
    for _ in range(steps):
        out = model(data)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        stds.append(out["std"].item())
    return out["loss"].item(), stds


def test_training_collapses_the_embeddings_to_one_point():
    data = images(16)
    model = NaiveInvariance(tiny_encoder(), proj_dim=16)  # SimCLR's augmentation
    loss, stds = _train(model, data)
    assert loss < -0.99  # the trivial minimum, -1, almost reached
    assert stds[-1] < 0.1 * stds[0], stds  # every image goes to (nearly) the same vector
    # the network ignores its input: unseen images land on that point too
    model.eval()
    with torch.no_grad():
        unseen = model.projector(model.encoder(to_float(images(32, seed=1))))
    assert embedding_std(unseen).item() < 0.02  # spread over the sphere: 1 / sqrt(16) = 0.25


def test_bad_images_raise_value_error():
    model = NaiveInvariance(tiny_encoder(), proj_dim=16)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.zeros(4, 1, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError):  # one image: no batch to compare (batch norm refuses too)
        model(images(1))
