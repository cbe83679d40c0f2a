import math

import pytest
import torch

from sslbook.evaluate import (
    alignment,
    effective_rank,
    embedding_std,
    knn_accuracy,
    knn_predict,
    label_efficiency,
    label_subset,
    linear_probe,
    uniformity,
)


def knn_reference(train_x, train_y, test_x, k, temperature, num_classes):
    """Brute force in float64, one test point at a time."""
    train_x, test_x = train_x.double(), test_x.double()
    scores = torch.zeros(len(test_x), num_classes, dtype=torch.float64)
    for i, q in enumerate(test_x):
        sims = [
            (float(q @ x / (q.norm() * x.norm())), int(y))
            for x, y in zip(train_x, train_y, strict=True)
        ]
        sims.sort(key=lambda s: -s[0])
        for sim, y in sims[:k]:
            scores[i, y] += math.exp(sim / temperature)
    return scores


@pytest.mark.parametrize("k,temperature", [(1, 0.1), (7, 0.1), (20, 0.5), (200, 0.07)])
def test_knn_matches_brute_force(k, temperature):
    train_x, test_x = torch.randn(120, 16), torch.randn(30, 16)
    train_y = torch.randint(0, 5, (120,))
    got = knn_predict(train_x, train_y, test_x, k, temperature, num_classes=5, chunk_size=7)
    want = knn_reference(train_x, train_y, test_x, min(k, 120), temperature, 5)
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-6)
    test_y = want.argmax(1)
    assert knn_accuracy(train_x, train_y, test_x, test_y, k, temperature) == 1.0


def test_knn_accuracy_on_separable_clusters():
    centers = torch.randn(4, 8) * 5
    train_y, test_y = torch.arange(4).repeat(50), torch.arange(4).repeat(10)
    train_x = centers[train_y] + 0.1 * torch.randn(200, 8)
    test_x = centers[test_y] + 0.1 * torch.randn(40, 8)
    assert knn_accuracy(train_x, train_y, test_x, test_y, k=10) == 1.0
    # Shuffled labels: chance level, far from perfect.
    perm = train_y[torch.randperm(200)]
    assert knn_accuracy(train_x, perm, test_x, test_y, k=10) < 0.6


def test_knn_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"expected features \(N, D\).*got"):
        knn_accuracy(torch.randn(10, 4), torch.zeros(10).long(), torch.randn(5, 3), torch.zeros(5))


def test_linear_probe_learns_a_linear_rule_and_not_noise():
    x = torch.randn(600, 20)
    w = torch.randn(20, 3)
    y = (x @ w).argmax(1)
    acc = linear_probe(x[:500], y[:500], x[500:], y[500:], epochs=60, lr=0.05)
    assert acc > 0.9
    noise = linear_probe(x[:500], y[torch.randperm(600)][:500], x[500:], y[500:], epochs=60)
    assert noise < 0.6


def test_alignment_uniformity_and_collapse_indicators():
    z = torch.randn(256, 32)
    assert alignment(z, z).item() == pytest.approx(0.0, abs=1e-6)
    assert alignment(z, -z).item() == pytest.approx(4.0, rel=1e-5)  # ||2u||^2 for unit u
    collapsed = torch.ones(256, 32) + 1e-4 * torch.randn(256, 32)
    assert uniformity(z) < uniformity(collapsed)
    assert uniformity(collapsed).item() == pytest.approx(0.0, abs=1e-3)
    # Spread embeddings: std ~ 1/sqrt(D); a single point: ~0.
    assert embedding_std(z).item() == pytest.approx(1 / math.sqrt(32), rel=0.1)
    assert embedding_std(collapsed).item() < 1e-3
    assert effective_rank(z).item() > 25
    low_rank = torch.randn(256, 2) @ torch.randn(2, 32)
    assert effective_rank(low_rank).item() < 2.5


def test_nearest_neighbours_match_a_full_sort():
    from sslbook.evaluate import nearest_neighbours

    query, bank = torch.randn(6, 8), torch.randn(50, 8)
    got = nearest_neighbours(query, bank, k=5)
    cos = torch.nn.functional.cosine_similarity(query[:, None], bank[None], dim=2)
    assert torch.equal(got, cos.argsort(dim=1, descending=True)[:, :5])
    with pytest.raises(ValueError, match=r"expected features \(M, D\) and \(N, D\)"):
        nearest_neighbours(query, torch.randn(5, 3))


def test_label_subset_is_class_balanced_seeded_and_at_least_one_per_class():
    labels = torch.cat([torch.full((300,), 0), torch.full((100,), 1), torch.full((5,), 2)])
    idx = label_subset(labels, 0.1, seed=3)
    counts = torch.bincount(labels[idx], minlength=3).tolist()
    assert counts == [30, 10, 1]  # round(0.1 * 5) = 0 becomes 1: no class vanishes
    assert len(set(idx.tolist())) == len(idx)
    assert torch.equal(idx, label_subset(labels, 0.1, seed=3))
    assert not torch.equal(idx, label_subset(labels, 0.1, seed=4))
    assert len(label_subset(labels, 1.0)) == len(labels)
    with pytest.raises(ValueError, match=r"label fraction in \(0, 1\], got 0"):
        label_subset(labels, 0)


def test_label_efficiency_probes_only_the_labelled_subset():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(4, 8, generator=g) * 4
    train_y, test_y = torch.arange(4).repeat(250), torch.arange(4).repeat(50)
    train_x = centers[train_y] + torch.randn(1000, 8, generator=g)
    test_x = centers[test_y] + torch.randn(200, 8, generator=g)
    scores = label_efficiency(train_x, train_y, test_x, test_y, fractions=(0.01, 1.0), epochs=30)
    assert set(scores) == {"0.01", "1.0"}
    idx = label_subset(train_y, 0.01)
    assert len(idx) == 8  # 0.01 x 250 = 2.5 rounds (to even) to 2 per class
    assert scores["0.01"] == linear_probe(train_x[idx], train_y[idx], test_x, test_y, epochs=30)
    assert scores["1.0"] == linear_probe(train_x, train_y, test_x, test_y, epochs=30)
    assert scores["0.01"] > 0.9  # a few labels suffice when the features separate the classes
