"""The seed article's three models, rebuilt from its description with their defects intact.

A tutorial article on self-supervised learning started this book. Each of its models is
reconstructed here as it describes it, so that a chapter can run it and show what goes wrong:

- :class:`ArticleClassifier`: its "contrastive model" is a supervised classifier
  (chapter *contrastive*; the working method is :class:`sslbook.methods.SimCLR`).
- :class:`ArticleAutoencoder`: its decoder never upsamples, so a 32x32 image comes back 4x4 and
  the MSE against the input fails; :func:`layer_shapes` prints the shapes that reveal it
  (chapter *autoencoders*; the working model is :class:`sslbook.methods.ConvAutoencoder`).
- :class:`ArticleMaskedLM`: a left-to-right LSTM trained to copy its input
  (chapter *mlm*; the working model is :class:`sslbook.methods.MaskedLanguageModel`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "ArticleAutoencoder",
    "article_autoencoder_loss",
    "ArticleClassifier",
    "ArticleMaskedLM",
    "LayerShape",
    "layer_shapes",
]


class LayerShape(NamedTuple):
    name: str  # the module's name in the model, e.g. "encoder.0"
    layer: str  # its class, e.g. "Conv2d"
    shape: tuple[int, ...]  # its output's shape


@torch.no_grad()
def layer_shapes(model: nn.Module, x: torch.Tensor) -> list[LayerShape]:
    """The output shape of every leaf layer of ``model`` on input ``x``, in the order they ran.

    Uses forward hooks, removed again afterwards, even if the forward pass fails.
    """
    shapes: list[LayerShape] = []
    hooks = [
        module.register_forward_hook(
            lambda m, args, out, name=name: shapes.append(
                LayerShape(name, type(m).__name__, tuple(out.shape))
            )
        )
        for name, module in model.named_modules()
        if not list(module.children())  # leaves only: Conv2d, ReLU, ...
    ]
    try:
        model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


class ArticleAutoencoder(nn.Module):
    """The article's autoencoder, faithfully broken: the decoder does not undo the pooling.

    Encoder: three blocks of 3x3 convolution (padding 1, size kept) + ReLU + 2x2 max-pool (size
    halved). Decoder: three 3x3 transposed convolutions with stride 1 and padding 1, which keep
    the size (out = (in - 1) * 1 - 2 * 1 + 3 = in), with ReLUs between. For a 32x32 input:

        encoder  (N, 3, 32, 32) -> conv (N, 64, 32, 32) -> pool (N, 64, 16, 16)
                 -> conv (N, 128, 16, 16) -> pool (N, 128, 8, 8)
                 -> conv (N, 256, 8, 8) -> pool (N, 256, 4, 4)
        decoder  -> (N, 128, 4, 4) -> (N, 64, 4, 4) -> (N, 3, 4, 4)

    so ``F.mse_loss(model(x), x)`` raises a RuntimeError (4 vs 32 at dimension 3). The fix is a
    decoder that upsamples 2x three times, as :class:`~sslbook.models.ConvDecoder` does.

    Shape:
        x: (N, 3, H, W) float; return: (N, 3, H / 8, W / 8)
    """

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 32 -> 16
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 16 -> 8
            nn.Conv2d(128, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 8 -> 4
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(256, 128, 3, stride=1, padding=1), nn.ReLU(),  # 4 -> 4
            nn.ConvTranspose2d(128, 64, 3, stride=1, padding=1), nn.ReLU(),  # 4 -> 4
            nn.ConvTranspose2d(64, 3, 3, stride=1, padding=1),  # 4 -> 4: the bug
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def article_autoencoder_loss(
    model: nn.Module, data: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """The article's autoencoder training step: ``nn.MSELoss()(model(data), target)`` for the
    ``(data, target)`` pairs of an image-classification loader, so the target is the class label,
    not the image.

    With the article's decoder the shapes fail first. With a decoder that restores the image size
    and the article's batch of 32, PyTorch broadcasts the (32,) labels against the last axis of
    the (32, 3, 32, 32) output, warns, and trains pixel column j of every image towards the label
    of image j.

    Shape:
        data: (B, 3, H, W) float; target: (B,) int64 labels; return: scalar
    """
    return F.mse_loss(model(data), target)


class ArticleClassifier(nn.Module):
    """A "contrastive model" as a tutorial article presents it, rebuilt from its description.

    Three blocks of 3x3 convolution (3 -> 64 -> 128 -> 256, padding 1), ReLU and 2x2 max-pool
    shrink a 32x32 image to a 256x4x4 map; one linear layer maps its 4096 values to 10 class
    scores, and training minimises cross-entropy against class labels. Nothing in it compares
    views or images: it is a supervised classifier, and it cannot be trained without labels.

    Shape:
        x: (B, 3, 32, 32) float in [0, 1]; return: (B, 10) class logits
    """

    def __init__(self, num_classes: int = 10):
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out in ((3, 64), (64, 128), (128, 256)):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        self.encoder = nn.Sequential(*layers)  # (B, 256, 4, 4)
        self.fc = nn.Linear(256 * 4 * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.encoder(x).flatten(1))  # (B, num_classes)


class ArticleMaskedLM(nn.Module):
    """The seed article's "masked language model", in our code: embedding -> ``x * mask`` ->
    left-to-right ``nn.LSTM`` -> linear to the vocabulary, trained (:meth:`loss`) to output
    its own input at every position. Kept to show what it cannot do:

    1. The article writes ``x = x mask`` (a syntax error). Read as ``x * mask``, a (B, T) mask
       does not broadcast against (B, T, E) unless B == T == E by chance, and then it scales
       embedding channels instead of tokens; we multiply by ``mask[..., None]``. (Its
       ``criterion(output, target)`` on (B, T, V) logits also needs a ``transpose(1, 2)``.)
    2. The target is the input itself at every position, so at each kept position the answer
       is in the input: the model can copy it, and ~85 % of the loss is that copying. With the
       BERT reading of "mask" (1 = selected) the product keeps exactly the tokens to predict.
    3. A left-to-right LSTM cannot see right-hand context: the output at t depends on tokens
       0..t only, so a hidden word is guessed from its left, never from what follows it.
    4. A zeroed embedding is no ``[MASK]`` token and hidden positions are not separated in the
       loss, so the loss and its accuracy say nothing about filling in blanks.

    Shape:
        x: (B, T) int64; mask: (B, T), 1 keeps a token's embedding, 0 zeroes it
        return: logits (B, T, vocab_size)
    """

    def __init__(self, vocab_size: int, embedding_dim: int = 128, hidden_dim: int = 256):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_dim, batch_first=True)
        self.fc = nn.Linear(hidden_dim, vocab_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if mask.shape != x.shape:
            raise ValueError(f"expected a mask of shape {tuple(x.shape)}, got {tuple(mask.shape)}")
        x = self.embedding(x)  # (B, T, E)
        x = x * mask.unsqueeze(-1).to(x.dtype)  # the "masking"; the loss still wants every token
        x, _ = self.lstm(x)  # (B, T, H), left to right
        return self.fc(x)  # (B, T, V)

    def loss(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The article's ``criterion(output, target)`` with target = the input, all positions."""
        logits = self(x, mask)  # (B, T, V)
        return F.cross_entropy(logits.transpose(1, 2), x)
