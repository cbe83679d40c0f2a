"""Self-supervised objectives as pure functions of tensors.

Each loss validates its inputs and raises ``ValueError`` naming the expected and the actual
shape or value, so that a wrong call fails at the call, not three layers deeper. Whether values
are finite is checked for CPU tensors only: on an accelerator the check would read the values on
the host and so wait for every queued kernel at every step; there :func:`sslbook.train.fit`
catches a non-finite loss at its next log instead.

The contrastive losses compute their cosine-similarity logits in float32 even under autocast:
at a temperature of 0.05 a logit reaches 1 / 0.05 = 20, and exp(20) ~ 5e8 overflows fp16
(max 65504), while bf16 keeps only about 3 significant digits of each logit.

[0] SimCLR, Chen et al. 2020, arXiv:2002.05709
[1] MoCo, He et al. 2020, arXiv:1911.05722
[2] SimSiam, Chen & He 2021, arXiv:2011.10566
[3] Barlow Twins, Zbontar et al. 2021, arXiv:2103.03230
[4] VICReg, Bardes, Ponce & LeCun 2022, arXiv:2105.04906
[5] DINO, Caron et al. 2021, arXiv:2104.14294
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

from .distributed import gather_with_grad, rank

__all__ = [
    "barlow_twins_loss",
    "check_temperature",
    "check_views",
    "covariance_loss",
    "cross_correlation",
    "dino_loss",
    "info_nce_loss",
    "invariance_loss",
    "negative_cosine_similarity",
    "nt_xent_loss",
    "variance_loss",
    "vicreg_loss",
]


def _nonfinite(*tensors: torch.Tensor) -> bool:
    """True if a CPU tensor holds NaN or inf (tensors on an accelerator are not read, see above)."""
    return any(t.device.type == "cpu" and not torch.isfinite(t).all() for t in tensors)


def check_views(a: torch.Tensor, b: torch.Tensor, name: str = "views") -> None:
    """Raise ``ValueError`` unless ``a``, ``b`` are (N, D) batches of one shape, N >= 2, finite
    (checked on the CPU only, see the module doc)."""
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(
            f"expected two {name} of equal shape (N, D), got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.shape[0] < 2:
        raise ValueError(f"expected a batch of at least 2 {name}, got N={a.shape[0]}")
    if _nonfinite(a, b):
        raise ValueError(f"expected finite {name}, got NaN or inf")


def check_temperature(temperature: float) -> None:
    """Raise ``ValueError`` unless ``temperature`` is a finite number > 0."""
    number = isinstance(temperature, numbers.Real) and not isinstance(temperature, bool)
    if not (number and 0 < temperature < math.inf):
        raise ValueError(f"expected a finite temperature > 0, got {temperature!r}")


def negative_cosine_similarity(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """-cos(p_i, z_i), averaged over the batch: -1 when every pair points the same way.

    The objective of BYOL and SimSiam ([2], Eq. 1). On its own, with gradients through both
    arguments, it has a trivial minimum: map every image to the same vector.

    Computed in float32, also from fp16/bf16 inputs: a bf16 loss near -1 moves in steps of 0.004.

    Shape:
        p, z: (N, D), any float dtype; return: scalar, float32
    """
    check_views(p, z, "embeddings")
    return -F.cosine_similarity(p.float(), z.float(), dim=1).mean()


def nt_xent_loss(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5, gather: bool = False
) -> torch.Tensor:
    """SimCLR's normalized temperature-scaled cross-entropy ([0], Eq. 1), mean over 2N anchors.

    The 2N views ``cat(z1, z2)`` are the anchors. Anchor i's positive is its partner view of the
    same image; the other 2N - 2 views are its negatives. Its loss is a (2N - 1)-way
    classification: ``-log(exp(s_ij / T) / sum_{k != i} exp(s_ik / T))`` with s the cosine
    similarity. The anchor itself (s_ii = 1) is removed with a -inf logit, never a large finite
    constant, which would overflow fp16.

    Args:
        z1, z2: projections of the two views; row i of each comes from image i.
        temperature: T; 0.5 is SimCLR's choice for CIFAR-10 ([0], App. B.9).
        gather: in a multi-process run, compare this rank's anchors with the views of every
            rank (:func:`sslbook.distributed.gather_with_grad`), so the negatives are those of
            the global batch, as in [0]; the identity in a single process.

    Shape:
        z1, z2: (N, D), any float dtype; return: scalar, float32
    """
    check_views(z1, z2, "embeddings")
    check_temperature(temperature)
    n = z1.shape[0]
    with torch.autocast(z1.device.type, enabled=False):  # float32 logits, see the module doc
        z1, z2 = F.normalize(z1.float(), dim=1), F.normalize(z2.float(), dim=1)  # unit sphere
        anchors = torch.cat([z1, z2])  # (2N, D), this process's views
        offset = 0
        if gather:
            z1, z2 = gather_with_grad(z1), gather_with_grad(z2)  # (M, D), M = N x processes
            offset = rank() * n  # this process's rows among the M
        m = z1.shape[0]
        logits = anchors @ torch.cat([z1, z2]).T / temperature  # (2N, 2M), s_ik / T
        own = torch.arange(n, device=z1.device) + offset  # the anchors' rows among the M
        itself = torch.cat([own, own + m])  # (2N,) column of each anchor itself
        logits = logits.masked_fill(F.one_hot(itself, 2 * m).bool(), -math.inf)  # k != i
        partner = torch.cat([own + m, own])  # (2N,) column of each anchor's partner view
        return F.cross_entropy(logits, partner)


def info_nce_loss(
    q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float = 0.2
) -> torch.Tensor:
    """MoCo's InfoNCE ([1], Eq. 1 and Algorithm 1): one positive key against a queue of negatives.

    Query i's positive is key i (both L2-normalised here); its negatives are the K entries of
    the queue, keys of earlier batches. The loss is a (K + 1)-way cross-entropy with the
    positive at index 0. An empty queue (K = 0) gives a loss of exactly 0.

    Args:
        q: queries from the query encoder.
        k: keys from the key encoder, one per query (their gradient is normally stopped).
        queue: negative keys, already L2-normalised (the caller keeps it so; not checked).
        temperature: tau; 0.2 in MoCo v2 (Chen et al. 2020, arXiv:2003.04297).

    Shape:
        q, k: (N, D), queue: (K, D); return: scalar, float32
    """
    check_views(q, k, "queries and keys")
    check_temperature(temperature)
    if queue.ndim != 2 or queue.shape[1] != q.shape[1]:
        raise ValueError(f"expected a queue of shape (K, {q.shape[1]}), got {tuple(queue.shape)}")
    if _nonfinite(queue):
        raise ValueError("expected a finite queue, got NaN or inf")
    with torch.autocast(q.device.type, enabled=False):  # float32 logits, see the module doc
        q, k = F.normalize(q.float(), dim=1), F.normalize(k.float(), dim=1)  # (N, D)
        l_pos = (q * k).sum(dim=1, keepdim=True)  # (N, 1), q_i . k_i
        l_neg = q @ queue.float().T  # (N, K), q_i . queue_j
        logits = torch.cat([l_pos, l_neg], dim=1) / temperature  # (N, 1 + K)
        labels = torch.zeros(len(q), dtype=torch.long, device=q.device)  # the positive is 0
        return F.cross_entropy(logits, labels)


# -----------------------------------------------------------------------------
# redundancy reduction: Barlow Twins and VICReg, no negatives and no asymmetry


def cross_correlation(z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Barlow Twins' cross-correlation matrix of two views' embeddings ([3], Eq. 2).

    C_ij = sum_b a_bi b_bj / (sqrt(sum_b a_bi^2) sqrt(sum_b b_bj^2)), with a, b the embeddings
    centred over the batch: the Pearson correlation, over the batch, between dimension i of the
    first view and dimension j of the second, in [-1, 1]. A dimension that is constant over the
    batch (std < ``eps``) correlates with nothing: its std is clamped, so its entries are 0, not
    NaN.

    Computed in float32, also from fp16/bf16 inputs (the squares of Barlow Twins' loss need it).

    Shape:
        z1, z2: (N, D), any float dtype; return: (D, D), float32
    """
    check_views(z1, z2, "embeddings")
    with torch.autocast(z1.device.type, enabled=False):
        z1, z2 = z1.float(), z2.float()
        a = (z1 - z1.mean(0)) / z1.std(0, unbiased=False).clamp_min(eps)  # (N, D), standardised
        b = (z2 - z2.mean(0)) / z2.std(0, unbiased=False).clamp_min(eps)
        return a.T @ b / len(a)  # (D, D)


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 5e-3) -> torch.Tensor:
    """Barlow Twins ([3], Eq. 1): drive the views' cross-correlation matrix to the identity.

        L = sum_i (1 - C_ii)^2 + lambda sum_i sum_{j != i} C_ij^2

    The first sum (invariance) makes each dimension agree between the views; the second
    (redundancy reduction) decorrelates different dimensions, so that no two carry the same
    information. A constant output has no correlation at all, C = 0, and costs D: there is no
    collapsed minimum to fall into.

    Args:
        z1, z2: projections of the two views; row i of each comes from image i.
        lambd: lambda, the weight of the off-diagonal terms; 5e-3 in [3], §4 (there are D - 1
            off-diagonal entries per diagonal one, so lambda ~ 1 / D balances the two sums).

    Shape:
        z1, z2: (N, D), any float dtype; return: scalar, float32
    """
    if not lambd >= 0:
        raise ValueError(f"expected lambd >= 0, got {lambd}")
    c = cross_correlation(z1, z2)  # (D, D)
    on_diag = (1 - c.diagonal()).pow(2).sum()
    off_diag = c.pow(2).sum() - c.diagonal().pow(2).sum()
    return on_diag + lambd * off_diag


def invariance_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """VICReg's invariance term s(Z, Z') ([4], Eq. 5): the mean squared distance of the views.

    The mean over all N x D entries, as the paper's Algorithm 1 (``F.mse_loss``); Eq. 5 sums over
    the D dimensions instead, which would only rescale its coefficient by D.

    Shape:
        z1, z2: (N, D), any float dtype; return: scalar, float32
    """
    check_views(z1, z2, "embeddings")
    return F.mse_loss(z1.float(), z2.float())


def variance_loss(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """VICReg's variance term v(Z) ([4], Eq. 1): a hinge on the std of every dimension.

        v(Z) = 1/D sum_j max(0, gamma - sqrt(Var(z^j) + eps))

    Zero once every dimension's std over the batch reaches gamma; it stops a collapse to a point.
    The std (not the variance) keeps a gradient when the variance is near 0 ([4], §3.1).

    Shape:
        z: (N, D), any float dtype; return: scalar, float32
    """
    check_views(z, z, "embeddings")
    std = torch.sqrt(z.float().var(dim=0) + eps)  # (D,), the unbiased variance as in [4]
    return F.relu(gamma - std).mean()


def covariance_loss(z: torch.Tensor) -> torch.Tensor:
    """VICReg's covariance term c(Z) ([4], Eq. 3): the squared off-diagonal covariances / D.

    Pushes different dimensions to be uncorrelated; it stops a collapse to a few directions
    (dimensional collapse).

    Shape:
        z: (N, D), any float dtype; return: scalar, float32
    """
    check_views(z, z, "embeddings")
    n, d = z.shape
    z = z.float() - z.float().mean(0)
    cov = z.T @ z / (n - 1)  # (D, D), C(Z) of [4], Eq. 2
    return (cov.pow(2).sum() - cov.diagonal().pow(2).sum()) / d


def vicreg_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    sim_coeff: float = 25.0,
    std_coeff: float = 25.0,
    cov_coeff: float = 1.0,
    gamma: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """VICReg ([4], Eq. 6): lambda s(Z, Z') + mu [v(Z) + v(Z')] + nu [c(Z) + c(Z')].

    Args:
        z1, z2: the two views' embeddings (the "expander" outputs of [4]); row i of each from
            image i.
        sim_coeff, std_coeff, cov_coeff: lambda, mu, nu; 25, 25, 1 in [4], §4.1.
        gamma: the target std of every dimension; 1 in [4].

    Returns:
        ``(loss, terms)``: the weighted sum, and the three unweighted terms under
        ``"invariance"``, ``"variance"`` and ``"covariance"`` (each summed over both views).

    Shape:
        z1, z2: (N, D), any float dtype; loss and terms: scalars, float32
    """
    check_views(z1, z2, "embeddings")
    for name, value in (
        ("sim_coeff", sim_coeff),
        ("std_coeff", std_coeff),
        ("cov_coeff", cov_coeff),
    ):
        if not value >= 0:
            raise ValueError(f"expected {name} >= 0, got {value}")
    if not gamma > 0:
        raise ValueError(f"expected gamma > 0, got {gamma}")
    with torch.autocast(z1.device.type, enabled=False):  # squares of covariances: float32
        terms = {
            "invariance": invariance_loss(z1, z2),
            "variance": variance_loss(z1, gamma) + variance_loss(z2, gamma),
            "covariance": covariance_loss(z1) + covariance_loss(z2),
        }
    loss = (
        sim_coeff * terms["invariance"]
        + std_coeff * terms["variance"]
        + cov_coeff * terms["covariance"]
    )
    return loss, terms


# -----------------------------------------------------------------------------
# self-distillation: DINO


def dino_loss(
    student_out: list[torch.Tensor],
    teacher_out: list[torch.Tensor],
    centre: torch.Tensor,
    student_temp: float = 0.1,
    teacher_temp: float = 0.04,
) -> torch.Tensor:
    """DINO ([5], Eq. 3): the student's cross-entropy to the teacher on pairs of different views.

    The teacher's output is centred and sharpened, P_t = softmax((t - c) / teacher_temp), and
    is a constant (no gradient); the student's is P_s = softmax(s / student_temp). The loss is
    H(P_t, P_s) = -sum_k P_t log P_s, averaged over the batch and over every pair of a teacher
    view and a student view of the same image, except a view with itself.

    Args:
        student_out: the student's outputs for every view, the teacher's views first and in the
            same order: ``student_out[i]`` and ``teacher_out[i]`` are the same view.
        teacher_out: the teacher's outputs for its views (in [5], the 2 global crops).
        centre: c, the running mean of the teacher's outputs.
        student_temp: tau_s; 0.1 in [5].
        teacher_temp: tau_t; below tau_s, which sharpens the teacher ([5] uses 0.04 to 0.07).

    Shape:
        student_out: V_s x (N, K), teacher_out: V_t x (N, K) with 1 <= V_t <= V_s, V_s >= 2;
        centre: (K,); return: scalar, float32
    """
    if not 1 <= len(teacher_out) <= len(student_out) or len(student_out) < 2:
        raise ValueError(
            "expected 1 <= teacher views <= student views and >= 2 student views, got "
            f"{len(teacher_out)} teacher and {len(student_out)} student views"
        )
    for out in [*student_out, *teacher_out]:
        check_views(teacher_out[0], out, "outputs")
    if centre.shape != teacher_out[0].shape[1:]:
        expected = tuple(teacher_out[0].shape[1:])
        raise ValueError(f"expected a centre of shape {expected}, got {tuple(centre.shape)}")
    check_temperature(student_temp)
    check_temperature(teacher_temp)
    # float32: dividing by tau_t = 0.04 would amplify bf16's rounding 25 times
    with torch.autocast(centre.device.type, enabled=False):
        targets = [
            F.softmax((t.float() - centre) / teacher_temp, dim=1).detach() for t in teacher_out
        ]
        log_probs = [F.log_softmax(s.float() / student_temp, dim=1) for s in student_out]
        total, pairs = 0.0, 0
        for i, p_t in enumerate(targets):
            for j, log_p_s in enumerate(log_probs):
                if i == j:
                    continue  # the same view: nothing to predict
                total = total + (-(p_t * log_p_s).sum(dim=1)).mean()
                pairs += 1
        return total / pairs
