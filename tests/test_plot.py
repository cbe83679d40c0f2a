import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from sslbook.plot import attention_map  # noqa: E402


def test_attention_map_draws_the_weights_with_token_labels():
    weights = torch.softmax(torch.randn(4, 4), dim=-1)
    fig = attention_map(weights, ["[CLS]", "to", "be", "[SEP]"], "head 0")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["[CLS]", "to", "be", "[SEP]"]
    assert torch.allclose(torch.tensor(ax.images[0].get_array()), weights)
    plt.close(fig)


def test_attention_map_rejects_weights_that_do_not_fit_the_tokens():
    with pytest.raises(ValueError, match=r"expected \(3, 3\) weights for 3 tokens, got \(4, 4\)"):
        attention_map(torch.zeros(4, 4), ["a", "b", "c"], "x")
