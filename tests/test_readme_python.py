"""Every ```python block of README.md runs as written: the files it names (a weights file,
an image, the checkout for torch.hub) are made in a temporary folder first."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
HUB_DIR = "path/to/this/checkout"


def _make_named_files(code: str, where: Path) -> None:
    """The weights files, images and hub checkout a block names, made in ``where``."""
    from alexnet import create_model
    from alexnet.engine.checkpoint import save_checkpoint, weights_checkpoint

    for name in re.findall(r"[\"']([^\"']+\.(?:pt|jpg|png))[\"']", code):
        path = where / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".pt"):  # a 1000-class paper network, narrow to stay small
            kwargs = {"width": 0.125}  # conftest.NARROW
            model = create_model("alexnet", num_classes=1000, **kwargs)
            pre = {"input_size": 227, "resize": 256, "resize_mode": "square"}
            pre["normalize"] = "channel"
            state = weights_checkpoint(
                "alexnet",
                kwargs,
                model.state_dict(),
                [f"n{i:08d}" for i in range(1000)],
                pre,
                {"source": "tests/test_readme_python.py"},
            )
            save_checkpoint(state, path)
        else:
            rgb = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
            Image.fromarray(rgb).save(path)
    if HUB_DIR in code:
        (where / HUB_DIR).parent.mkdir(parents=True, exist_ok=True)
        (where / HUB_DIR).symlink_to(ROOT, target_is_directory=True)


def test_readme_has_python_blocks():
    assert BLOCKS


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, tmp_path, monkeypatch):
    code = BLOCKS[index]
    _make_named_files(code, tmp_path)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "readme"}
    with torch.no_grad():
        exec(compile(code, f"README.md python block {index + 1}", "exec"), namespace)
    if "probs" in namespace:  # the block's prediction: a distribution over 1000 classes
        probs = namespace["probs"]
        assert probs.shape == (1, 1000) and float(probs.sum()) == pytest.approx(1, abs=1e-4)
