"""The chapter time estimates: their arithmetic, and the colab profile's 15-minute budget."""

import json

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sslbook import budget
from sslbook.profiles import profile
from sslbook.provenance import REPO_ROOT

BOOK = REPO_ROOT / "book"


def _times():
    times = budget.load_times()
    if times is None:
        pytest.skip("results/chapter_times.json is missing (python -m sslbook.budget)")
    return times


def test_every_chapter_fits_a_free_colab_session_at_the_colab_profile():
    times = _times()["chapters"]
    assert set(times) == set(budget.CHAPTERS)
    for chapter, rows in times.items():
        assert rows["colab"]["minutes"] <= 15, (chapter, rows["colab"])
        # and the papers' recipe is what takes hours: it is the opt-in one
        assert rows["full"]["minutes"] > rows["colab"]["minutes"], chapter


def test_the_times_file_matches_what_the_code_estimates_now():
    # one chapter recomputed: the file was written by the current code and settings
    stored = _times()["chapters"]["contrastive"]
    fresh = budget.estimate_all(["contrastive"])["contrastive"]
    for name in stored:
        assert fresh[name]["minutes"] == pytest.approx(stored[name]["minutes"], rel=1e-6), name


def test_cpu_estimate_is_close_to_the_measured_reference_run():
    # the SimCLR chapter at the cpu profile trains what `sslbook.run simclr --profile cpu` trains
    from sslbook.results import load_result

    result = load_result("simclr", "cpu")
    if result is None:
        pytest.skip("results/simclr-cpu.json is missing")
    estimate = budget.chapter_minutes("contrastive", profile("cpu"), budget.cpu_device())
    measured = result["provenance"]["wall_time_s"] / 60
    assert 0.5 < estimate / measured < 2, (estimate, measured)


def test_lstm_flops_match_an_unrolled_lstm_counted_by_torch():
    # FlopCounterMode does not see nn.LSTM; the formula must equal the matmuls of the gates
    torch.manual_seed(0)
    lstm = nn.LSTM(8, 16, batch_first=True, bidirectional=True)
    batch, steps = 3, 5
    x = torch.randn(batch, steps, 8)

    def unrolled(w_ih, w_hh, b, x):
        h, c = torch.zeros(batch, 16, requires_grad=True), torch.zeros(batch, 16)
        for t in range(steps):
            i, f, g, o = (x[:, t] @ w_ih.T + h @ w_hh.T + b).chunk(4, dim=1)
            c = f.sigmoid() * c + i.sigmoid() * g.tanh()
            h = o.sigmoid() * c.tanh()
        return h

    params = [p.detach().clone().requires_grad_() for p in lstm.parameters()]
    with FlopCounterMode(display=False) as counter:
        out = unrolled(params[0], params[1], params[2] + params[3], x.requires_grad_())
        out = out + unrolled(params[4], params[5], params[6] + params[7], x.flip(1))
        out.sum().backward()
    assert budget._lstm_flops(lstm, batch * steps) == counter.get_total_flops()


def test_device_time_is_flops_over_throughput_plus_step_overhead():
    device = budget.Device("test", flops_per_s=1e12, step_overhead_s=0.01)
    work = [budget.Work("a", 3e12, 100), budget.Work("b", 1e12, 0)]
    assert device.seconds(work) == pytest.approx(3 + 1 + 100 * 0.01)


def test_unknown_chapter_is_refused():
    with pytest.raises(ValueError, match="unknown chapter 'nope': expected one of principles"):
        budget.chapter_work("nope", profile("smoke"))


def test_every_training_chapter_states_its_times_at_the_top():
    for chapter in budget.CHAPTERS:
        cells = json.loads((BOOK / f"{chapter}.ipynb").read_text())["cells"]
        top = "".join("".join(c["source"]) for c in cells[:4])
        assert f'time_table("{chapter}")' in top, chapter
