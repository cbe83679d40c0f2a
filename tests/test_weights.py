"""Reference weights: saved in float16 with their sha256, loaded only when they are the ones
the result file records, and otherwise a clear error that names the command to rerun."""

import urllib.error

import pytest
import torch

import sslbook
import sslbook.weights as weights
from sslbook.experiments.pretrain import build_method
from sslbook.profiles import profile
from sslbook.weights import WeightsError, pretrained, save_weights, sha256

COMMAND = "python -m sslbook.run simclr --profile smoke"


@pytest.fixture
def saved(tmp_path, monkeypatch):
    """SimCLR at smoke size with non-trivial weights, saved, and a result file recording them."""
    torch.manual_seed(0)
    model = build_method("simclr", profile("smoke"))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    record = save_weights(model, tmp_path / "simclr-smoke.pt")
    result = {"weights": {"simclr": record}}
    monkeypatch.setattr(
        weights, "load_result", lambda name, prof: result if name == "simclr" else None
    )
    return model, record, tmp_path


def test_saved_weights_load_into_a_fresh_model_equal_up_to_float16(saved):
    model, record, folder = saved
    assert record["dtype"] == "float16" and record["file"] == "simclr-smoke.pt"
    assert record["sha256"] == sha256(folder / "simclr-smoke.pt")
    loaded = pretrained("simclr", "smoke", weights_dir=folder)
    assert not loaded.training
    want, got = model.state_dict(), loaded.state_dict()
    assert want.keys() == got.keys()
    for key, value in want.items():
        assert got[key].dtype == value.dtype  # float32 in memory again
        if value.is_floating_point():
            torch.testing.assert_close(got[key], value.half().float(), rtol=0, atol=0)
        else:
            assert torch.equal(got[key], value)
    # float16 storage: about half the bytes of the float32 state
    full = sum(v.numel() * v.element_size() for v in want.values())
    assert record["bytes"] < 0.6 * full


def test_an_altered_file_is_refused_with_the_command_that_regenerates_it(saved):
    _, _, folder = saved
    path = folder / "simclr-smoke.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="not the file the result records") as err:
        pretrained("simclr", "smoke", weights_dir=folder)
    assert COMMAND in str(err.value)


def test_a_truncated_file_is_refused(saved):
    _, record, folder = saved
    path = folder / "simclr-smoke.pt"
    path.write_bytes(path.read_bytes()[: record["bytes"] // 2])
    with pytest.raises(WeightsError, match=rf"{record['bytes'] // 2} bytes against") as err:
        pretrained("simclr", "smoke", weights_dir=folder)
    assert COMMAND in str(err.value)


def test_a_missing_file_names_the_command(saved):
    _, _, folder = saved
    (folder / "simclr-smoke.pt").unlink()
    with pytest.raises(WeightsError, match="missing weights file") as err:
        pretrained("simclr", "smoke", weights_dir=folder)
    assert COMMAND in str(err.value)


def test_no_recorded_weights_and_unknown_names(saved):
    _, _, folder = saved
    with pytest.raises(WeightsError, match="python -m sslbook.run mae --profile smoke"):
        pretrained("mae", "smoke", weights_dir=folder)
    with pytest.raises(ValueError, match="unknown model 'simclr2': expected one of simclr"):
        pretrained("simclr2")


def test_weights_of_another_architecture_are_refused(saved, monkeypatch):
    _, _, folder = saved
    # the same file read as the MoCo model: other parameter names, so it cannot be loaded
    record = weights.load_result("simclr", "smoke")["weights"]["simclr"]
    monkeypatch.setattr(weights, "load_result", lambda name, prof: {"weights": {"moco": record}})
    with pytest.raises(WeightsError, match="does not fit the moco model"):
        pretrained("moco", "smoke", weights_dir=folder)


def test_without_a_local_copy_it_downloads_and_offline_it_says_so(saved, monkeypatch, tmp_path):
    _, record, folder = saved
    monkeypatch.setenv("SSLBOOK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path / "nowhere")
    urls = []

    def offline(url, dst, **kwargs):
        urls.append(url)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsError, match="offline, train the model instead") as err:
        pretrained("simclr", "smoke")
    assert COMMAND in str(err.value)
    assert urls == [f"{sslbook.results.raw_url('weights/simclr-smoke.pt')}"]

    def from_the_release(url, dst, **kwargs):
        urls.append(url)
        (folder / "simclr-smoke.pt").replace(dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", from_the_release)
    assert not pretrained("simclr", "smoke").training  # downloaded, checked, loaded
    assert (tmp_path / "cache" / "simclr-smoke.pt").is_file()
    assert weights._url(record, "full").startswith(f"{sslbook.results.REPOSITORY_URL}/releases/")


# The committed reference weights: each reference model the chapters draw figures from scores,
# measured again, what its result file records (the kNN accuracy on the held-out images, or
# the masked-token accuracy on the validation masks), so the loaded weights are the trained ones.
@pytest.mark.parametrize("name", ["simclr", "mlm-transformer"])  # the rest: in their chapters
def test_reference_weights_score_what_their_result_file_records(name):
    metric, recorded = weights.recorded_score(name)
    model = pretrained(name)
    assert weights.rescore(name, model) == pytest.approx(recorded, abs=0.005), metric
    assert f"{recorded:.3f}" in weights.describe(name)


def test_every_weights_file_is_recorded_by_a_result_file_and_the_folder_is_small():
    recorded = set()
    for experiment in {experiment for experiment, _ in weights.MODELS.values()}:
        result = sslbook.results.load_result(experiment, "cpu")
        recorded |= {r["file"] for r in (result or {}).get("weights", {}).values()}
    on_disk = {p.name for p in weights.WEIGHTS_DIR.glob("*.pt")}
    assert on_disk == recorded  # no stray file, none missing
    assert sum(p.stat().st_size for p in weights.WEIGHTS_DIR.glob("*.pt")) <= 40 * 2**20
