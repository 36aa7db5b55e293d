"""Export a checkpoint as ONNX (checked with onnxruntime), safetensors + JSON sidecar, or a
torch.export program (.pt2).

ONNX and .pt2 have a dynamic batch axis. The safetensors pair can replace the
checkpoint for evaluate/predict. A .pt2 file (like TorchScript) runs code when
loaded: share it only with people who trust you; alexnet itself never loads one.
"""

from __future__ import annotations

import argparse

NAME = "export"
HELP = "write a checkpoint as ONNX, safetensors (+ JSON sidecar) or a torch.export .pt2"

_SUFFIX = {"onnx": ".onnx", "safetensors": ".safetensors", "pt2": ".pt2"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from alexnet.tasks.inference import add_weights_argument

    p.add_argument("checkpoint", metavar="CKPT", help="a .pt checkpoint or a .safetensors file")
    p.add_argument("--format", required=True, choices=sorted(_SUFFIX), help="output format")
    p.add_argument("--out", required=True, metavar="PATH", help="output file")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 20)")
    p.add_argument(
        "--no-check",
        action="store_true",
        help="ONNX: skip the onnxruntime comparison on batches of 1, 3 and 5",
    )
    add_weights_argument(p)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from alexnet.errors import UserError
    from alexnet.outputs.export import export_onnx, export_pt2, export_safetensors
    from alexnet.outputs.export.programs import DEFAULT_OPSET
    from alexnet.tasks.loading import load_model

    out = Path(args.out)
    if out.suffix != _SUFFIX[args.format]:
        raise UserError(f"--out {out}: a {args.format} file should end in {_SUFFIX[args.format]}")
    if args.opset is not None and args.format != "onnx":
        raise UserError("--opset applies to --format onnx only")
    loaded = load_model(args.checkpoint, weights=args.weights)
    if loaded.weights:
        print(f"weights: {loaded.weights}")
    if args.format == "onnx":
        report = export_onnx(
            loaded, out, opset=args.opset or DEFAULT_OPSET, check=not args.no_check
        )
        print(f"wrote {out} ({report.size_bytes / 2**20:.1f} MiB, opset {report.opset})")
        for b, d in report.max_abs_diff.items():
            print(f"onnxruntime vs PyTorch, batch {b}: max abs diff {d:.2e}")
        if report.max_abs_diff:
            print(f"(largest logit {report.max_abs_logit:.3g}; fp32 rounding is relative)")
    elif args.format == "safetensors":
        weights, side = export_safetensors(loaded, out)
        print(f"wrote {weights} and {side}")
    else:
        export_pt2(loaded, out)
        print(f"wrote {out} (a torch.export program: it runs code when loaded; trusted use only)")
    return 0
