"""hubconf.py: torch.hub.load from this checkout, in a Python that cannot import alexnet
until hubconf puts src/ on the path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from alexnet import create_model
from alexnet.engine.checkpoint import save_checkpoint, weights_checkpoint

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import importlib.util, json, os, sys
repo, ckpt = sys.argv[1], sys.argv[2]
src = os.path.realpath(os.path.join(repo, "src"))
for _ in range(5):  # take every installed alexnet (an editable install's src/) off the path
    spec = importlib.util.find_spec("alexnet")
    if spec is None:
        break
    root = os.path.dirname(os.path.dirname(os.path.realpath(spec.origin)))
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != root]
    importlib.invalidate_caches()
assert importlib.util.find_spec("alexnet") is None, "alexnet importable without hubconf"
import torch

out = {}
fresh = torch.hub.load(repo, "alexnet", source="local", num_classes=10, lrn_k=1.0)
import alexnet
out["from"] = os.path.realpath(alexnet.__file__).startswith(src)
out["fresh"] = [fresh.num_classes, fresh.config.lrn_k, fresh.training]
loaded = torch.hub.load(repo, "alexnet", source="local", weights=ckpt)
out["loaded"] = [len(loaded.classes), loaded.config.lrn_k, loaded.training, loaded.preprocessing]
same = torch.hub.load(repo, "alexnet", source="local", weights=ckpt, num_classes=10, lrn_k=1.0)
out["same"] = torch.equal(same.features.conv1.weight, loaded.features.conv1.weight)
for name, kw in [("alexnet", {"num_classes": 5}), ("alexnet", {"lrn_k": 2.0}),
                 ("alexnet_bn", {}), ("alexnet", {"colour": 1})]:
    try:
        torch.hub.load(repo, name, source="local", weights=ckpt, **kw)
        out[name + str(kw)] = "no error"
    except Exception as e:
        out[name + str(kw)] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
"""


def test_hub_load_from_a_checkout(tmp_path):
    torch.manual_seed(0)
    model = create_model("alexnet", num_classes=10, lrn_k=1.0, width=0.125)
    classes = [f"c{i}" for i in range(10)]
    pre = {"input_size": 227, "resize": 256, "resize_mode": "warp", "normalize": "pixel"}
    ckpt = save_checkpoint(
        weights_checkpoint(
            "alexnet", {"lrn_k": 1.0, "width": 0.125}, model.state_dict(), classes, pre, {}
        ),
        tmp_path / "w.pt",
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", CHILD, str(REPO), str(ckpt)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["from"] is True  # the checkout's src/, put there by hubconf
    assert out["fresh"] == [10, 1.0, True]
    assert out["loaded"] == [10, 1.0, False, pre]
    assert out["same"] is True  # options that agree with the file are fine
    assert out["alexnet{'num_classes': 5}"] == (
        f"UserError: {ckpt} holds alexnet built with other options: num_classes=5 "
        "(the file has 10); leave them out to use the file's"
    )
    assert "lrn_k=2.0 (the file has 1.0)" in out["alexnet{'lrn_k': 2.0}"]
    assert out["alexnet_bn{}"] == f"UserError: {ckpt} holds model 'alexnet', not 'alexnet_bn'"
    assert "takes no option colour" in out["alexnet{'colour': 1}"]
    for message in out.values():
        assert "\n" not in str(message)
