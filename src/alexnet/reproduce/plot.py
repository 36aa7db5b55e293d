"""Figure 1's plot: training error rate against epochs, ReLU solid, tanh dashed (headless)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure


def plot_figure1(relu, tanh, target: float, title: str, out_path: str | Path) -> Path:
    """Draw both runs' per-epoch training error (``Run.epoch_errors``) and the target line.

    Builds a ``matplotlib.figure.Figure`` directly (no pyplot, no GUI backend)."""
    fig = Figure(figsize=(5.5, 4.0), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    for run, style in ((relu, "-"), (tanh, "--")):
        epochs = list(range(1, len(run.epoch_errors) + 1))
        label = f"{run.unit} (lr {run.lr:g})"
        ax.plot(epochs, run.epoch_errors, style, color="black", marker=".", label=label)
    ax.axhline(target, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("Epochs")
    ax.set_ylabel("Training error rate")
    ax.set_ylim(0, 0.8)
    ax.set_xlim(left=0)
    ax.set_title(title, fontsize=9)
    ax.legend(frameon=False)
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
