"""The comparison table is assembled from result files exactly as documented."""

import json

import pytest

from sslbook.compare import batch_size_rows, comparison, hardware_name, knn_vs_time, over_seeds


def write(folder, experiment, **fields):
    payload = {
        "experiment": experiment,
        "profile": "cpu",
        "settings": {
            "train_size": 1000,
            "epochs": 4,
            "supervised_epochs": 6,
            "backbone": "small_cnn",
            "width": 8,
        },
        "provenance": {
            "command": f"python -m sslbook.run {experiment} --profile cpu",
            "hardware": {"device": "cpu", "cpu_count": 2, "torch_threads": 2},
        },
    } | fields
    (folder / f"{experiment}-cpu.json").write_text(json.dumps(payload))


def scores(knn, linear, few=None):
    return {"knn": knn, "linear": linear} | (
        {"label_fractions": {"0.01": few[0], "0.1": few[1], "1.0": linear}} if few else {}
    )


@pytest.fixture
def results(tmp_path):
    write(
        tmp_path,
        "baselines",
        rows=[
            {"representation": "raw pixels"} | scores(0.2, 0.3),
            {"representation": "random-init small_cnn"} | scores(0.3, 0.4),
            {"representation": "supervised small_cnn"} | scores(0.7, 0.8, (0.6, 0.75)),
        ],
        supervised_history={
            "steps": [{"step": 1, "images_per_s": 100.0}, {"step": 2, "images_per_s": 300.0}],
            "epochs": [],
        },
    )
    write(
        tmp_path,
        "few_labels",
        rows=[
            {"representation": "raw pixels", "0.01": 0.11, "0.1": 0.2, "1.0": 0.3},
            {"representation": "random init", "0.01": 0.12, "0.1": 0.3, "1.0": 0.4},
            {"representation": "supervised", "0.01": 0.13, "0.1": 0.5},
        ],
    )
    write(
        tmp_path,
        "autoencoder",
        rows=[
            {"model": "random init", "bottleneck": 128} | scores(0.25, 0.35),
            {"model": "autoencoder", "bottleneck": 64, "images_per_s": 60.0} | scores(0.3, 0.43),
            {"model": "autoencoder", "bottleneck": 128, "images_per_s": 50.0} | scores(0.3, 0.41),
        ],
        selected={"bottleneck": 128},
    )
    write(
        tmp_path,
        "denoising",
        bottleneck=128,
        selected={"noise_std": 0.1},
        rows=[
            {"noise_std": 0.0, "images_per_s": 50.0} | scores(0.3, 0.41, (0.1, 0.2)),
            {"noise_std": 0.1, "images_per_s": 50.0} | scores(0.31, 0.45, (0.1, 0.2)),
            {"noise_std": 0.2, "images_per_s": 50.0} | scores(0.32, 0.44, (0.1, 0.2)),
        ],
    )
    write(
        tmp_path,
        "mae",
        encoder="vit_mini, 4x4 patches",
        rows=[
            {"model": "random init"} | scores(0.2, 0.35),
            {"model": "MAE", "mask_ratio": 0.75, "images_per_s": 80.0} | scores(0.3, 0.42),
            {"model": "MAE", "mask_ratio": 0.9, "images_per_s": 90.0} | scores(0.3, 0.44),
        ],
        selected={"mask_ratio": 0.75},  # chosen on validation, not the best held-out score
    )
    write(
        tmp_path,
        "simclr",
        images_per_s=250.0,
        flops_per_image=3e8,
        metrics=scores(0.5, 0.6, (0.3, 0.45)),
        history={
            "steps": [
                {"epoch": 1, "images_per_s": 200.0},
                {"epoch": 1, "images_per_s": 300.0},
                {"epoch": 2, "images_per_s": 100.0},
            ],
            "epochs": [{"epoch": 1, "knn": 0.4}, {"epoch": 2, "knn": 0.5}],
        },
    )
    return tmp_path


def test_rows_follow_the_files(results):
    rows = {r["method"]: r for r in comparison("cpu", results)}
    assert list(rows) == [
        "raw pixels",
        "random init",
        "supervised",
        "autoencoder",
        "denoising autoencoder",
        "MAE",
        "SimCLR",
    ]  # no file for the others
    mae = rows["MAE"]
    assert (
        mae["linear"] == 0.42
        and mae["setting"] == "75% of patches masked (chosen on validation among 2)"
    )
    assert mae["backbone"] == "vit_mini" and mae["images_per_s"] == 80.0
    sup = rows["supervised"]
    assert sup["images_per_s"] == 200.0  # mean of the logged windows
    assert sup["train_minutes"] == pytest.approx(6 * 1000 / 200.0 / 60)
    # few_labels (trained on the labelled part only) over the baselines file's probes of the
    # network trained on all labels; 100 % from the baselines file
    assert sup["labels"] == {"0.01": 0.13, "0.1": 0.5, "1.0": 0.8}
    assert rows["raw pixels"]["train_minutes"] == 0.0 and rows["raw pixels"]["epochs"] == 0
    ae = rows["autoencoder"]
    assert ae["linear"] == 0.41 and ae["setting"] == "128-d code (chosen on validation among 2)"
    dae = rows["denoising autoencoder"]
    assert (
        dae["linear"] == 0.45 and dae["setting"] == "noise std 0.1 (chosen on validation among 3)"
    )
    assert all(r["seeds"] == 1 and r["linear_std"] == 0.0 for r in rows.values())
    simclr = rows["SimCLR"]
    assert simclr["train_minutes"] == pytest.approx(4 * 1000 / 250.0 / 60)
    assert simclr["labels"] == {"0.01": 0.3, "0.1": 0.45, "1.0": 0.6}
    assert simclr["command"] == "python -m sslbook.run simclr --profile cpu"
    assert simclr["file"] == "results/simclr-cpu.json" and simclr["hardware"] == "2 CPU threads"
    assert simclr["flops_per_image"] == 3e8 and sup["flops_per_image"] is None


def test_seed_files_give_mean_and_sample_std(results):
    for seed, (knn, linear) in ((1, (0.6, 0.7)), (2, (0.4, 0.5))):
        payload = json.loads((results / "simclr-cpu.json").read_text())
        payload["metrics"] = scores(knn, linear)
        (results / f"simclr-cpu-seed{seed}.json").write_text(json.dumps(payload))
    # seeds other than 0 train only the setting seed 0 chose
    payload = json.loads((results / "mae-cpu.json").read_text())
    payload["rows"] = [{"model": "MAE", "mask_ratio": 0.75} | scores(0.2, 0.48)]
    (results / "mae-cpu-seed1.json").write_text(json.dumps(payload))
    payload = json.loads((results / "denoising-cpu.json").read_text())
    payload["rows"] = [{"noise_std": 0.1} | scores(0.29, 0.43)]
    (results / "denoising-cpu-seed1.json").write_text(json.dumps(payload))
    rows = {r["method"]: r for r in comparison("cpu", results)}
    simclr = rows["SimCLR"]
    assert simclr["seeds"] == 3
    assert simclr["knn"] == pytest.approx(0.5) and simclr["knn_std"] == pytest.approx(0.1)
    assert simclr["linear"] == pytest.approx(0.6) and simclr["linear_std"] == pytest.approx(0.1)
    mae = rows["MAE"]
    assert mae["seeds"] == 2 and mae["linear"] == pytest.approx(0.45)
    assert mae["linear_std"] == pytest.approx(0.06 / 2**0.5)
    assert rows["raw pixels"]["seeds"] == 1  # one baselines file
    dae = rows["denoising autoencoder"]  # seed 0's chosen noise level, 0.1, in both files
    assert dae["seeds"] == 2 and dae["linear"] == pytest.approx(0.44)


def test_every_baselines_row_reads_the_seed_files(results):
    payload = json.loads((results / "baselines-cpu.json").read_text())
    raw, rand, sup = payload["rows"]
    payload["rows"] = [raw, rand | scores(rand["knn"] + 0.02, rand["linear"]), sup]
    (results / "baselines-cpu-seed1.json").write_text(json.dumps(payload))
    rows = {r["method"]: r for r in comparison("cpu", results)}
    # raw pixels: the same features and probe in both files, so a spread of exactly zero
    assert rows["raw pixels"]["seeds"] == 2 and rows["raw pixels"]["knn_std"] == 0.0
    assert rows["random init"]["seeds"] == 2
    assert rows["random init"]["knn"] == pytest.approx(rand["knn"] + 0.01)
    assert rows["random init"]["knn_std"] == pytest.approx(0.02 / 2**0.5)


def test_batch_size_rows_pair_the_study_with_the_reference_runs(results):
    def small(seed, simclr_knn):
        rows = [
            {"method": "simclr", "batch_size": 32, "negatives": 62, "lr": 0.0075, "steps": 16}
            | scores(simclr_knn, 0.6),
            {"method": "moco", "batch_size": 32, "negatives": 4096, "lr": 0.0075, "steps": 16}
            | scores(0.45, 0.55),
        ]
        payload = {"experiment": "batch_size", "profile": "cpu", "rows": rows}
        payload["reference"] = {"batch_size": 256, "experiments": ["simclr", "moco"]}
        name = "batch_size-cpu" + (f"-seed{seed}" if seed else "")
        (results / f"{name}.json").write_text(json.dumps(payload))

    write(results, "simclr", metrics=scores(0.45, 0.55), history={"steps": [{"step": 3}]})
    small(0, 0.5)
    assert batch_size_rows("cpu", results) == []  # no moco reference run yet
    small(1, 0.7)
    write(results, "moco", metrics=scores(0.4, 0.5), history={"steps": [{"step": 2}]})
    rows = {(r["method"], r["batch_size"]): r for r in batch_size_rows("cpu", results)}
    assert list(rows) == [("simclr", 32), ("simclr", 256), ("moco", 32), ("moco", 256)]
    assert rows["simclr", 32]["seeds"] == 2 and rows["simclr", 32]["knn"] == pytest.approx(0.6)
    assert rows["simclr", 256]["negatives"] == 510 and rows["moco", 256]["negatives"] == 4096
    assert rows["simclr", 256]["lr"] == pytest.approx(0.06) and rows["simclr", 256]["steps"] == 3
    assert rows["moco", 256]["seeds"] == 1 and rows["moco", 256]["knn"] == 0.4


def test_over_seeds_averages_any_score_it_is_asked_for(results):
    for seed, accuracy in ((0, 0.2), (1, 0.4)):
        payload = {"rows": [{"encoder": "x", "val_accuracy": accuracy}]}
        name = "mlm-cpu" + (f"-seed{seed}" if seed else "")
        (results / f"{name}.json").write_text(json.dumps(payload))
    spread = over_seeds("mlm", "cpu", results, lambda r: r["rows"][0], keys=("val_accuracy",))
    assert spread == {
        "seeds": 2,
        "val_accuracy": pytest.approx(0.3),
        "val_accuracy_std": pytest.approx(0.2 / 2**0.5),
    }


def test_an_older_file_without_a_recorded_choice_says_how_its_row_was_picked(results):
    payload = json.loads((results / "mae-cpu.json").read_text())
    del payload["selected"]
    (results / "mae-cpu.json").write_text(json.dumps(payload))
    mae = {r["method"]: r for r in comparison("cpu", results)}["MAE"]
    assert mae["linear"] == 0.44  # the best held-out probe, and the row says so
    assert mae["setting"].startswith("90% of patches masked (best on the held-out images among 2")


def test_knn_against_training_time(results):
    result = json.loads((results / "simclr-cpu.json").read_text())
    minutes, knn = knn_vs_time(result)
    assert knn == [0.4, 0.5]
    # the run's mean throughput (250 images/s): the curve ends at the table's training time
    assert minutes == pytest.approx([1000 / 250 / 60, 2 * 1000 / 250 / 60])


def test_hardware_names_a_gpu():
    gpu = {"provenance": {"hardware": {"device": "cuda", "gpu": "NVIDIA H100", "gpu_count": 2}}}
    assert hardware_name(gpu) == "2 x NVIDIA H100"


def test_missing_files_give_no_rows(tmp_path):
    assert comparison("cpu", tmp_path) == []


def test_load_result_and_load_bench_read_local_files_only_when_given_a_folder(tmp_path):
    from sslbook.results import load_bench, load_result

    (tmp_path / "x-cpu.json").write_text('{"a": 1}')
    (tmp_path / "fast_path.json").write_text('{"b": 2}')
    assert load_result("x", "cpu", tmp_path) == {"a": 1}
    assert load_bench("fast_path", tmp_path) == {"b": 2}
    (tmp_path / "cuda").mkdir()
    (tmp_path / "cuda" / "fast_path.json").write_text('{"c": 3}')
    assert load_bench("fast_path", tmp_path, device="cuda") == {"c": 3}
    assert load_result("y", "cpu", tmp_path) is None and load_bench("nope", tmp_path) is None


def test_a_difference_is_real_only_beyond_the_spread():
    from sslbook.compare import beyond_spread, score_text

    a = {"knn": 0.60, "knn_std": 0.02, "seeds": 3}
    b = {"knn": 0.55, "knn_std": 0.02, "seeds": 3}
    assert beyond_spread(a, b)  # 0.05 > 0.02 + 0.02
    assert not beyond_spread(a, b | {"knn_std": 0.04})  # 0.05 < 0.02 + 0.04
    assert not beyond_spread(b, a)
    assert score_text(a) == "0.600 ± 0.020"
    assert score_text({"knn": 0.6, "knn_std": 0.0, "seeds": 1}) == "0.600"  # no spread known


def test_parts_pick_the_families_and_unknown_parts_are_refused(results):
    rows = comparison("cpu", results, parts=("two_view",))
    assert [r["method"] for r in rows] == ["SimCLR"]
    with pytest.raises(ValueError, match="unknown parts \\['views'\\]: expected some of baselines"):
        comparison("cpu", results, parts=("views",))
