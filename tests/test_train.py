"""Tests of sslbook.train: exact resume, NaN guard, safe checkpoints, schedule, weight decay."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from sslbook.train import (
    CheckpointError,
    History,
    NonFiniteLossError,
    TrainConfig,
    fit,
    learning_rate_at,
    load_checkpoint,
    parameter_groups,
    save_checkpoint,
)

N, D = 96, 6  # samples and input features of the toy data
TIMING_KEYS = {"images_per_s", "time_s"}  # the only history values that differ between runs


def make_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, D, generator=g)
    y = x @ torch.randn(D, 1, generator=g) + 0.5
    return x, y


def make_model(seed: int = 0, hidden: int = 16) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(D, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, 1)
    )


def noisy_mse(model: nn.Module, batch) -> dict:
    """MSE with a random augmentation (input noise) drawn from the global RNG, like the book's."""
    x, y = batch
    x = x + 0.1 * torch.randn_like(x)
    pred = model(x)
    return {"loss": ((pred - y) ** 2).mean(), "pred_std": pred.std()}


def config(tmp_path: Path | None = None, **changes) -> TrainConfig:
    base = TrainConfig(
        epochs=4,
        batch_size=16,
        lr=1e-2,
        weight_decay=0.05,
        warmup_epochs=1.0,
        log_every=4,
        progress=False,
        checkpoint_dir=tmp_path,
        seed=3,
    )
    return replace(base, **changes)


def without_timing(history: History) -> dict:
    d = history.to_dict()
    return {
        level: [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]
        for level, records in d.items()
    }


def assert_same_parameters(a: nn.Module, b: nn.Module) -> None:
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), f"{name} differs"


def test_resume_after_two_epochs_is_bitwise_exact(tmp_path):
    # constant schedule: changing epochs from 2 to 4 then does not change any step's lr
    cfg = config(tmp_path / "ckpt", schedule="constant")
    reference = make_model()
    ref_history = fit(reference, make_data(), replace(cfg, checkpoint_dir=None), loss_fn=noisy_mse)

    first = make_model()
    fit(first, make_data(), replace(cfg, epochs=2), loss_fn=noisy_mse)
    torch.manual_seed(1234)  # a different global RNG state must not matter
    resumed = make_model(seed=99)  # fresh, differently initialised model and optimizer
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # only epochs changed: no "config changed" warning
        history = fit(resumed, make_data(), cfg, loss_fn=noisy_mse)

    assert_same_parameters(resumed, reference)
    assert without_timing(history) == without_timing(ref_history)
    assert [r["epoch"] for r in history.epochs] == [1, 2, 3, 4]
    assert "pred_std" in history.steps[0] and "pred_std" in history.epochs[0]


def test_each_epoch_is_seeded_from_seed_and_epoch_only():
    # an eval_fn that draws from the global RNG must not change the training that follows
    def random_eval(model):
        return {"noise": torch.rand(7).sum()}

    cfg = config(None, epochs=3)
    plain, evaluated = make_model(), make_model()
    fit(plain, make_data(), cfg, loss_fn=noisy_mse)
    fit(evaluated, make_data(), cfg, eval_fn=random_eval, loss_fn=noisy_mse)
    assert_same_parameters(plain, evaluated)
    other_seed = make_model()
    fit(other_seed, make_data(), replace(cfg, seed=4), loss_fn=noisy_mse)
    assert not torch.equal(other_seed[0].weight, plain[0].weight)


def test_interrupted_run_resumes_bitwise(tmp_path):
    cfg = config(tmp_path, grad_clip=1.0)  # warmup + cosine over 4 epochs, clipping on
    steps_per_epoch = N // cfg.batch_size
    reference = make_model()
    ref_history = fit(reference, make_data(), replace(cfg, checkpoint_dir=None), loss_fn=noisy_mse)

    calls = {"n": 0, "crash": True}

    def crashing_loss(model, batch):
        calls["n"] += 1
        if calls["crash"] and calls["n"] > 2 * steps_per_epoch + 2:  # inside epoch 3
            raise KeyboardInterrupt("simulated crash")
        return noisy_mse(model, batch)

    with pytest.raises(KeyboardInterrupt):
        fit(make_model(), make_data(), cfg, loss_fn=crashing_loss)
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2

    calls["crash"] = False
    resumed = make_model(seed=7)
    history = fit(resumed, make_data(), cfg, loss_fn=crashing_loss)
    assert_same_parameters(resumed, reference)
    assert without_timing(history) == without_timing(ref_history)

    # a finished run is not trained again: its model is loaded and its history returned
    def must_not_run(model, batch):
        raise AssertionError("training ran again")

    finished = make_model(seed=5)
    again = fit(finished, make_data(), cfg, loss_fn=must_not_run)
    assert_same_parameters(finished, reference)
    assert again.to_dict() == history.to_dict()


@pytest.mark.parametrize("log_every", [1, 1000])  # 1000: the only sync is at the epoch's end
def test_nan_guard_keeps_the_last_good_checkpoint(tmp_path, log_every):
    cfg = config(tmp_path, log_every=log_every)
    steps_per_epoch = N // cfg.batch_size
    bad_step = 2 * steps_per_epoch + 3  # the third step of epoch 3
    calls = {"n": 0}
    seen: dict = {}

    def nan_loss(model, batch):
        calls["n"] += 1
        out = noisy_mse(model, batch)
        if calls["n"] >= bad_step:
            if "bytes" not in seen:  # what the epoch-2 checkpoint looked like before the NaN
                seen["bytes"] = (tmp_path / "last.pt").read_bytes()
            out["loss"] = out["loss"] * float("nan")
        return out

    with pytest.raises(NonFiniteLossError) as info:
        fit(make_model(), make_data(), cfg, loss_fn=nan_loss)
    message = str(info.value)
    assert "epoch 3" in message and str(tmp_path / "last.pt") in message
    if log_every == 1:
        assert f"step {bad_step}" in message
    assert isinstance(info.value, FloatingPointError)
    assert (tmp_path / "last.pt").read_bytes() == seen["bytes"]
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["epoch"] == 2 and state["step"] == 2 * steps_per_epoch
    assert all(torch.isfinite(v).all() for v in state["model"].values())


@pytest.mark.parametrize("grad_clip", [None, 1.0])
def test_nan_gradient_with_a_finite_loss_is_caught(tmp_path, grad_clip):
    cfg = config(tmp_path, log_every=1000, grad_clip=grad_clip)
    bad_step = 2 * (N // cfg.batch_size)  # the last step of epoch 2: its loss is still finite
    calls = {"n": 0}

    def nan_gradient(model, batch):
        calls["n"] += 1
        loss = noisy_mse(model, batch)["loss"]
        if calls["n"] == bad_step:  # the classic where/sqrt trap: finite value, NaN gradient
            loss = torch.where(torch.tensor(True), loss, torch.sqrt(-loss))
        return loss

    with pytest.raises(NonFiniteLossError, match="epoch 2") as info:
        fit(make_model(), make_data(), cfg, loss_fn=nan_gradient)
    what = "grad_norm" if grad_clip else "parameters"
    assert what in str(info.value)
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1  # epoch 2 was never saved


def test_nan_guard_without_checkpoints_says_there_is_none():
    def nan_loss(model, batch):
        return noisy_mse(model, batch)["loss"] * float("inf")

    with pytest.raises(NonFiniteLossError, match="no good checkpoint"):
        fit(make_model(), make_data(), config(None, epochs=1), loss_fn=nan_loss)


def test_corrupt_or_foreign_checkpoint_is_refused_and_left_untouched(tmp_path):
    cfg = config(tmp_path, epochs=1)
    fit(make_model(), make_data(), cfg, loss_fn=noisy_mse)
    path = tmp_path / "last.pt"
    good = path.read_bytes()

    # a model with other shapes (hidden=8) must not load the hidden=16 checkpoint
    with pytest.raises(CheckpointError, match="different model") as info:
        fit(make_model(hidden=8), make_data(), replace(cfg, epochs=2), loss_fn=noisy_mse)
    assert "0.weight" in str(info.value)
    assert path.read_bytes() == good

    path.write_bytes(good[: len(good) // 2])  # truncated, as after a crash of a naive writer
    truncated = path.read_bytes()
    with pytest.raises(CheckpointError) as info:
        fit(make_model(), make_data(), replace(cfg, epochs=2), loss_fn=noisy_mse)
    message = str(info.value)
    assert str(path) in message and "delete" in message and "truncated or corrupt" in message
    assert path.read_bytes() == truncated


def test_resume_checks_the_config(tmp_path):
    cfg = config(tmp_path, epochs=1)
    fit(make_model(), make_data(), cfg, loss_fn=noisy_mse)
    with pytest.raises(CheckpointError, match="'adamw' optimizer state"):
        fit(make_model(), make_data(), replace(cfg, epochs=2, optimizer="sgd"), loss_fn=noisy_mse)
    x, y = make_data()
    with pytest.raises(CheckpointError, match="data or batch_size changed"):
        fit(make_model(), (x[:48], y[:48]), replace(cfg, epochs=2), loss_fn=noisy_mse)
    with pytest.warns(UserWarning, match="'lr': \\(0.01, 0.02\\)"):
        fit(make_model(), make_data(), replace(cfg, epochs=2, lr=0.02), loss_fn=noisy_mse)


class Payload:
    """Unpickling this with weights_only=False would run code (it creates a marker file)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path):
    marker = tmp_path / "code-was-run"
    path = tmp_path / "last.pt"
    torch.save({"model": {}, "payload": Payload(str(marker))}, path)
    with pytest.raises(CheckpointError, match="weights_only") as info:
        load_checkpoint(path)
    assert "Unpickling" in type(info.value.__cause__).__name__
    with pytest.raises(CheckpointError):
        fit(make_model(), make_data(), config(tmp_path, epochs=1), loss_fn=noisy_mse)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the payload is real: the unsafe load runs it
    assert marker.exists()


def test_save_checkpoint_is_atomic(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"x": torch.arange(3)})
    before = path.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - whatever pickle raises for a lambda
        save_checkpoint(path, {"x": lambda: 0})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp file left
    assert torch.equal(load_checkpoint(path)["x"], torch.arange(3))


def test_loss_decreases_on_a_learnable_regression():
    x, y = make_data()
    model = nn.Linear(D, 1)
    cfg = TrainConfig(epochs=30, batch_size=16, lr=0.05, log_every=1, progress=False)
    history = fit(model, (x, y), cfg, loss_fn=lambda m, b: ((m(b[0]) - b[1]) ** 2).mean())
    initial, final = history.steps[0]["loss"], history.epochs[-1]["loss"]
    assert final < 0.1 * initial, (initial, final)
    steps, losses = history.series("loss")
    assert steps[0] == 1 and len(steps) == len(losses) == 30 * (N // 16)


def test_lr_schedule_matches_closed_form_and_is_applied():
    cfg = TrainConfig(lr=0.4, warmup_epochs=1.0)
    total, warmup = 100, 10
    assert learning_rate_at(0, total, warmup, cfg) == pytest.approx(0.04)
    assert learning_rate_at(4, total, warmup, cfg) == pytest.approx(0.2)
    assert learning_rate_at(9, total, warmup, cfg) == pytest.approx(0.4)
    assert learning_rate_at(10, total, warmup, cfg) == pytest.approx(0.4)  # cosine starts at lr
    assert learning_rate_at(55, total, warmup, cfg) == pytest.approx(0.2)  # halfway: lr / 2
    assert learning_rate_at(32, total, warmup, cfg) == pytest.approx(
        0.2 * (1 + math.cos(math.pi * 22 / 90))
    )
    assert learning_rate_at(100, total, warmup, cfg) == pytest.approx(0.0, abs=1e-12)
    assert learning_rate_at(50, total, warmup, replace(cfg, schedule="constant")) == 0.4

    # fit sets exactly these values, step by step (history records the lr of each logged step)
    run = config(None, epochs=3, warmup_epochs=0.5, log_every=1)
    history = fit(make_model(), make_data(), run, loss_fn=noisy_mse)
    spe = N // run.batch_size
    steps, lrs = history.series("lr")
    expected = [learning_rate_at(s - 1, 3 * spe, round(0.5 * spe), run) for s in steps]
    assert lrs == pytest.approx(expected, rel=0, abs=0)


def test_weight_decay_skips_biases_and_norm_parameters():
    model = make_model()
    groups = parameter_groups(model, weight_decay=0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = sorted(names[id(p)] for g in groups if g["weight_decay"] > 0 for p in g["params"])
    assert decayed == ["0.weight", "4.weight"]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))

    # behaviour: with a zero gradient, one SGD step shrinks weights by (1 - lr * wd) only
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = TrainConfig(
        epochs=1,
        batch_size=N,
        lr=0.1,
        weight_decay=0.5,
        optimizer="sgd",
        schedule="constant",
        progress=False,
    )
    fit(model, make_data(), cfg, loss_fn=lambda m, b: 0.0 * sum(p.sum() for p in m.parameters()))
    for name, p in model.named_parameters():
        factor = 1 - 0.1 * 0.5 if name in decayed else 1.0
        torch.testing.assert_close(p.detach(), before[name] * factor)


def test_history_helpers_and_json_round_trip():
    calls = []

    def eval_fn(model):
        calls.append(model.training)
        return {"score": torch.tensor(0.5)}

    cfg = config(None, epochs=3, log_every=5)
    history = fit(make_model(), make_data(), cfg, eval_fn=eval_fn, eval_every=2, loss_fn=noisy_mse)
    assert calls == [False, False]  # epochs 2 and 3 (the last), in eval mode
    assert history.series("score", level="epochs") == ([2, 3], [0.5, 0.5])
    assert history.last("score") == 0.5
    assert history.last("loss") == history.epochs[-1]["loss"]
    spe = N // cfg.batch_size  # 6: records at steps 5, 6 (epoch end), 10, 12, 15, 18
    assert history.series("loss")[0] == [5, 6, 10, 12, 15, 18][: len(history.steps)]
    assert History.from_dict(json.loads(json.dumps(history.to_dict()))) == history
    assert len(history.steps) == 6 and history.steps[-1]["step"] == 3 * spe
    with pytest.raises(KeyError):
        history.last("missing")


def test_bad_inputs_raise_value_errors():
    x, y = make_data()
    with pytest.raises(ValueError, match=r"batch_size=200 .* \(96 samples\)"):
        fit(make_model(), (x, y), config(None, batch_size=200), loss_fn=noisy_mse)
    with pytest.raises(ValueError, match="first dimension"):
        fit(make_model(), (x, y[:10]), config(None), loss_fn=noisy_mse)
    with pytest.raises(ValueError, match="scalar"):
        fit(make_model(), (x, y), config(None), loss_fn=lambda m, b: m(b[0]))
    with pytest.raises(ValueError, match=r"\['mfu'\] clash"):
        fit(
            make_model(),
            (x, y),
            config(None),
            loss_fn=lambda m, b: {"loss": m(b[0]).mean(), "mfu": 1.0},
        )


def test_flops_per_sample_adds_achieved_tflops_and_mfu_to_step_records(monkeypatch):
    import sslbook.train as train

    cfg = config(None, epochs=1, log_every=2)
    history = fit(make_model(), make_data(), cfg, flops_per_sample=3e6, loss_fn=noisy_mse)
    assert len(history.steps) == 3
    for record in history.steps:
        assert record["tflops"] == pytest.approx(3e6 * record["images_per_s"] / 1e12)
        assert "mfu" not in record  # no known peak on the CPU
    monkeypatch.setattr(train, "peak_flops", lambda device, dtype: 2e12)  # as on a known GPU
    history = fit(make_model(), make_data(), cfg, flops_per_sample=3e6, loss_fn=noisy_mse)
    for record in history.steps:
        assert record["mfu"] == pytest.approx(record["tflops"] * 1e12 / 2e12)
    plain = fit(make_model(), make_data(), cfg, loss_fn=noisy_mse)
    assert not {"tflops", "mfu"} & plain.steps[0].keys()


def test_sync_batchnorm_changes_nothing_in_a_single_process():
    x, y = make_data()

    def bn_model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(D, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))

    plain, synced = bn_model(), bn_model()
    fit(plain, (x, y), config(None, epochs=2), loss_fn=noisy_mse)
    fit(synced, (x, y), config(None, epochs=2, sync_batchnorm=True), loss_fn=noisy_mse)
    assert type(synced[1]) is nn.BatchNorm1d  # converted only under DDP
    assert_same_parameters(plain, synced)


def test_compile_wraps_the_training_step_and_leaves_the_model_alone(tmp_path, monkeypatch):
    compiled = []

    def fake_compile(fn):  # torch.compile's contract: a callable computing the same thing
        compiled.append(fn)
        return lambda *args: fn(*args)

    monkeypatch.setattr(torch, "compile", fake_compile)
    plain, fast = make_model(), make_model()
    fit(plain, make_data(), config(None, epochs=2), loss_fn=noisy_mse)
    fit(fast, make_data(), config(tmp_path, epochs=2, compile=True), loss_fn=noisy_mse)
    assert len(compiled) == 1
    assert_same_parameters(plain, fast)
    saved = load_checkpoint(tmp_path / "last.pt")["model"]
    assert list(saved) == list(plain.state_dict())  # no wrapper prefix in the checkpoint


def test_fused_optimizer_only_on_cuda():
    from sslbook.train import make_optimizer

    model = make_model()
    for name in ("sgd", "adamw"):
        opt = make_optimizer(model, config(None, optimizer=name))
        assert not opt.defaults.get("fused")  # the CPU keeps the default implementation
    if torch.cuda.is_available():
        opt = make_optimizer(model.cuda(), config(None, optimizer="sgd"))
        assert opt.defaults["fused"]


def test_history_mean_over_the_records_that_have_the_key():
    history = History(steps=[{"step": 1, "v": 1.0}, {"step": 2}, {"step": 3, "v": 4.0}])
    assert history.mean("v") == 2.5
    with pytest.raises(KeyError, match="no epochs record in this history has 'v'"):
        history.mean("v", level="epochs")


@pytest.mark.parametrize(
    ("amp", "expected"), [(None, torch.float32), (False, torch.float32), (True, torch.bfloat16)]
)
def test_amp_on_the_cpu_is_float32_unless_asked_for(amp, expected):
    """On a CPU, fit computes in float32 by default and autocasts to bf16 with amp=True."""
    seen = []

    def loss_fn(model, batch):
        x, y = batch
        pred = model(x)
        seen.append(pred.dtype)
        return ((pred.float() - y) ** 2).mean()

    history = fit(
        make_model(), make_data(), config(amp=amp, epochs=1), device="cpu", loss_fn=loss_fn
    )
    assert set(seen) == {expected}
    assert math.isfinite(history.steps[-1]["loss"])


def test_amp_on_a_cpu_without_bf16_units_warns_that_it_is_slower(monkeypatch):
    import sslbook.device

    monkeypatch.setattr(sslbook.device, "cpu_has_bf16", lambda: False)
    with pytest.warns(UserWarning, match="without bf16 matrix units"):
        fit(make_model(), make_data(), config(amp=True, epochs=1), device="cpu", loss_fn=noisy_mse)
    monkeypatch.setattr(sslbook.device, "cpu_has_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit(make_model(), make_data(), config(amp=True, epochs=1), device="cpu", loss_fn=noisy_mse)


class _Regression(nn.Module):
    """A model whose forward is its own loss, as the book's methods are; counts its steps."""

    def __init__(self):
        super().__init__()
        self.net = make_model()
        self.after_steps: list[torch.Tensor] = []  # the weights seen by each after_step call

    def forward(self, x, y):
        return ((self.net(x) - y) ** 2).mean()

    def after_step(self):
        self.after_steps.append(self.net[0].weight.detach().clone())


def test_the_default_loss_is_the_models_forward_on_the_batch():
    cfg = config(None, epochs=2)
    model = _Regression()
    history = fit(model, make_data(), cfg)
    reference = make_model()
    with torch.random.fork_rng():
        ref_history = fit(
            reference, make_data(), cfg, loss_fn=lambda m, b: ((m(b[0]) - b[1]) ** 2).mean()
        )
    assert_same_parameters(model.net, reference)
    assert history.series("loss") == ref_history.series("loss")


def test_after_step_runs_once_per_step_after_the_optimizer_step():
    cfg = config(None, epochs=2)
    model = _Regression()
    seen_by_loss: list[torch.Tensor] = []

    def loss_fn(m, batch):
        seen_by_loss.append(m.net[0].weight.detach().clone())  # the weights before the update
        return m(*batch)

    fit(model, make_data(), cfg, loss_fn=loss_fn)
    steps = 2 * (N // cfg.batch_size)
    assert len(model.after_steps) == len(seen_by_loss) == steps
    # after_step k sees the weights of forward k + 1: the update of step k has happened
    for after, before_next in zip(model.after_steps[:-1], seen_by_loss[1:], strict=True):
        assert torch.equal(after, before_next)
    assert not torch.equal(model.after_steps[0], seen_by_loss[0])
    explicit = _Regression()
    calls = []
    fit(explicit, make_data(), cfg, after_step=lambda: calls.append(1))
    assert len(calls) == steps and explicit.after_steps == []  # an explicit hook replaces it


def test_fit_leaves_the_callers_random_state_as_it_was():
    model, data = make_model(), make_data()  # make_model seeds: before the test's own seed
    torch.manual_seed(123)
    expected = torch.rand(5)
    torch.manual_seed(123)
    fit(model, data, config(None, epochs=1), loss_fn=noisy_mse)
    assert torch.equal(torch.rand(5), expected)
