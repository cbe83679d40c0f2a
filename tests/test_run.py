import json

import pytest

import sslbook.run as run
from sslbook.provenance import git_commit


def test_run_writes_the_result_with_its_provenance(tmp_path, monkeypatch):
    calls = []

    def fake_experiment(cfg, device, checkpoint_dir):
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


def test_unknown_experiment_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown experiment 'nope': expected one of"):
        run.run_experiment("nope", "smoke", tmp_path)
