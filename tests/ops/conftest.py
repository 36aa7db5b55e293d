"""Without a GPU, the Triton kernels of alexnet.ops.triton run in Triton's interpreter:
TRITON_INTERPRET=1 must be set when triton itself is imported (its own ``tl.zeros`` and
friends are @triton.jit functions too) and at each launch. It is set here, before any test
module of this folder imports triton, only around that import; ``test_triton.py`` sets it
again around each of its tests, so no other test (nor a subprocess) sees it."""

from __future__ import annotations

import os
import sys

import torch

INTERPRETED = False  # alexnet.ops.triton imported in the interpreter (no GPU here)

if not torch.cuda.is_available() and "triton" not in sys.modules:
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        import alexnet.ops.triton  # noqa: F401  (the kernels, defined interpreted)

        INTERPRETED = True
    except ImportError:
        pass  # test_triton.py skips, with triton's reason
    finally:
        del os.environ["TRITON_INTERPRET"]
