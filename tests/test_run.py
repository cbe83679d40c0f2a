import json

import pytest

import sslbook.run as run
from sslbook.provenance import git_commit


def fake_splits(train_size: int, test_size: int):
    """A ``load_splits`` stand-in: random images with balanced labels, no dataset needed."""
    import torch

    from sslbook.data import ImageData

    g = torch.Generator().manual_seed(0)

    def load(cfg, device=None):
        make = lambda n: ImageData(  # noqa: E731
            torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
            torch.arange(n) % 10,
            tuple("abcdefghij"),
            "random images",
        )
        return make(train_size), make(test_size)

    return load


def test_run_writes_the_result_with_its_provenance(tmp_path, monkeypatch):
    calls = []

    def fake_experiment(cfg, device, checkpoint_dir, seed=0):
        calls.append((cfg.name, str(checkpoint_dir)))
        return {"rows": [{"representation": "x", "knn": 0.5}]}

    monkeypatch.setitem(run.EXPERIMENTS, "fake", fake_experiment)
    assert run.main(["fake", "--profile", "smoke", "--out", str(tmp_path), "--device", "cpu"]) == 0
    result = json.loads((tmp_path / "fake-smoke.json").read_text())
    assert calls == [("smoke", str(run.REPO_ROOT / "checkpoints" / "fake-smoke"))]
    assert result["rows"] == [{"representation": "x", "knn": 0.5}]
    assert result["profile"] == "smoke" and "smoke scale" in result["scale_note"]
    prov = result["provenance"]
    assert prov["command"] == "python -m sslbook.run fake --profile smoke"
    assert prov["commit"] == git_commit()
    assert prov["wall_time_s"] >= 0 and prov["hardware"]["device"] == "cpu"
    assert {"python", "torch", "torchvision", "sslbook"} <= prov["versions"].keys()
    assert result["settings"]["train_size"] == 4000


def test_a_run_continued_from_a_checkpoint_says_so(tmp_path, monkeypatch):
    # its wall time covers only what this process trained, so the file must say it resumed
    monkeypatch.setitem(run.EXPERIMENTS, "fake", lambda cfg, device, checkpoint_dir, seed=0: {})
    folder = tmp_path / "ckpt"
    args = ["fake", "--profile", "smoke", "--out", str(tmp_path), "--device", "cpu"]
    assert run.main([*args, "--checkpoint-dir", str(folder)]) == 0
    fresh = json.loads((tmp_path / "fake-smoke.json").read_text())["provenance"]
    assert "resumed_from_checkpoint" not in fresh
    (folder / "inner").mkdir(parents=True)
    (folder / "inner" / "last.pt").write_bytes(b"x")
    assert run.main([*args, "--checkpoint-dir", str(folder)]) == 0
    again = json.loads((tmp_path / "fake-smoke.json").read_text())["provenance"]
    assert again["resumed_from_checkpoint"] is True


def test_all_runs_every_experiment_in_turn(tmp_path, monkeypatch):
    calls = []
    fake = {
        name: (
            lambda cfg, device, checkpoint_dir, seed, name=name: calls.append(name) or {"x": name}
        )
        for name in ("one", "two")
    }
    monkeypatch.setattr(run, "EXPERIMENTS", fake)
    assert run.main(["all", "--profile", "smoke", "--out", str(tmp_path), "--device", "cpu"]) == 0
    assert calls == ["one", "two"]
    for name in calls:
        result = json.loads((tmp_path / f"{name}-smoke.json").read_text())
        assert result["x"] == name
        assert result["provenance"]["command"] == f"python -m sslbook.run {name} --profile smoke"
    with pytest.raises(SystemExit):
        run.main(["all", "--checkpoint-dir", str(tmp_path)])


def test_unknown_experiment_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown experiment 'nope': expected one of"):
        run.run_experiment("nope", "smoke", tmp_path)


def test_simclr_ablations_train_each_variant_and_report_the_protocol(monkeypatch, tmp_path):
    from sslbook.experiments import ablations
    from sslbook.profiles import profile

    monkeypatch.setattr(ablations, "load_splits", fake_splits(128, 64))
    cfg = profile("smoke").with_(width=8, batch_size=64, epochs=2, probe_epochs=2, knn_k=10)
    variants = {k: ablations.VARIANTS[k] for k in ("T=0.05", "crop only, T=0.5")}
    result = ablations.run(cfg, "cpu", tmp_path, variants=variants)
    assert result["epochs_per_variant"] == 1
    assert [r["variant"] for r in result["rows"]] == list(variants)
    assert [r["temperature"] for r in result["rows"]] == [0.05, 0.5]
    augmentations = [r["augmentation"] for r in result["rows"]]
    assert augmentations == ["full SimCLR recipe", "crop and flip only"]
    for row in result["rows"]:
        assert 0.0 <= row["knn"] <= 1.0 and 0.0 <= row["linear"] <= 1.0
        assert row["knn_curve"]["epoch"] == [1] and len(row["knn_curve"]["knn"]) == 1
    # each variant checkpoints in its own folder, so an interrupted run resumes per variant
    assert sorted(p.name for p in tmp_path.iterdir()) == ["T=0.05", "crop-only-T=0.5"]
    # the crop-only recipe really has no colour distortion
    crop = ablations.VARIANTS["crop only, T=0.5"]["augment"]
    assert crop.jitter_p == crop.grayscale_p == 0.0
    assert ablations.ablation_epochs(profile("cpu")) == profile("cpu").epochs // 2


def test_batch_size_trains_simclr_and_moco_at_the_small_batch_only(monkeypatch, tmp_path):
    from sslbook.experiments import ablations
    from sslbook.profiles import profile

    monkeypatch.setattr(ablations, "load_splits", fake_splits(128, 64))
    cfg = profile("smoke").with_(width=8, batch_size=64, epochs=2, probe_epochs=2, knn_k=10)
    result = ablations.run_batch_size(cfg, "cpu", tmp_path, batch_size=16)
    assert result["epochs"] == 2 and result["reference"]["batch_size"] == 64
    simclr, moco = result["rows"]
    assert (simclr["method"], moco["method"]) == ("simclr", "moco")
    # SimCLR's negatives shrink with the batch; MoCo's are its queue's length
    assert (simclr["negatives"], moco["negatives"]) == (2 * 16 - 2, 4096)
    for row in result["rows"]:
        assert row["batch_size"] == 16 and row["steps"] == 2 * (128 // 16)
        assert row["lr"] == pytest.approx(0.06 * 16 / 256)  # scaled linearly, as at batch 64
        assert 0.0 <= row["knn"] <= 1.0 and 0.0 <= row["linear"] <= 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["moco", "simclr"]
    with pytest.raises(ValueError, match="below the profile's 64, got 64"):
        ablations.run_batch_size(cfg, "cpu", batch_size=64)


def test_few_labels_trains_on_the_labelled_subset_for_the_full_step_budget(monkeypatch, tmp_path):
    from sslbook.experiments import baselines
    from sslbook.profiles import profile

    monkeypatch.setattr(baselines, "load_splits", fake_splits(200, 40))
    cfg = profile("smoke").with_(
        width=8, batch_size=50, supervised_epochs=2, probe_epochs=2, knn_k=10
    )
    result = baselines.run_few_labels(cfg, "cpu", tmp_path, fractions=(0.1, 0.5))
    assert result["fractions"] == ["0.1", "0.5", "1.0"]
    names = [r["representation"] for r in result["rows"]]
    assert names[0] == "raw pixels" and names[1].startswith("random-init")
    assert set(result["rows"][0]) == {"representation", "0.1", "0.5", "1.0"}
    assert set(result["rows"][2]) == {"representation", "0.1", "0.5"}
    full_steps = 2 * (200 // 50)
    runs = result["supervised_runs"]
    assert [r["labelled_images"] for r in runs] == [20, 100]  # 2 and 10 per class
    # 20 images: one step per epoch at batch 20; 100 images: two steps per epoch at batch 50
    assert [(r["epochs"], r["steps"]) for r in runs] == [(full_steps, full_steps), (4, full_steps)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels0.1", "labels0.5"]


def test_git_commit_is_dirty_for_code_changes_but_not_for_rewritten_results(tmp_path):
    import subprocess

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "x-cpu.json").write_text("{}")
    (tmp_path / "code.py").write_text("a = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    clean = git_commit(tmp_path)
    assert clean is not None and not clean.endswith("-dirty")
    (tmp_path / "results" / "x-cpu.json").write_text('{"new": 1}')  # a run rewrote its output
    assert git_commit(tmp_path) == clean
    (tmp_path / "code.py").write_text("a = 2\n")
    assert git_commit(tmp_path) == clean + "-dirty"


def test_amp_runs_in_mixed_precision_and_writes_its_own_file(tmp_path, monkeypatch):
    seen = []

    def fake_experiment(cfg, device, checkpoint_dir, seed=0):
        seen.append((cfg.amp, str(checkpoint_dir)))
        return {"rows": []}

    monkeypatch.setitem(run.EXPERIMENTS, "fake", fake_experiment)
    args = ["fake", "--profile", "smoke", "--out", str(tmp_path), "--device", "cpu"]
    assert run.main(args + ["--amp"]) == 0 and run.main(args) == 0
    assert seen == [
        (True, str(run.REPO_ROOT / "checkpoints" / "fake-smoke-amp")),
        (None, str(run.REPO_ROOT / "checkpoints" / "fake-smoke")),
    ]
    result = json.loads((tmp_path / "fake-smoke-amp.json").read_text())
    assert result["provenance"]["command"] == "python -m sslbook.run fake --profile smoke --amp"
    assert result["settings"]["amp"] is True
    assert json.loads((tmp_path / "fake-smoke.json").read_text())["settings"]["amp"] is None


def test_provenance_writes_paths_under_the_working_directory_relative_to_it(tmp_path, monkeypatch):
    import sys

    from sslbook.provenance import provenance

    monkeypatch.chdir(tmp_path)
    script, elsewhere = tmp_path / "bench" / "augment.py", "/somewhere/else.json"
    monkeypatch.setattr(sys, "argv", [str(script), "--out", elsewhere, "--steps", "3"])
    command = provenance()["command"]
    assert command.split()[1:] == ["bench/augment.py", "--out", elsewhere, "--steps", "3"]


def test_seeds_write_one_file_each_and_only_seed_zero_saves_the_models(tmp_path, monkeypatch):
    import torch

    from sslbook.weights import sha256

    seen = []

    def fake_experiment(cfg, device, checkpoint_dir, seed):
        seen.append((seed, str(checkpoint_dir)))
        torch.manual_seed(seed)
        model = torch.nn.Linear(3, 2)
        return {"score": seed / 10, "models": {"tiny": {"model": model, "width": 3}}}

    monkeypatch.setitem(run.EXPERIMENTS, "fake", fake_experiment)
    out, weights = tmp_path / "results", tmp_path / "weights"
    args = ["fake", "--profile", "smoke", "--out", str(out), "--device", "cpu", "--seeds", "0", "2"]
    assert run.main(args + ["--weights-dir", str(weights)]) == 0
    assert seen == [
        (0, str(run.REPO_ROOT / "checkpoints" / "fake-smoke")),
        (2, str(run.REPO_ROOT / "checkpoints" / "fake-smoke-seed2")),
    ]
    first = json.loads((out / "fake-smoke.json").read_text())
    second = json.loads((out / "fake-smoke-seed2.json").read_text())
    assert (first["seed"], first["score"], second["seed"], second["score"]) == (0, 0.0, 2, 0.2)
    assert second["provenance"]["command"] == "python -m sslbook.run fake --profile smoke --seed 2"
    assert "weights" not in second and "models" not in first and "models" not in second
    record = first["weights"]["tiny"]
    assert record["file"] == "tiny-smoke.pt" and record["width"] == 3
    assert sorted(p.name for p in weights.iterdir()) == ["tiny-smoke.pt"]
    assert record["sha256"] == sha256(weights / "tiny-smoke.pt")
    assert record["bytes"] == (weights / "tiny-smoke.pt").stat().st_size
    with pytest.raises(SystemExit):
        run.main(["fake", "--seed", "1", "--seeds", "1", "2"])
