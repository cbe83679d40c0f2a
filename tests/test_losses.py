"""Losses against float64 references written with explicit loops, and against their properties."""

import math

import pytest
import torch
import torch.nn.functional as F

from sslbook.losses import check_views, info_nce_loss, negative_cosine_similarity, nt_xent_loss


def _cos(a: list[float], b: list[float]) -> float:
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b)))


def nt_xent_reference(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> float:
    """SimCLR Eq. 1 written out: 2N anchors, partner positive, sum over k != i, in float64."""
    z = torch.cat([z1, z2]).double().tolist()
    n2, n = len(z), len(z) // 2
    total = 0.0
    for i in range(n2):
        j = (i + n) % n2  # the other view of the same image
        denominator = math.fsum(
            math.exp(_cos(z[i], z[k]) / temperature) for k in range(n2) if k != i
        )
        total += -math.log(math.exp(_cos(z[i], z[j]) / temperature) / denominator)
    return total / n2


def info_nce_reference(q, k, queue, temperature: float) -> float:
    """MoCo Eq. 1 written out in float64; the queue is used as given (already normalised)."""
    q, k, queue = q.double().tolist(), k.double().tolist(), queue.double().tolist()
    total = 0.0
    for q_i, k_i in zip(q, k, strict=True):
        norm = math.sqrt(math.fsum(x * x for x in q_i))
        positive = math.exp(_cos(q_i, k_i) / temperature)
        negatives = math.fsum(
            math.exp(math.fsum(x * y for x, y in zip(q_i, key, strict=True)) / norm / temperature)
            for key in queue
        )
        total += -math.log(positive / (positive + negatives))
    return total / len(q)


# -----------------------------------------------------------------------------
# NT-Xent


@pytest.mark.parametrize("temperature", [0.05, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("n,d", [(2, 3), (5, 8), (16, 32)])
def test_nt_xent_matches_double_loop(n, d, temperature):
    z1 = torch.randn(n, d)
    z2 = z1 + 0.8 * torch.randn(n, d)  # positives more alike than negatives, as after training
    got = nt_xent_loss(z1, z2, temperature)
    assert got.dtype == torch.float32 and got.shape == ()
    assert got.item() == pytest.approx(nt_xent_reference(z1, z2, temperature), rel=1e-5, abs=1e-6)


def test_nt_xent_of_identical_embeddings_is_log_2n_minus_1():
    # every logit equal: a uniform guess among the 2N - 1 others (the anchor itself excluded)
    z = torch.ones(4, 5)
    assert nt_xent_loss(z, z, 0.1).item() == pytest.approx(math.log(7), rel=1e-6)


def test_nt_xent_symmetric_permutation_and_scale_invariant():
    z1, z2 = torch.randn(6, 10), torch.randn(6, 10)
    loss = nt_xent_loss(z1, z2, 0.2)
    torch.testing.assert_close(nt_xent_loss(z2, z1, 0.2), loss)  # swap the views
    order = torch.randperm(6)
    torch.testing.assert_close(nt_xent_loss(z1[order], z2[order], 0.2), loss)  # reorder images
    scale1, scale2 = torch.rand(6, 1) * 100 + 0.01, torch.rand(6, 1) * 100 + 0.01
    torch.testing.assert_close(nt_xent_loss(z1 * scale1, z2 * scale2, 0.2), loss)  # cosine
    assert not torch.allclose(nt_xent_loss(z1, z2[order], 0.2), loss)  # the pairing matters


def test_nt_xent_gradient_is_finite_with_the_excluded_self_logit():
    z1, z2 = torch.randn(4, 8, requires_grad=True), torch.randn(4, 8, requires_grad=True)
    nt_xent_loss(z1, z2, 0.05).backward()
    assert torch.isfinite(z1.grad).all() and torch.isfinite(z2.grad).all()
    assert z1.grad.abs().sum() > 0


# The three ways a textbook NT-Xent breaks in half precision at T = 0.05.
def _targets(n):
    return torch.cat([torch.arange(n, 2 * n), torch.arange(n)])


def naive_dot_products_first(z1, z2, t):  # cos = z.z' / (|z||z'|) and a -1e9 mask, in fp16
    z = torch.cat([z1, z2])
    norm = z.norm(dim=1)
    logits = (z @ z.T) / (norm[:, None] * norm[None, :]) / t
    logits = logits - 1e9 * torch.eye(len(z), dtype=z.dtype)
    return F.cross_entropy(logits, _targets(len(z1)))


def naive_exp(z1, z2, t):  # the formula with an explicit exp: exp(1 / 0.05) overflows fp16
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    e = torch.exp(z @ z.T / t) * (1 - torch.eye(len(z), dtype=z.dtype))
    positive = torch.cat([torch.diagonal(e, len(z1)), torch.diagonal(e, -len(z1))])
    return -(positive / e.sum(1)).log().mean()


def naive_masked_fill(z1, z2, t):  # masked_fill with -1e9: not representable in fp16
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = (z @ z.T / t).masked_fill(torch.eye(len(z), dtype=torch.bool), -1e9)
    return F.cross_entropy(logits, _targets(len(z1)))


def naive_low_precision(z1, z2, t):  # correct, but computed in bf16 all the way
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = (z @ z.T / t).masked_fill(torch.eye(len(z), dtype=torch.bool), -math.inf)
    return F.cross_entropy(logits, _targets(len(z1)))


def _large_embeddings(n=16):
    """Two views of n images with |z| ~ 1000 (so |z|^2 > 65504) and cosines spread over (0, 1)."""
    g = torch.Generator().manual_seed(1)
    common = torch.randn(1, 64, generator=g)
    z1 = 100 * (torch.randn(n, 64, generator=g) + 1.5 * common)
    z2 = z1 + 100 * torch.randn(n, 64, generator=g)
    return z1, z2


def _fails(naive, z1, z2, want, tol) -> bool:
    try:
        value = naive(z1, z2, 0.05).item()
    except RuntimeError:  # e.g. "value cannot be converted to type c10::Half without overflow"
        return True
    return not math.isfinite(value) or abs(value - want) > tol


@pytest.mark.parametrize(
    "dtype,naive_variants",
    [
        (torch.float16, [naive_dot_products_first, naive_exp, naive_masked_fill]),
        (torch.bfloat16, [naive_low_precision]),
    ],
)
def test_nt_xent_half_precision_at_low_temperature(dtype, naive_variants):
    z1, z2 = (z.to(dtype) for z in _large_embeddings())
    assert torch.isfinite(z1).all() and torch.isfinite(z2).all()
    want = nt_xent_reference(z1, z2, 0.05)  # float64 on the same (rounded) inputs
    assert want > 0.1  # a loss far from 0, where relative errors show
    got = nt_xent_loss(z1, z2, 0.05)
    assert torch.isfinite(got)
    assert got.item() == pytest.approx(want, rel=1e-5)
    # the test discriminates: each naive version is non-finite, raises, or is off by > 100x tol
    for naive in naive_variants:
        assert _fails(naive, z1, z2, want, tol=100 * 1e-5 * want), naive.__name__


def test_nt_xent_under_autocast_keeps_float32_logits():
    z1, z2 = _large_embeddings()
    want = nt_xent_reference(z1, z2, 0.05)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = nt_xent_loss(z1, z2, 0.05)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(want, rel=1e-5)


# -----------------------------------------------------------------------------
# InfoNCE


@pytest.mark.parametrize("queue_size", [0, 1, 7, 64])
@pytest.mark.parametrize("temperature", [0.07, 0.2, 1.0])
def test_info_nce_matches_double_loop(queue_size, temperature):
    q, k = torch.randn(5, 16), torch.randn(5, 16)
    queue = F.normalize(torch.randn(queue_size, 16), dim=1)
    got = info_nce_loss(q, k, queue, temperature)
    want = info_nce_reference(q, k, queue, temperature)
    assert got.item() == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_info_nce_with_empty_queue_is_zero_and_normalises_q_and_k():
    q, k = torch.randn(4, 8), torch.randn(4, 8)
    assert info_nce_loss(q, k, torch.empty(0, 8)).item() == 0.0  # only the positive: p = 1
    queue = F.normalize(torch.randn(10, 8), dim=1)
    torch.testing.assert_close(info_nce_loss(3 * q, 0.1 * k, queue), info_nce_loss(q, k, queue))


def test_info_nce_in_half_precision_at_low_temperature():
    z1, z2 = (z.half() for z in _large_embeddings(n=80))
    q, k, queue = z1[:16], z2[:16], F.normalize(z2[16:].float(), dim=1).half()  # (64, 64)
    want = info_nce_reference(q, k, queue, 0.05)
    assert want > 0.1
    got = info_nce_loss(q, k, queue, 0.05)
    assert torch.isfinite(got)
    assert got.item() == pytest.approx(want, rel=1e-5)


# -----------------------------------------------------------------------------
# negative cosine similarity (BYOL, SimSiam)


def test_negative_cosine_similarity_matches_the_definition_in_float32():
    p, z = torch.randn(6, 9), torch.randn(6, 9)
    want = -sum(_cos(a, b) for a, b in zip(p.tolist(), z.tolist(), strict=True)) / 6
    assert negative_cosine_similarity(p, z).item() == pytest.approx(want, rel=1e-6)
    assert negative_cosine_similarity(p, p).item() == pytest.approx(-1.0)
    # from bf16 inputs the loss is float32, not rounded to bf16's 3 digits
    p16, z16 = p.bfloat16(), z.bfloat16()
    got = negative_cosine_similarity(p16, z16)
    want16 = -sum(_cos(a, b) for a, b in zip(p16.tolist(), z16.tolist(), strict=True)) / 6
    assert got.dtype == torch.float32 and got.item() == pytest.approx(want16, rel=1e-6)


# -----------------------------------------------------------------------------
# bad input


def _raises(fn, *args, match: list[str]) -> None:
    with pytest.raises(ValueError) as error:
        fn(*args)
    for piece in match:
        assert piece in str(error.value), (piece, str(error.value))


z8 = torch.randn(4, 8)


@pytest.mark.parametrize("loss", [nt_xent_loss, negative_cosine_similarity])
def test_pairwise_losses_reject_bad_views(loss):
    _raises(loss, z8, torch.randn(4, 7), match=["(N, D)", "(4, 8)", "(4, 7)"])
    _raises(loss, z8, torch.randn(5, 8), match=["(4, 8)", "(5, 8)"])
    _raises(loss, torch.randn(8), torch.randn(8), match=["(N, D)", "(8,)"])
    _raises(loss, torch.randn(1, 8), torch.randn(1, 8), match=["at least 2", "N=1"])
    bad = z8.clone()
    bad[2, 3] = float("nan")
    _raises(loss, z8, bad, match=["finite", "NaN or inf"])
    bad[2, 3] = float("inf")
    _raises(loss, bad, z8, match=["finite"])


@pytest.mark.parametrize("temperature", [0, -0.5, float("nan"), float("inf"), "0.1"])
def test_contrastive_losses_reject_bad_temperatures(temperature):
    _raises(nt_xent_loss, z8, z8, temperature, match=["temperature > 0", repr(temperature)])
    queue = torch.empty(0, 8)
    _raises(info_nce_loss, z8, z8, queue, temperature, match=["temperature > 0"])


def test_info_nce_rejects_bad_queries_keys_and_queue():
    queue = F.normalize(torch.randn(10, 8), dim=1)
    _raises(info_nce_loss, z8, torch.randn(4, 6), queue, match=["(4, 8)", "(4, 6)"])
    _raises(info_nce_loss, z8[:1], z8[:1], queue, match=["at least 2", "N=1"])
    _raises(info_nce_loss, z8, z8, torch.randn(10, 7), match=["(K, 8)", "(10, 7)"])
    _raises(info_nce_loss, z8, z8, torch.randn(80), match=["(K, 8)", "(80,)"])
    bad = queue.clone()
    bad[0, 0] = float("nan")
    _raises(info_nce_loss, z8, z8, bad, match=["finite queue"])


def test_finiteness_is_checked_on_the_cpu_and_never_read_from_an_accelerator():
    z = torch.randn(4, 8)
    bad = z.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="expected finite"):
        nt_xent_loss(bad, z, 0.5)
    # a meta tensor stands in for an accelerator's: reading its values would raise, so passing
    # the check shows that it does not read them (no host sync per step)
    meta = torch.empty(4, 8, device="meta")
    check_views(meta, meta)
