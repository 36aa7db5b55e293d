"""The model throughput table (same as `alexnet bench`): python benchmarks/bench_models.py [flags].

Flags are those of `alexnet bench --help`; e.g. `--batch-size 64 --compile`.
"""

from __future__ import annotations

import sys

from alexnet.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench", *sys.argv[1:]]))
