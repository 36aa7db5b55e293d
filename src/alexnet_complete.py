"""The original README's import path: ``from alexnet_complete import AlexNet``.

Re-exports the library's public API, so code written against the first
edition of this project keeps working::

    from alexnet_complete import AlexNet
    logits = AlexNet(num_classes=1000)(torch.randn(1, 3, 227, 227))  # (1, 1000)
"""

from alexnet import *  # noqa: F403
from alexnet import __all__, __version__  # noqa: F401
