import urllib.error

import numpy as np
import pytest
import torch

import sslbook.data as data
from sslbook.data import CIFAR10_CLASSES, DataUnavailableError, cifar10


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
