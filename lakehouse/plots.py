"""Small PNG figures for asset metadata (rendered off-screen with matplotlib's Agg)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def histogram_png(values: np.ndarray, title: str, xlabel: str, bins: int = 60,
                  vlines: dict[str, float] | None = None) -> bytes:
    """Histogram with optional labelled vertical lines (thresholds, means)."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    values = values[np.isfinite(values)]
    ax.hist(values, bins=bins, color="#4878a8")
    for i, (label, x) in enumerate((vlines or {}).items()):
        ax.axvline(x, color=["#c03030", "#e08020", "#30a030"][i % 3], ls="--", label=label)
    if vlines:
        ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    return _png(fig)


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown that embeds a PNG inline (how the Dagster UI shows images in metadata)."""
    import base64

    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def split_histogram_png(values: np.ndarray, split: np.ndarray, labels: tuple[str, str],
                        title: str, xlabel: str, bins: int = 40,
                        vlines: dict[str, float] | None = None) -> bytes:
    """Two overlaid histograms on shared bins: ``values[split]`` and ``values[~split]``."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    finite = np.isfinite(values)
    v, s = values[finite], split[finite]
    edges = np.histogram_bin_edges(v, bins=bins) if v.size else np.linspace(0, 1, bins + 1)
    ax.hist(v[s], bins=edges, color="#30a030", alpha=0.7, label=f"{labels[0]} ({int(s.sum())})")
    ax.hist(v[~s], bins=edges, color="#808080", alpha=0.6,
            label=f"{labels[1]} ({int((~s).sum())})")
    for i, (label, x) in enumerate((vlines or {}).items()):
        ax.axvline(x, color=["#c03030", "#e08020"][i % 2], ls="--", label=label)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    return _png(fig)


def curves_png(x: np.ndarray, series: dict[str, np.ndarray], title: str, xlabel: str,
               ylabel: str) -> bytes:
    """Line plot of a few named series over a shared x (loss curves, metrics by bucket)."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for i, (label, y) in enumerate(series.items()):
        ax.plot(x, y, marker="o", ms=3, label=label,
                color=["#4878a8", "#c03030", "#30a030", "#e08020"][i % 4])
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return _png(fig)


def scatter_png(x: np.ndarray, series: dict[str, np.ndarray], title: str, xlabel: str,
                ylabel: str) -> bytes:
    """Points of a few named series over a shared x (dI adjacent and at distance)."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for i, (label, y) in enumerate(series.items()):
        ax.scatter(x, y, s=10, alpha=0.7, label=label,
                   color=["#4878a8", "#c03030", "#30a030", "#e08020"][i % 4])
    ax.axhline(0, color="#808080", lw=0.8)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return _png(fig)
