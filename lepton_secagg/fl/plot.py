"""The training-progress plot: global accuracy and loss per round (matplotlib, Agg backend, PNG)."""
from __future__ import annotations

from pathlib import Path

__all__ = ["plot_progress"]


def plot_progress(history: list[dict[str, float]], path: str | Path, title: str = "Federated averaging with secure aggregation") -> Path:
    """Write a PNG of ``history`` (dicts with ``round``, ``accuracy``, ``loss`` and optionally
    ``test_accuracy``, ``test_loss``, ``epsilon``) and return its path."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rounds = [h["round"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
    ax1.plot(rounds, [h["accuracy"] for h in history], "o-", label="federated evaluation (secure sum)")
    if any("test_accuracy" in h for h in history):
        ax1.plot([h["round"] for h in history if "test_accuracy" in h], [h["test_accuracy"] for h in history if "test_accuracy" in h], "s--", label="held-out test set")
    for name, value, style in (("centralised", "centralized_accuracy", ":"), ("local only (mean)", "local_accuracy", "-.")):
        vals = [h[value] for h in history if value in h]
        if vals:
            ax1.axhline(vals[-1], linestyle=style, color="grey", label=name)
    if any("epsilon" in h for h in history):  # distributed DP: the privacy spent beside the accuracy
        ax_eps = ax1.twinx()
        ax_eps.plot([h["round"] for h in history if "epsilon" in h], [h["epsilon"] for h in history if "epsilon" in h],
                    "d-.", color="C2", label="epsilon spent (right axis)")
        ax_eps.set_ylabel("epsilon (distributed DP)")
        ax_eps.legend(fontsize=7, loc="center right")
    ax1.set_xlabel("round")
    ax1.set_ylabel("accuracy")
    ax1.set_title("global model accuracy")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=7, loc="lower right")
    ax2.plot(rounds, [h["loss"] for h in history], "o-", color="C3", label="federated evaluation")
    if any("test_loss" in h for h in history):
        ax2.plot([h["round"] for h in history if "test_loss" in h], [h["test_loss"] for h in history if "test_loss" in h], "s--", color="C1", label="held-out test set")
    ax2.set_xlabel("round")
    ax2.set_ylabel("mean cross-entropy loss")
    ax2.set_title("global model loss")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)
    return path
