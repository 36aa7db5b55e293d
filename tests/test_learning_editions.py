"""The original README's import path and the one-file learning edition."""

from __future__ import annotations

import subprocess
import sys

import torch


def test_seed_snippet():
    from alexnet_complete import AlexNet

    out = AlexNet(num_classes=1000)(torch.randn(1, 3, 227, 227))
    assert out.shape == (1, 1000)


def test_alexnet_complete_reexports_public_api():
    import alexnet
    import alexnet_complete

    for name in alexnet.__all__:
        assert getattr(alexnet_complete, name) is getattr(alexnet, name)


def test_template_has_the_paper_parameter_count_and_matches_lrn():
    import alexnet_template
    from alexnet.nn import local_response_norm_reference

    assert sum(p.numel() for p in alexnet_template.AlexNet(1000).parameters()) == 60_965_224
    x = torch.randn(2, 12, 4, 4, dtype=torch.float64) * 20
    torch.testing.assert_close(
        alexnet_template.local_response_norm(x), local_response_norm_reference(x)
    )


def test_template_is_short_and_imports_only_torch():
    import ast
    from pathlib import Path

    import alexnet_template

    src = Path(alexnet_template.__file__).read_text()
    assert len(src.splitlines()) < 250
    tops = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            tops |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            tops.add(node.module.split(".")[0])
    assert tops <= {"torch", "argparse", "math", "__future__"}


def test_template_trains_and_its_loss_falls():
    import alexnet_template

    losses = alexnet_template.train(steps=40, log_every=0)
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < first - 0.1, (first, last)


def test_template_runs_as_module():
    r = subprocess.run(
        [sys.executable, "-m", "alexnet_template", "--steps", "2", "--batch-size", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "60,965,224 parameters" in r.stdout
