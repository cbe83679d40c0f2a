"""sslbook: the code behind an executable book on self-supervised learning.

Chapters import this package; it holds every model, loss, augmentation, training loop and
evaluation they use. See the book for the ideas and the modules for the details.
"""

__version__ = "0.1.0"

from .device import pick_device, seed_everything  # noqa: E402
from .profiles import Profile, profile  # noqa: E402
from .weights import pretrained  # noqa: E402

__all__ = ["Profile", "pick_device", "pretrained", "profile", "seed_everything", "__version__"]
