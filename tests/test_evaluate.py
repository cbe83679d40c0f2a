import math

import pytest
import torch

from sslbook.collapse import effective_rank, embedding_std
from sslbook.evaluate import (
    alignment,
    knn_accuracy,
    knn_predict,
    label_efficiency,
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
    assert knn_accuracy(train_x, train_y, test_x, test_y, k=k, temperature=temperature) == 1.0


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


def clusters(n_per_class: int, spread: float, seed: int):
    """Four classes, each a Gaussian blob around its own axis direction (scaled by 10).

    Every feature is informative: the probe standardises its inputs, which would blow pure
    noise dimensions up to the size of the informative ones.
    """
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(4).repeat(n_per_class)
    x = 10 * torch.eye(4)[y] + spread * torch.randn(len(y), 4, generator=g)
    return x, y


def test_label_efficiency_is_perfect_at_every_fraction_on_separable_features():
    train_x, train_y = clusters(250, spread=0.5, seed=0)
    test_x, test_y = clusters(50, spread=0.5, seed=1)
    fractions = (0.01, 0.1, 1.0)  # 2, 25 and 250 labels per class
    scores = label_efficiency(train_x, train_y, test_x, test_y, fractions=fractions, epochs=30)
    assert scores == {"0.01": 1.0, "0.1": 1.0, "1.0": 1.0}


def test_label_efficiency_is_near_chance_on_features_independent_of_the_labels():
    g = torch.Generator().manual_seed(0)
    train_x, test_x = torch.randn(1000, 8, generator=g), torch.randn(2000, 8, generator=g)
    train_y, test_y = torch.arange(4).repeat(250), torch.randint(0, 4, (2000,), generator=g)
    scores = label_efficiency(train_x, train_y, test_x, test_y, fractions=(0.1, 1.0), epochs=30)
    for fraction, accuracy in scores.items():
        # chance is 1/4; 2000 test points put 4 standard deviations at about 0.04
        assert abs(accuracy - 0.25) < 0.05, (fraction, accuracy)


def test_label_efficiency_gives_the_probe_class_balanced_counts_of_training_rows(monkeypatch):
    import sslbook.evaluate as evaluate

    labels = torch.cat([torch.full((300,), 0), torch.full((100,), 1), torch.full((40,), 2)])
    train_x = torch.arange(len(labels), dtype=torch.float32)[:, None].repeat(1, 3)  # row ids
    test_x, test_y = torch.zeros(5, 3), torch.zeros(5, dtype=torch.long)
    seen = []

    def spy(x, y, tx, ty, **kwargs):
        seen.append((x.clone(), y.clone(), tx, ty))
        return 0.5

    monkeypatch.setattr(evaluate, "linear_probe", spy)
    scores = label_efficiency(train_x, labels, test_x, test_y, fractions=(0.1, 0.5, 1.0))
    assert scores == {"0.1": 0.5, "0.5": 0.5, "1.0": 0.5}
    want_counts = {0.1: [30, 10, 4], 0.5: [150, 50, 20], 1.0: [300, 100, 40]}
    for (x, y, tx, ty), (fraction, counts) in zip(seen, want_counts.items(), strict=True):
        assert torch.bincount(y, minlength=3).tolist() == counts, fraction
        rows = x[:, 0].long()
        assert len(set(rows.tolist())) == len(rows)  # distinct training examples
        assert torch.equal(labels[rows], y)  # each with its own label
        assert tx is test_x and ty is test_y  # always scored on the whole test set


def test_validation_probe_fits_on_nine_tenths_of_the_training_shard_and_scores_the_rest(
    monkeypatch,
):
    from sslbook.data import ImageData
    from sslbook.experiments import common
    from sslbook.profiles import profile

    labels = torch.arange(200) % 4
    train = ImageData(torch.zeros(200, 3, 2, 2, dtype=torch.uint8), labels, tuple("abcd"), "x")
    test = ImageData(torch.zeros(40, 3, 2, 2, dtype=torch.uint8), torch.arange(40) % 4, (), "x")
    rest, val = common.validation_split(train)
    assert torch.bincount(labels[val]).tolist() == [5, 5, 5, 5]  # a class-balanced tenth
    assert sorted(rest.tolist() + val.tolist()) == list(range(200))  # disjoint, together all
    train_x = torch.arange(200.0)[:, None]  # each feature is the row's own index
    seen = []

    def spy(x, y, tx, ty, **kwargs):
        seen.append((x[:, 0].long().tolist(), tx[:, 0].long().tolist()))
        return 0.5

    monkeypatch.setattr(common, "linear_probe", spy)
    monkeypatch.setattr(common, "label_efficiency", lambda *a, **k: {})
    cfg = profile("smoke")
    scores = common.protocol(cfg, train, test, train_x, torch.zeros(40, 1), validation=True)
    assert scores["val_linear"] == 0.5
    fitted, scored = seen[-1]
    assert fitted == rest.tolist() and scored == val.tolist()
    assert "val_linear" not in common.protocol(cfg, train, test, train_x, torch.zeros(40, 1))


def test_reference_choice_names_the_seed_zero_run_it_needs(monkeypatch):
    from sslbook.experiments import common
    from sslbook.profiles import profile

    monkeypatch.setattr(common, "load_result", lambda name, prof: None)
    with pytest.raises(ValueError, match="python -m sslbook.run mae --profile smoke"):
        common.reference_choice("mae", profile("smoke"), "mask_ratio")
    monkeypatch.setattr(common, "load_result", lambda name, prof: {"selected": {"mask_ratio": 0.9}})
    assert common.reference_choice("mae", profile("smoke"), "mask_ratio") == 0.9
