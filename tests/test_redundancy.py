"""Barlow Twins, VICReg and DINO: their losses against float64 loops written from the papers'
equations, the properties each method relies on, multi-crop views, and bad input."""

import math

import pytest
import torch
import torch.nn.functional as F

from sslbook.augment import MultiCropAugment, SimCLRAugment
from sslbook.data import to_float
from sslbook.experiments import EXPERIMENTS
from sslbook.experiments.pretrain import METHODS, REDUNDANCY_METHODS, build_method, method_options
from sslbook.losses import (
    barlow_twins_loss,
    cross_correlation,
    dino_loss,
    variance_loss,
    vicreg_loss,
)
from sslbook.methods import DINO, BarlowTwins, VICReg
from sslbook.models import backbone
from sslbook.profiles import profile
from sslbook.train import TrainConfig, fit


def tiny_encoder():
    return backbone("small_cnn", 8)  # out_dim 32


def images(n=8):
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)


def _column(z, j):
    return [row[j] for row in z]


def _mean(xs):
    return math.fsum(xs) / len(xs)


# -----------------------------------------------------------------------------
# float64 references, one loop per sum in the papers


def barlow_twins_reference(z1, z2, lambd):
    """Barlow Twins Eq. 1 with C from Eq. 2, centred over the batch."""
    a, b = z1.double().tolist(), z2.double().tolist()
    d = len(a[0])
    a_cols = [[x - _mean(_column(a, i)) for x in _column(a, i)] for i in range(d)]
    b_cols = [[x - _mean(_column(b, j)) for x in _column(b, j)] for j in range(d)]
    loss = 0.0
    for i in range(d):
        for j in range(d):
            num = math.fsum(x * y for x, y in zip(a_cols[i], b_cols[j], strict=True))
            den = math.sqrt(math.fsum(x * x for x in a_cols[i])) * math.sqrt(
                math.fsum(y * y for y in b_cols[j])
            )
            c_ij = num / den
            loss += (1 - c_ij) ** 2 if i == j else lambd * c_ij**2
    return loss


def vicreg_reference(z1, z2, sim_coeff, std_coeff, cov_coeff, gamma, eps=1e-4):
    """VICReg Eqs. 1-6; the invariance term as the mean over N x D entries (Algorithm 1)."""
    a, b = z1.double().tolist(), z2.double().tolist()
    n, d = len(a), len(a[0])
    invariance = _mean(
        [(x - y) ** 2 for ra, rb in zip(a, b, strict=True) for x, y in zip(ra, rb, strict=True)]
    )

    def variance(z):  # Eq. 1, S(x, eps) = sqrt(Var(x) + eps) with the unbiased variance
        hinge = []
        for j in range(d):
            col = _column(z, j)
            var = math.fsum((x - _mean(col)) ** 2 for x in col) / (n - 1)
            hinge.append(max(0.0, gamma - math.sqrt(var + eps)))
        return _mean(hinge)

    def covariance(z):  # Eqs. 2-3
        cols = [[x - _mean(_column(z, j)) for x in _column(z, j)] for j in range(d)]
        total = 0.0
        for i in range(d):
            for j in range(d):
                if i != j:
                    total += (
                        math.fsum(x * y for x, y in zip(cols[i], cols[j], strict=True)) / (n - 1)
                    ) ** 2
        return total / d

    v, c = variance(a) + variance(b), covariance(a) + covariance(b)
    return sim_coeff * invariance + std_coeff * v + cov_coeff * c, (invariance, v, c)


def dino_reference(student, teacher, centre, student_temp, teacher_temp):
    """DINO Eq. 3: H(P_t, P_s) averaged over the batch and the pairs of different views."""

    def softmax(row, temp):
        m = max(x / temp for x in row)
        e = [math.exp(x / temp - m) for x in row]
        s = math.fsum(e)
        return [x / s for x in e]

    c = centre.double().tolist()
    pairs = []
    for i, t in enumerate(teacher):
        for j, s in enumerate(student):
            if i == j:
                continue
            per_image = []
            for t_row, s_row in zip(t.double().tolist(), s.double().tolist(), strict=True):
                p_t = softmax([x - ck for x, ck in zip(t_row, c, strict=True)], teacher_temp)
                p_s = softmax(s_row, student_temp)
                per_image.append(-math.fsum(p * math.log(q) for p, q in zip(p_t, p_s, strict=True)))
            pairs.append(_mean(per_image))
    return _mean(pairs)


# -----------------------------------------------------------------------------
# Barlow Twins


@pytest.mark.parametrize("lambd", [0.0, 5e-3, 0.5])
def test_barlow_twins_loss_matches_the_papers_equations(lambd):
    z1, z2 = torch.randn(10, 6), torch.randn(10, 6)
    z2 = z2 + 0.7 * z1  # correlated views, so the diagonal is not all noise
    want = barlow_twins_reference(z1, z2, lambd)
    assert barlow_twins_loss(z1, z2, lambd).item() == pytest.approx(want, rel=1e-5)


def test_barlow_twins_loss_is_invariant_to_the_order_of_the_batch_and_zero_at_the_identity():
    z1, z2 = torch.randn(12, 5), torch.randn(12, 5)
    order = torch.randperm(12)
    loss = barlow_twins_loss(z1, z2)
    assert barlow_twins_loss(z1[order], z2[order]).item() == pytest.approx(loss.item(), rel=1e-6)
    # pairing matters: shuffling one view only breaks the image pairs
    assert barlow_twins_loss(z1, z2[order]).item() != pytest.approx(loss.item(), rel=1e-3)
    # identical views with uncorrelated dimensions: C = I and L = 0, whatever their scale
    a = torch.randn(12, 4)
    q, _ = torch.linalg.qr(a - a.mean(0))  # orthonormal columns, centred as a's are
    z = q * torch.tensor([1.0, 3.0, 0.1, 20.0])
    torch.testing.assert_close(cross_correlation(z, z), torch.eye(4), atol=1e-5, rtol=0)
    assert barlow_twins_loss(z, z).item() == pytest.approx(0.0, abs=1e-5)


def test_cross_correlation_of_a_constant_dimension_is_zero_not_nan():
    z = torch.randn(6, 3)
    z[:, 1] = 2.0  # a collapsed dimension
    c = cross_correlation(z, z)
    assert torch.isfinite(c).all() and c[1].abs().max() == 0 and c[:, 1].abs().max() == 0
    # the collapsed dimension pays (1 - 0)^2; the others only their cross-correlation
    want = 1.0 + 5e-3 * 2 * c[0, 2].item() ** 2
    assert barlow_twins_loss(z, z).item() == pytest.approx(want, rel=1e-5)


# -----------------------------------------------------------------------------
# VICReg


@pytest.mark.parametrize("coeffs", [(25.0, 25.0, 1.0), (1.0, 0.0, 3.0), (0.5, 2.0, 0.0)])
def test_vicreg_loss_and_its_terms_match_the_papers_equations(coeffs):
    z1 = torch.randn(9, 5) * torch.tensor([0.2, 0.5, 1.0, 2.0, 0.05])  # some std below gamma
    z2 = z1 + 0.3 * torch.randn(9, 5)
    want, (s, v, c) = vicreg_reference(z1, z2, *coeffs, gamma=1.0)
    loss, terms = vicreg_loss(z1, z2, *coeffs)
    assert loss.item() == pytest.approx(want, rel=1e-5)
    assert terms["invariance"].item() == pytest.approx(s, rel=1e-5)
    assert terms["variance"].item() == pytest.approx(v, rel=1e-5)
    assert terms["covariance"].item() == pytest.approx(c, rel=1e-5)


def test_vicreg_variance_term_is_zero_once_every_std_reaches_gamma():
    z = torch.randn(64, 6)
    z = (z - z.mean(0)) / z.std(0)  # every dimension's std exactly 1
    assert variance_loss(2.0 * z, gamma=2.0).item() == 0.0
    assert variance_loss(3.0 * z, gamma=2.0).item() == 0.0
    # one dimension short of gamma: only it counts, (gamma - sqrt(std^2 + eps)) / D
    short = 2.0 * z
    short[:, 4] *= 0.25  # std 0.5
    want = (2.0 - math.sqrt(0.25 + 1e-4)) / 6
    assert variance_loss(short, gamma=2.0).item() == pytest.approx(want, rel=1e-5)
    # a collapsed embedding pays the full hinge
    assert variance_loss(torch.ones(8, 6), gamma=1.0).item() == pytest.approx(1 - 0.01, rel=1e-5)


# -----------------------------------------------------------------------------
# DINO


@pytest.mark.parametrize("temps", [(0.1, 0.04), (0.5, 0.5)])
def test_dino_loss_matches_eq3_over_pairs_of_different_views(temps):
    k = 7
    teacher = [torch.randn(5, k), torch.randn(5, k)]
    student = [torch.randn(5, k) for _ in range(5)]  # 2 global + 3 local views
    centre = 0.3 * torch.randn(k)
    want = dino_reference(student, teacher, centre, *temps)
    assert dino_loss(student, teacher, centre, *temps).item() == pytest.approx(want, rel=1e-5)


def test_dino_loss_skips_the_pairs_of_a_view_with_itself():
    k = 6
    teacher = [torch.randn(4, k), torch.randn(4, k)]
    student = [torch.randn(4, k) for _ in range(4)]
    centre = torch.zeros(k)

    def h(t, s):  # H(P_t, P_s) averaged over the batch
        p_t = F.softmax(t / 0.04, dim=1)
        return -(p_t * F.log_softmax(s / 0.1, dim=1)).sum(1).mean().item()

    pairs = [(i, j) for i in range(2) for j in range(4) if i != j]
    want = sum(h(teacher[i], student[j]) for i, j in pairs) / len(pairs)
    assert dino_loss(student, teacher, centre).item() == pytest.approx(want, rel=1e-5)
    # a student view equal to the teacher's own view gets no credit for it: changing the
    # student's output for view 0 moves only the pairs (teacher 1, student 0)
    moved = [student[0] + 5 * torch.randn(4, k), *student[1:]]
    delta = dino_loss(moved, teacher, centre).item() - dino_loss(student, teacher, centre).item()
    assert delta == pytest.approx(
        (h(teacher[1], moved[0]) - h(teacher[1], student[0])) / 6, rel=1e-4
    )


def identity_multicrop(n_local=2):
    """Deterministic 'multi-crop': the image twice, then n_local 16x16 downsamplings of it."""

    def views(x, generator=None):
        x = to_float(x)
        return [x, x] + [F.avg_pool2d(x, 2)] * n_local

    views.n_global = 2
    return views


def tiny_dino(**kwargs):
    options = dict(hidden_dim=16, bottleneck_dim=8, out_dim=12, augment=identity_multicrop())
    return DINO(tiny_encoder(), **(options | kwargs))


def test_dino_teacher_gets_no_gradient_and_moves_only_by_its_ema():
    model = tiny_dino(base_momentum=0.9)
    teacher = [*model.teacher_encoder.parameters(), *model.teacher_head.parameters()]
    student = [*model.encoder.parameters(), *model.head.parameters()]
    assert all(not p.requires_grad for p in teacher)
    before = [p.clone() for p in teacher]
    model(images())["loss"].backward()
    assert all(p.grad is None for p in teacher)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.head.parameters())
    assert all(torch.equal(p, b) for p, b in zip(teacher, before, strict=True))
    # after_step: xi <- 0.9 xi + 0.1 theta
    with torch.no_grad():
        for p in student:
            p.add_(0.1 * torch.randn_like(p))
    theta = [p.detach().double().clone() for p in student]
    model.after_step()
    assert model.step.item() == 1
    for xi_old, xi, th in zip(before, teacher, theta, strict=True):
        torch.testing.assert_close(xi.double(), 0.9 * xi_old.double() + 0.1 * th, atol=1e-6, rtol=0)


def test_dino_centre_follows_its_ema_of_the_teachers_outputs():
    model = tiny_dino(centre_momentum=0.8)
    x = images()
    model.centre.copy_(torch.randn(12))
    c0 = model.centre.clone()
    with torch.no_grad():
        t = model.teacher_head(model.teacher_encoder(to_float(torch.cat([x, x]))))  # (2B, K)
    model(x)
    torch.testing.assert_close(model.centre, 0.8 * c0 + 0.2 * t.mean(0), atol=1e-6, rtol=0)
    # the loss of that step used the previous centre
    with torch.no_grad():
        model.centre.copy_(c0)
        teacher = list(t.chunk(2))
        student_views = [to_float(x), to_float(x), *[F.avg_pool2d(to_float(x), 2)] * 2]
        student = [model.head(model.encoder(v)) for v in student_views]
        want = dino_loss(student, teacher, c0, 0.1, 0.04)
        got = model(x)["loss"]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # evaluation and the "sharpening only" ablation leave the centre alone
    model.eval()
    frozen = model.centre.clone()
    model(x)
    assert torch.equal(model.centre, frozen)
    no_centring = tiny_dino(centering=False)
    no_centring(x)
    assert torch.equal(no_centring.centre, torch.zeros(12))


# -----------------------------------------------------------------------------
# multi-crop


def coordinate_images(n):
    """Channel 0 holds the column / 31, channel 1 the row / 31: a view shows where it came from."""
    ramp = torch.arange(32, dtype=torch.float32) / 31
    x = torch.zeros(n, 3, 32, 32)
    x[:, 0] = ramp[None, None, :]
    x[:, 1] = ramp[None, :, None]
    return x


def test_multicrop_makes_global_and_local_views_with_their_sizes_and_scales():
    augment = MultiCropAugment(n_local=3, colour=SimCLRAugment.crop_only())
    views = augment(coordinate_images(64), generator=torch.Generator().manual_seed(0))
    assert [tuple(v.shape) for v in views] == [(64, 3, 32, 32)] * 2 + [(64, 3, 16, 16)] * 3

    def area(v):  # the crop's area as a fraction of the image, from the coordinates it shows
        width = v[:, 0].amax(dim=(1, 2)) - v[:, 0].amin(dim=(1, 2))
        height = v[:, 1].amax(dim=(1, 2)) - v[:, 1].amin(dim=(1, 2))
        return width * height  # a little below the true area (pixel centres, not edges)

    global_area = torch.cat([area(v) for v in views[:2]])
    local_area = torch.cat([area(v) for v in views[2:]])
    assert global_area.min() > 0.33 and global_area.max() <= 1.0  # scale (0.4, 1)
    assert local_area.max() < 0.42 and local_area.min() > 0.02  # scale (0.05, 0.4)
    # per-sample parameters: the same image gets 64 different crops in every view
    for v in views:
        corner = torch.stack([v[:, 0].amin(dim=(1, 2)), v[:, 1].amin(dim=(1, 2)), area(v)], 1)
        assert len(torch.unique(corner.round(decimals=4), dim=0)) > 56


def test_multicrop_draws_from_the_generator_and_checks_its_recipe():
    x = images(4)
    a = MultiCropAugment(n_local=2)(x, generator=torch.Generator().manual_seed(1))
    b = MultiCropAugment(n_local=2)(x, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert not torch.equal(a[0], a[1])  # the two global views differ
    assert len(MultiCropAugment(n_local=0)(x)) == 2
    with pytest.raises(ValueError, match="n_global >= 1 and n_local >= 0, got 2 and -1"):
        MultiCropAugment(n_local=-1)
    with pytest.raises(ValueError, match=r"local_scale .* got \(0.5, 0.1\)"):
        MultiCropAugment(local_scale=(0.5, 0.1))


# -----------------------------------------------------------------------------
# the methods


@pytest.mark.parametrize(
    "make",
    [
        lambda: BarlowTwins(tiny_encoder(), proj_dim=16),
        lambda: VICReg(tiny_encoder(), proj_dim=16),
        lambda: tiny_dino(augment=MultiCropAugment(n_local=2)),
    ],
    ids=["barlow_twins", "vicreg", "dino"],
)
def test_methods_train_under_fit_with_finite_losses_and_encoder_gradients(make):
    model = make()
    out = model(images())
    assert torch.isfinite(out["loss"]) and {"loss", "std", "rank"} <= set(out)
    out["loss"].backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    model.zero_grad()
    history = fit(
        model, images(16), TrainConfig(epochs=1, batch_size=8, progress=False), device="cpu"
    )
    assert len(history.steps) >= 1 and math.isfinite(history.steps[-1]["loss"])
    if isinstance(model, DINO):
        assert model.step.item() == 2  # fit called after_step after each of the 2 steps


def test_build_method_builds_the_redundancy_methods_and_each_has_a_reference_experiment():
    cfg = profile("smoke").with_(width=8)
    assert not set(REDUNDANCY_METHODS) & set(METHODS)
    assert set(REDUNDANCY_METHODS) <= set(EXPERIMENTS)
    built = {name: type(build_method(name, cfg, total_steps=10)) for name in REDUNDANCY_METHODS}
    assert built == {"barlow_twins": BarlowTwins, "vicreg": VICReg, "dino": DINO}
    assert build_method("dino", cfg, total_steps=10).total_steps == 10
    # the options of the reference runs reach the classes
    assert build_method("barlow_twins", cfg, **method_options("barlow_twins")).lambd == 0.02
    dino = build_method("dino", cfg, **method_options("dino"))
    assert dino.augment.n_local == 2
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in dino.head.modules())
    with pytest.raises(
        ValueError, match="expected one of simclr, .*simsiam, barlow_twins, vicreg, dino"
    ):
        build_method("swav", cfg)


def test_dino_student_is_the_trained_network_without_teacher_or_centre():
    cfg = profile("smoke").with_(width=8)
    model = build_method("dino", cfg, total_steps=10)
    student = model.student()
    assert student.encoder is model.encoder and student.head is model.head
    keys = set(student.state_dict())
    assert keys and all(k.startswith(("encoder.", "head.")) for k in keys)
    assert set(model.state_dict()) - keys >= {"centre", "step"}
    assert {k for k in model.state_dict() if k.startswith("teacher_")}.isdisjoint(keys)


# -----------------------------------------------------------------------------
# bad input


z8 = torch.randn(4, 8)


def test_redundancy_losses_reject_bad_views_naming_expected_and_actual():
    for loss in (barlow_twins_loss, lambda a, b: vicreg_loss(a, b)[0]):
        with pytest.raises(ValueError, match=r"equal shape \(N, D\), got \(4, 8\) and \(4, 7\)"):
            loss(z8, torch.randn(4, 7))
        with pytest.raises(ValueError, match="at least 2 embeddings, got N=1"):
            loss(z8[:1], z8[:1])
    with pytest.raises(ValueError, match="lambd >= 0, got -1"):
        barlow_twins_loss(z8, z8, -1)
    with pytest.raises(ValueError, match="std_coeff >= 0, got -2"):
        vicreg_loss(z8, z8, std_coeff=-2)
    with pytest.raises(ValueError, match="gamma > 0, got 0"):
        vicreg_loss(z8, z8, gamma=0)


def test_dino_loss_rejects_bad_views_centres_and_temperatures():
    t, c = [z8, z8], torch.zeros(8)
    with pytest.raises(ValueError, match=r"equal shape \(N, D\), got \(4, 8\) and \(4, 9\)"):
        dino_loss([z8, torch.randn(4, 9)], t, c)
    with pytest.raises(ValueError, match="at least 2 outputs, got N=1"):
        dino_loss([z8[:1], z8[:1]], [z8[:1]], c)
    with pytest.raises(ValueError, match="got 3 teacher and 2 student views"):
        dino_loss([z8, z8], [z8, z8, z8], c)
    with pytest.raises(ValueError, match=r"centre of shape \(8,\), got \(1, 8\)"):
        dino_loss([z8, z8], t, c[None])
    for temps in [(0, 0.04), (0.1, -0.04), (0.1, float("nan"))]:
        with pytest.raises(ValueError, match="temperature > 0"):
            dino_loss([z8, z8], t, c, *temps)


def test_the_simclr_control_trains_with_the_adamw_recipe_and_keeps_no_weights(monkeypatch):
    from sslbook.experiments import pretrain

    calls = []

    def fake_run(name, cfg, device=None, checkpoint_dir=None, seed=0, changes=None):
        calls.append((name, changes, seed))
        return {"models": {name: {"model": None}}, "metrics": {"knn": 0.5}}

    monkeypatch.setattr(pretrain, "run", fake_run)
    result = EXPERIMENTS["simclr_adamw"](profile("smoke"), seed=3)
    assert calls == [("simclr", pretrain.ADAMW_RECIPE, 3)]
    assert "models" not in result and result["metrics"] == {"knn": 0.5}
    # the redundancy methods' own reference runs use the same recipe, the others SGD
    assert all(pretrain.recipe_changes(n) == pretrain.ADAMW_RECIPE for n in REDUNDANCY_METHODS)
    assert all(pretrain.recipe_changes(n) == {} for n in METHODS)


def test_the_weights_registry_knows_every_method_that_compares_views():
    from sslbook import weights

    assert set(weights._VIEW_METHODS) == set(METHODS + REDUNDANCY_METHODS)
    cfg = profile("smoke").with_(width=8)
    assert set(weights.MODELS["dino"][1](cfg, {}).state_dict()) == set(
        build_method("dino", cfg, **method_options("dino")).student().state_dict()
    )
