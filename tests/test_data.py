import urllib.error

import numpy as np
import pytest
import torch

import sslbook.data as data
from sslbook.data import CIFAR10_CLASSES, DataUnavailableError, balanced_subset, cifar10


def write_shards(root, n=40):
    rng = np.random.default_rng(0)
    (root / "cifar10").mkdir(parents=True)
    shards = []
    for i in range(2):
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        labels = np.arange(n) % 10
        np.savez(
            root / "cifar10" / f"cifar10-train-{i}.npz",
            images=images,
            labels=labels,
            classes=np.array(CIFAR10_CLASSES),
        )
        shards.append((images, labels))
    return shards


def test_offline_shards_load_as_uint8_nchw(tmp_path, monkeypatch):
    shards = write_shards(tmp_path)
    monkeypatch.setenv("SSLBOOK_DATA", str(tmp_path))
    train, test = cifar10("train"), cifar10("test")
    assert train.images.dtype == torch.uint8 and train.images.shape == (40, 3, 32, 32)
    # (N, H, W, C) -> (N, C, H, W) without mixing pixels up.
    assert train.images[3, 2, 5, 7] == shards[0][0][3, 5, 7, 2]
    assert torch.equal(test.labels, torch.from_numpy(shards[1][1]))
    assert "held-out" in test.source and train.classes == CIFAR10_CLASSES


def test_subset_is_class_balanced_and_deterministic(tmp_path, monkeypatch):
    write_shards(tmp_path)
    monkeypatch.setenv("SSLBOOK_DATA", str(tmp_path))
    train = cifar10("train")
    sub = train.subset(20)
    assert torch.bincount(sub.labels, minlength=10).tolist() == [2] * 10
    assert torch.equal(sub.images, train.subset(20).images)
    assert train.subset(None) is train


def round_robin_reference(labels, n, seed):
    """The first n of a round robin over the classes, walking one seeded shuffle of all indices."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed)).tolist()
    seen, ranked = {}, []
    for position, i in enumerate(order):
        c = int(labels[i])
        ranked.append((seen.get(c, 0), position, i))  # (rank within its class, shuffle position)
        seen[c] = seen.get(c, 0) + 1
    return [i for _, _, i in sorted(ranked)][:n]


def fraction_reference(labels, fraction, seed):
    """Per class, in class order, a seeded permutation of its members; keep its first part."""
    g, keep = torch.Generator().manual_seed(seed), []
    for c in sorted(set(labels.tolist())):
        members = [i for i, y in enumerate(labels.tolist()) if y == c]
        perm = torch.randperm(len(members), generator=g).tolist()
        keep += [members[j] for j in perm[: max(1, round(fraction * len(members)))]]
    return sorted(keep)


@pytest.mark.parametrize("n,seed", [(1, 0), (7, 0), (30, 3), (64, 5)])
def test_balanced_subset_of_size_n_is_a_seeded_round_robin(n, seed):
    labels = torch.cat([torch.full((40,), 0), torch.full((25,), 1), torch.full((3,), 2)])
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(9))]
    idx = balanced_subset(labels, n, seed=seed)
    assert idx.tolist() == round_robin_reference(labels, n, seed)
    sizes = torch.bincount(labels, minlength=3)
    for k in range(1, n + 1):  # in every prefix, classes with images left differ by at most one
        counts = torch.bincount(labels[idx[:k]], minlength=3)
        left = counts < sizes
        assert counts[left].max() - counts[left].min() <= 1
    assert torch.equal(idx, balanced_subset(labels, n, seed=seed))
    if n > 1:
        assert not torch.equal(idx, balanced_subset(labels, n, seed=seed + 1))


def test_balanced_subset_by_fraction_keeps_a_seeded_part_of_every_class():
    labels = torch.cat([torch.full((300,), 0), torch.full((100,), 1), torch.full((5,), 2)])
    idx = balanced_subset(labels, fraction=0.1, seed=3)
    assert torch.bincount(labels[idx], minlength=3).tolist() == [30, 10, 1]  # 0.5 -> 0 -> 1
    assert idx.tolist() == fraction_reference(labels, 0.1, seed=3)
    assert torch.equal(idx, balanced_subset(labels, fraction=0.1, seed=3))
    assert not torch.equal(idx, balanced_subset(labels, fraction=0.1, seed=4))
    assert len(balanced_subset(labels, fraction=1.0)) == len(labels)


def test_balanced_subset_rejects_bad_sizes():
    labels = torch.arange(10) % 2
    with pytest.raises(ValueError, match=r"label fraction in \(0, 1\], got 0"):
        balanced_subset(labels, fraction=0)
    with pytest.raises(ValueError, match="positive subset size, got 0"):
        balanced_subset(labels, 0)
    with pytest.raises(ValueError, match="exactly one of n and fraction"):
        balanced_subset(labels, 3, fraction=0.5)
    with pytest.raises(ValueError, match="exactly one of n and fraction"):
        balanced_subset(labels)
    with pytest.raises(ValueError, match=r"labels of shape \(N,\), got \(2, 5\)"):
        balanced_subset(labels.view(2, 5), 3)


def test_missing_data_names_both_remedies(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLBOOK_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("SSLBOOK_CACHE", str(tmp_path / "cache"))

    class Offline:
        def __init__(self, *args, **kwargs):
            raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr("torchvision.datasets.CIFAR10", Offline)
    with pytest.raises(DataUnavailableError) as err:
        cifar10("train")
    message = str(err.value)
    assert "SSLBOOK_DATA" in message and "cifar10-train-0.npz" in message
    assert "download" in message and str(tmp_path / "cache") in message
    assert "network is unreachable" in message


def test_unknown_split_is_rejected():
    with pytest.raises(ValueError, match="expected split 'train' or 'test', got 'val'"):
        cifar10("val")


def test_text_corpus_offline_then_error(tmp_path, monkeypatch):
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "tinyshakespeare.txt").write_text("First Citizen:\nBefore we proceed")
    monkeypatch.setenv("SSLBOOK_DATA", str(tmp_path))
    assert data.tiny_shakespeare().startswith("First Citizen")
    monkeypatch.setenv("SSLBOOK_DATA", str(tmp_path / "none"))
    monkeypatch.setenv("SSLBOOK_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataUnavailableError, match="SSLBOOK_DATA"):
        data.tiny_shakespeare(download=False)
