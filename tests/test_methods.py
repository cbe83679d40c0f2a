"""SimCLR, MoCo, BYOL, SimSiam: the queue, momentum updates, stop-gradients, a training test."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from sslbook.augment import SimCLRAugment
from sslbook.data import to_float
from sslbook.methods import BYOL, MoCo, SimCLR, SimSiam
from sslbook.methods.byol import target_momentum
from sslbook.models import backbone
from sslbook.train import TrainConfig, fit


def tiny_encoder():
    return backbone("small_cnn", 8)  # out_dim 32


class PooledPixels(torch.nn.Module):
    """A stand-in encoder: centred 8x8-pooled pixels, 48 features that differ between images
    (a random-init CNN maps all images to nearly one direction, which hides a wrong pairing)."""

    out_dim = 48

    def forward(self, x):
        return F.avg_pool2d(x, 8).flatten(1) - 0.5  # (B, 48)


def images(n=8):
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)


def identity_views(x, generator=None):
    """An 'augmentation' that returns the images unchanged: deterministic views for the tests."""
    return to_float(x)


def perturb(module, scale=0.1):
    """Move every parameter so that an online network differs from its momentum copy."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))


METHODS = {
    "simclr": lambda: SimCLR(tiny_encoder(), proj_hidden=32, proj_dim=16),
    "moco": lambda: MoCo(tiny_encoder(), proj_hidden=32, proj_dim=16, queue_size=64),
    "byol": lambda: BYOL(tiny_encoder(), proj_hidden=32, proj_dim=16, total_steps=10),
    "simsiam": lambda: SimSiam(tiny_encoder(), proj_dim=32, pred_hidden=8),
    "simsiam-no-stopgrad": lambda: SimSiam(
        tiny_encoder(), proj_dim=32, pred_hidden=8, stop_gradient=False
    ),
}


# -----------------------------------------------------------------------------
# every method


@pytest.mark.parametrize("name", METHODS)
def test_one_step_gives_a_finite_loss_and_encoder_gradients(name):
    model = METHODS[name]()
    assert isinstance(model.augment, SimCLRAugment) and model.encoder.out_dim == 32
    out = model(images())
    assert out["loss"].shape == () and torch.isfinite(out["loss"])
    assert out["loss"].requires_grad
    for key, value in out.items():
        assert torch.isfinite(value), key
        assert key == "loss" or not value.requires_grad, f"{key} is logged, so must be detached"
    out["loss"].backward()
    grads = [p.grad for p in model.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


@pytest.mark.parametrize("name", METHODS)
def test_losses_stay_float32_under_bf16_autocast(name):
    model = METHODS[name]()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(images())["loss"]
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.encoder.parameters())


@pytest.mark.parametrize("name", ["moco", "byol"])
def test_fit_trains_and_resumes_the_momentum_methods(name, tmp_path):
    model, data = METHODS[name](), images(16)
    config = TrainConfig(epochs=1, batch_size=8, progress=False, checkpoint_dir=tmp_path)
    history = fit(model, data, config, device="cpu")
    assert math.isfinite(history.epochs[-1]["loss"]) and "std" in history.epochs[-1]
    # a fresh model resumes with the queue / step counter of the checkpoint
    resumed = METHODS[name]()
    config.epochs = 2
    with pytest.warns(UserWarning, match="changed config"):
        fit(resumed, data, config, device="cpu")
    if name == "moco":  # 2 steps x 2B keys per epoch
        assert resumed.queue_ptr.item() == (2 * 2 * 2 * 8) % 64
    else:
        assert resumed.step.item() == 4


def test_simclr_loss_falls_under_fit():
    torch.manual_seed(0)
    data = images(32)
    mild = SimCLRAugment(scale=(0.6, 1.0), jitter_p=0.0, grayscale_p=0.0)
    model = SimCLR(tiny_encoder(), proj_hidden=32, proj_dim=16, augment=mild)
    config = TrainConfig(epochs=10, batch_size=16, lr=1e-2, progress=False, log_every=1)
    history = fit(model, data, config, device="cpu")
    losses = [epoch["loss"] for epoch in history.epochs]
    assert losses[0] == pytest.approx(math.log(31), abs=0.3)  # chance: 1 of 2B - 1 = 31 others
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2 - 0.2, losses


# -----------------------------------------------------------------------------
# MoCo


def test_moco_queue_is_a_fifo_ring_of_unit_vectors():
    model = MoCo(tiny_encoder(), proj_hidden=32, proj_dim=4, queue_size=8)
    torch.testing.assert_close(model.queue.norm(dim=1), torch.ones(8))  # random, normalised
    batches = [torch.randn(3, 4) * (i + 1) * 10 for i in range(3)]  # not normalised
    for batch, ptr in zip(batches, [3, 6, 1], strict=True):
        model.enqueue(batch)
        assert model.queue_ptr.item() == ptr
    unit = [F.normalize(b, dim=1) for b in batches]
    # slots 0..7 after 9 keys: the ninth overwrote the first
    want = torch.cat([unit[2][2:], unit[0][1:], unit[1], unit[2][:2]])
    torch.testing.assert_close(model.queue, want)
    # from the pointer on: oldest to newest, the first key is gone
    oldest_first = model.queue.roll(-model.queue_ptr.item(), 0)
    torch.testing.assert_close(oldest_first, torch.cat(unit)[1:])
    torch.testing.assert_close(model.queue.norm(dim=1), torch.ones(8))


def test_moco_enqueue_rejects_bad_keys():
    model = MoCo(tiny_encoder(), proj_hidden=32, proj_dim=4, queue_size=8)
    with pytest.raises(ValueError, match=r"\(n <= 8, 4\).*\(9, 4\)"):
        model.enqueue(torch.randn(9, 4))
    with pytest.raises(ValueError, match=r"\(n <= 8, 4\).*\(2, 5\)"):
        model.enqueue(torch.randn(2, 5))


def test_moco_after_step_is_the_ema_formula():
    m = 0.9  # far from 1, so that a wrong formula shows
    model = MoCo(tiny_encoder(), proj_hidden=32, proj_dim=16, queue_size=64, momentum=m)
    query = [*model.encoder.parameters(), *model.projector.parameters()]
    key = [*model.encoder_k.parameters(), *model.projector_k.parameters()]
    for q, k in zip(query, key, strict=True):
        assert torch.equal(q, k) and not k.requires_grad  # starts as a frozen copy
    perturb(model.encoder), perturb(model.projector)
    before_q = [q.detach().double().clone() for q in query]
    before_k = [k.double().clone() for k in key]
    buffers = copy.deepcopy(list(model.encoder_k.buffers()))
    model.after_step()
    for q, k, k_new in zip(before_q, before_k, key, strict=True):
        want = m * k + (1 - m) * q
        torch.testing.assert_close(k_new.double(), want, rtol=0, atol=1e-6)
        assert not torch.allclose(k_new.double(), k)  # it moved
    for b, b_new in zip(buffers, model.encoder_k.buffers(), strict=True):
        assert torch.equal(b, b_new)  # BN statistics are the key encoder's own, not averaged


def test_moco_forward_uses_the_key_encoder_as_it_is_and_enqueues_both_views():
    m, batch = 0.5, images(8)
    model = MoCo(tiny_encoder(), proj_hidden=32, proj_dim=16, queue_size=40, momentum=m)
    model.augment = identity_views  # both views = the images: known keys
    perturb(model.encoder)
    q0 = [p.detach().clone() for p in model.encoder.parameters()]
    k0 = [p.clone() for p in model.encoder_k.parameters()]
    old_queue = model.queue.clone()
    out = model(batch)
    for k, k_new in zip(k0, model.encoder_k.parameters(), strict=True):
        assert torch.equal(k, k_new)  # the forward does not move the key encoder
    with torch.no_grad():  # the keys the step must have used (train-mode BN: batch statistics)
        keys = F.normalize(model.projector_k(model.encoder_k(to_float(batch))), dim=1)
    assert model.queue_ptr.item() == 16  # 2B keys per step
    torch.testing.assert_close(model.queue[:16], torch.cat([keys, keys]))
    torch.testing.assert_close(model.queue[16:], old_queue[16:])
    out["loss"].backward()  # the in-place enqueue did not break the graph
    assert all(p.grad is None for p in model.encoder_k.parameters())
    assert all(p.grad is None for p in model.projector_k.parameters())
    assert all(p.grad is not None for p in model.projector.parameters())
    model.after_step()  # what fit calls after the optimizer step: one update
    for q, k, k_new in zip(q0, k0, model.encoder_k.parameters(), strict=True):
        torch.testing.assert_close(k_new, m * k + (1 - m) * q)
    # evaluation mode: no enqueue
    model.eval()
    state = copy.deepcopy(model.state_dict())
    model(batch)
    for name, value in model.state_dict().items():
        assert torch.equal(value, state[name]), name


def info_nce_eq1(q, k, queue, temperature: float) -> float:
    """MoCo's Eq. 1 in float64: -log(exp(q.k+ / t) / (exp(q.k+ / t) + sum_j exp(q.k_j / t)))
    for unit q and k+, the queue's keys as negatives, averaged over the queries."""

    def dot(a, b):
        return math.fsum(x * y for x, y in zip(a, b, strict=True))

    total = 0.0
    for q_i, k_i in zip(q.double().tolist(), k.double().tolist(), strict=True):
        q_norm, k_norm = math.sqrt(dot(q_i, q_i)), math.sqrt(dot(k_i, k_i))
        positive = math.exp(dot(q_i, k_i) / (q_norm * k_norm) / temperature)
        negatives = math.fsum(
            math.exp(dot(q_i, key) / q_norm / temperature) for key in queue.double().tolist()
        )
        total -= math.log(positive / (positive + negatives))
    return total / len(q)


def test_moco_loss_is_the_symmetrised_eq1_with_each_view_keyed_by_the_other():
    # evaluation mode: no momentum update, no enqueue; batch norm with running statistics
    model = MoCo(PooledPixels(), proj_hidden=32, proj_dim=16, queue_size=64, temperature=0.2)
    perturb(model.projector)  # queries and keys differ
    model.eval()
    x = images(8)
    x1, x2 = to_float(x), to_float(x.flip(-1))  # two different, deterministic "views"
    model.augment = lambda batch, generator=None: torch.cat([x1, x2])
    query = torch.nn.Sequential(model.encoder, model.projector)
    key = torch.nn.Sequential(model.encoder_k, model.projector_k)
    query, key = copy.deepcopy(query).double(), copy.deepcopy(key).double()
    with torch.no_grad():
        q1, q2 = query(x1.double()), query(x2.double())
        k1, k2 = key(x1.double()), key(x2.double())
        got = model(x)["loss"].item()
    queue = model.queue.double()
    want = 0.5 * (info_nce_eq1(q1, k2, queue, 0.2) + info_nce_eq1(q2, k1, queue, 0.2))
    assert got == pytest.approx(want, rel=1e-5)
    same_view = 0.5 * (info_nce_eq1(q1, k1, queue, 0.2) + info_nce_eq1(q2, k2, queue, 0.2))
    assert abs(got - same_view) > 1e-3  # the reference tells the pairings apart


# -----------------------------------------------------------------------------
# BYOL


def test_byol_momentum_follows_the_cosine_schedule():
    K = 100
    for step, tau in [(0, 0.99), (K // 2, 0.995), (K, 1.0), (3 * K, 1.0)]:
        assert target_momentum(step, K, 0.99).item() == pytest.approx(tau, abs=1e-7)
        assert target_momentum(torch.tensor(step), K, 0.99).item() == pytest.approx(tau, abs=1e-7)
    # tau(k) = 1 - 0.01 (cos(pi k / K) + 1) / 2 at a point off the symmetric ones
    want = 1 - 0.01 * (math.cos(math.pi * 0.3) + 1) / 2
    assert target_momentum(30, K, 0.99).item() == pytest.approx(want, abs=1e-7)
    assert target_momentum(123, None, 0.996).item() == pytest.approx(0.996, abs=1e-7)


def test_byol_after_step_is_the_ema_formula_and_counts_steps():
    model = BYOL(tiny_encoder(), proj_hidden=32, proj_dim=16, base_momentum=0.9, total_steps=10)
    online = [*model.encoder.parameters(), *model.projector.parameters()]
    target = [*model.target_encoder.parameters(), *model.target_projector.parameters()]
    assert all(not p.requires_grad for p in target)
    assert not any(p is q for p in model.predictor.parameters() for q in target)  # online only
    perturb(model.encoder), perturb(model.projector)
    model.step.fill_(5)  # halfway: tau = 1 - 0.1 (cos(pi / 2) + 1) / 2 = 0.95
    tau = 0.95
    before_online = [p.detach().double().clone() for p in online]
    before_target = [p.double().clone() for p in target]
    buffers = copy.deepcopy(list(model.target_encoder.buffers()))
    model.after_step()
    assert model.step.item() == 6
    for theta, xi, xi_new in zip(before_online, before_target, target, strict=True):
        torch.testing.assert_close(xi_new.double(), tau * xi + (1 - tau) * theta, rtol=0, atol=1e-6)
        assert not torch.allclose(xi_new.double(), xi)
    for b, b_new in zip(buffers, model.target_encoder.buffers(), strict=True):
        assert torch.equal(b, b_new)


def test_byol_forward_leaves_the_target_and_after_step_resumes_its_schedule():
    model = BYOL(tiny_encoder(), proj_hidden=32, proj_dim=16, total_steps=4)
    target = [*model.target_encoder.parameters(), *model.target_projector.parameters()]
    before = [p.clone() for p in target]
    out = model(images())
    assert model.step.item() == 0 and out["tau"].item() == pytest.approx(0.99)
    assert all(torch.equal(p, b) for p, b in zip(target, before, strict=True))
    out["loss"].backward()
    assert all(p.grad is None for p in target)
    assert all(p.grad is not None for p in model.predictor.parameters())
    model.after_step(), model.after_step()
    # the step counter is part of the state: a checkpoint resumes the schedule
    fresh = BYOL(tiny_encoder(), proj_hidden=32, proj_dim=16, total_steps=4)
    fresh.load_state_dict(model.state_dict())
    assert fresh.step.item() == 2
    assert fresh.momentum().item() == pytest.approx(1 - 0.01 * (math.cos(math.pi / 2) + 1) / 2)


# -----------------------------------------------------------------------------
# SimSiam


def _gradient_through_the_target(model):
    """dL/dz minus the part of it that flows through the predictor: the target path's share."""
    captured = {"z": [], "p": []}
    model.projector.register_forward_hook(lambda m, i, out: captured["z"].append(out))
    model.predictor.register_forward_hook(lambda m, i, out: captured["p"].append(out))
    loss = model(images())["loss"]
    z, p = captured["z"], captured["p"]
    total = torch.autograd.grad(loss, z, retain_graph=True)  # dL/dz1, dL/dz2
    d_p = torch.autograd.grad(loss, p, retain_graph=True)
    via_predictor = torch.autograd.grad(p, z, grad_outputs=d_p, retain_graph=True)
    return [t - v for t, v in zip(total, via_predictor, strict=True)]


def test_simsiam_stop_gradient_blocks_the_target_branch():
    torch.manual_seed(0)
    blocked = _gradient_through_the_target(SimSiam(tiny_encoder(), proj_dim=32, pred_hidden=8))
    assert all(torch.count_nonzero(g) == 0 for g in blocked)
    torch.manual_seed(0)
    ablation = SimSiam(tiny_encoder(), proj_dim=32, pred_hidden=8, stop_gradient=False)
    open_ = _gradient_through_the_target(ablation)
    assert all(g.abs().max() > 1e-4 for g in open_)


def test_byol_projector_and_predictor_end_in_a_linear_layer():
    # Linear, BN, ReLU, Linear as in BYOL's paper: no batch norm on the output, unlike SimSiam's
    model = BYOL(tiny_encoder(), proj_hidden=32, proj_dim=16)
    for head in (model.projector, model.predictor):
        leaves = [m for m in head.modules() if not list(m.children())]
        assert isinstance(leaves[-1], torch.nn.Linear) and leaves[-1].out_features == 16
        assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in leaves) == 1


def test_simsiam_targets_are_detached():
    model = SimSiam(tiny_encoder(), proj_dim=32, pred_hidden=8)
    x1, x2 = to_float(images()), to_float(images())
    p1, p2, z1, z2 = model.forward_views(x1, x2)
    assert p1.requires_grad and p2.requires_grad
    assert not z1.requires_grad and not z2.requires_grad
    model.stop_gradient = False
    assert all(t.requires_grad for t in model.forward_views(x1, x2))
    # the projector ends in a BN without affine parameters, the predictor is a bottleneck
    assert not model.projector[-1].affine
    assert model.predictor.net[0].out_features == 8
    linears = [m for m in model.projector.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 3
    cifar = SimSiam(tiny_encoder(), proj_dim=32, pred_hidden=8, proj_layers=2)
    assert sum(isinstance(m, torch.nn.Linear) for m in cifar.projector.modules()) == 2


def test_the_article_contrastive_model_is_a_classifier_that_needs_labels():
    from sslbook.article import ArticleClassifier

    model = ArticleClassifier()
    logits = model(torch.rand(4, 3, 32, 32))
    assert logits.shape == (4, 10)  # one score per class, not an embedding to compare
    assert model.fc.in_features == 256 * 4 * 4


# -----------------------------------------------------------------------------
# SimCLR


def nt_xent_eq1(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> float:
    """SimCLR's Eq. 1 over the 2N views in float64: l(i, j) = -log(exp(s_ij / T) /
    sum_{k != i} exp(s_ik / T)), s the cosine similarity, averaged over all 2N anchors."""
    z = torch.cat([z1, z2]).double().tolist()
    n2 = len(z)

    def cos(a, b):
        dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
        return dot / math.sqrt(math.fsum(x * x for x in a) * math.fsum(y * y for y in b))

    total = 0.0
    for i in range(n2):
        j = (i + n2 // 2) % n2  # the other view of the same image
        denominator = math.fsum(
            math.exp(cos(z[i], z[k]) / temperature) for k in range(n2) if k != i
        )
        total -= math.log(math.exp(cos(z[i], z[j]) / temperature) / denominator)
    return total / n2


def fixed_views(x1, x2):
    """An augmentation that, called on the doubled batch, returns the views x1 and x2."""
    return lambda batch, generator=None: torch.cat([x1, x2])


@pytest.mark.parametrize("joint", [True, False])
def test_simclr_loss_is_eq1_on_the_views_with_either_batch_norm_convention(joint):
    torch.manual_seed(0)
    x = images(6)
    x1, x2 = to_float(x), to_float(x.flip(-1))  # two different, deterministic "views"
    model = SimCLR(
        tiny_encoder(), proj_hidden=32, proj_dim=16, temperature=0.3,
        augment=fixed_views(x1, x2), joint_batchnorm=joint,
    )  # fmt: skip
    reference = copy.deepcopy(model).double()  # train mode: batch statistics, as in the step
    with torch.no_grad():
        both = torch.cat([x1, x2]).double()
        joint_z = reference.project(both).chunk(2)  # batch norm over all 2B views
        split_z = reference.project(both[:6]), reference.project(both[6:])  # B views at a time
    # the two conventions give different embeddings for the same inputs
    assert not torch.allclose(joint_z[0], split_z[0], atol=1e-4)
    want = nt_xent_eq1(*(joint_z if joint else split_z), temperature=0.3)
    other = nt_xent_eq1(*(split_z if joint else joint_z), temperature=0.3)
    got = model(x)["loss"].item()
    assert got == pytest.approx(want, rel=1e-5)
    assert abs(got - other) > 1e-3  # the reference tells the conventions apart


@pytest.mark.parametrize("joint", [True, False])
def test_simclr_loss_is_symmetric_in_the_views_and_depends_on_their_pairing(joint):
    torch.manual_seed(0)
    x = images(6)
    x1, x2 = to_float(x), to_float(x.flip(-1))
    model = SimCLR(tiny_encoder(), proj_hidden=32, proj_dim=16, joint_batchnorm=joint)
    model.augment = fixed_views(x1, x2)
    loss = model(x)["loss"]
    model.augment = fixed_views(x2, x1)  # swap the two views of every image
    torch.testing.assert_close(model(x)["loss"], loss)
    order = torch.randperm(6)
    model.augment = fixed_views(x1[order], x2[order])  # the same pairs, in another order
    torch.testing.assert_close(model(x)["loss"], loss)
    model.augment = fixed_views(x1, x2.roll(1, 0))  # partners from different images
    assert not torch.allclose(model(x)["loss"], loss, atol=1e-3)


def test_simclr_loss_of_identical_embeddings_is_log_2n_minus_1():
    # one image repeated: all 2N projections coincide, every logit is equal, and each anchor's
    # loss is a uniform guess among the 2N - 1 other views ([0], Eq. 1 with s_ik = 1)
    n = 5
    x = torch.full((n, 3, 32, 32), 90, dtype=torch.uint8)
    model = SimCLR(tiny_encoder(), proj_hidden=32, proj_dim=16, augment=identity_views)
    out = model(x)
    assert out["loss"].item() == pytest.approx(math.log(2 * n - 1), rel=1e-6)
    assert out["std"].item() == pytest.approx(0.0, abs=1e-6)  # collapsed, by construction
