"""``python -m alexnet`` (and ``torchrun -m alexnet``) runs the CLI."""

from alexnet.cli import main

raise SystemExit(main())
