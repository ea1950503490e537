"""Notebook 07's pictures: a run's old-class mIoU beside its linear probe's after every step, and
EWF's weight slider (old against new mIoU)."""

from __future__ import annotations

PROBE_SUFFIX = " (probe)"


def probe_curves(frame, title: str = ""):
    """Old-class mIoU (%) per step: one colour per run, its model solid and its probe dashed (rows of
    :func:`~incseg_lib.results.probe_frame`), y axis 0-100."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    colours = {}
    for name, row in frame.iterrows():
        run = str(name).removesuffix(PROBE_SUFFIX)
        colour = colours.setdefault(run, f"C{len(colours)}")
        probe = str(name).endswith(PROBE_SUFFIX)
        row = row.dropna()
        label = f"{run}: probe of its features" if probe else f"{run}: the model"
        ax.plot(
            row.index,
            row.values,
            ls="--" if probe else "-",
            marker="s" if probe else "o",
            ms=4,
            color=colour,
            label=label,
        )
    ax.set_xlabel("step (0: the base classes)")
    ax.set_ylabel("old-class mIoU (%)")
    ax.set_xticks(list(frame.columns))
    ax.set_ylim(0, 100)
    ax.set_yticks(range(0, 101, 20))
    ax.set_title(title or "old classes: each model against a linear probe of its features", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def probe_reading(frame) -> str:
    """What :func:`probe_curves` shows, from the same table: each run's and its probe's old-class mIoU
    at step 0 and after the last step, and how much of the gap the features keep."""
    if frame is None or not len(frame):
        return "What this figure shows: no run was probed."
    parts = []
    for name, row in frame.iterrows():
        if str(name).endswith(PROBE_SUFFIX):
            continue
        probe = f"{name}{PROBE_SUFFIX}"
        if probe not in frame.index:
            continue
        model, feats = row.dropna(), frame.loc[probe].dropna()
        if not len(model) or not len(feats):
            continue
        lead = feats.iloc[-1] - model.iloc[-1]
        end = f"+{lead:.0f} over the model at the end" if lead >= 0 else "below the model at the end"
        parts.append(
            f"{name} {model.iloc[0]:.0f} to {model.iloc[-1]:.0f}, its probe {feats.iloc[0]:.0f} to "
            f"{feats.iloc[-1]:.0f} ({end})"
        )
    if not parts:
        return "What this figure shows: no run with its probe."
    return "What this figure shows: old-class mIoU from step 0 to the last step: " + "; ".join(parts) + "."


def fusion_curve(frame, title: str = ""):
    """EWF's slider: old against new mIoU (%) after the step, one point per weight ``w`` of the new
    model (rows of :func:`~incseg_lib.results.fusion_frame`), joined in order of ``w`` and coloured
    by it (colour bar); EWF's own weight is the star."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    ax.plot(frame["new"], frame["old"], "-", color="0.6", lw=1, zorder=1)
    points = ax.scatter(
        frame["new"], frame["old"], c=frame["w"], cmap="viridis", vmin=0, vmax=1, s=30, zorder=2,
        label="re-fused at weight w (colour)",
    )  # fmt: skip
    own = frame[frame["default"]]
    if len(own):
        ax.plot(
            own["new"], own["old"], "*", ms=15, color="C3", zorder=3, label=f"EWF's weight w={own['w'].iloc[0]:.2f}"
        )
    fig.colorbar(points, ax=ax, label="weight w of the new model")
    ax.set_xlabel("new-class mIoU (%)")
    ax.set_ylabel("old-class mIoU (%)")
    ax.set_xlim(*_span(frame["new"]))
    ax.set_ylim(*_span(frame["old"]))
    ax.set_title(title or "EWF: old against new classes as the weight of the new model grows", fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _span(values, full: float = 20.0) -> tuple[float, float]:
    """Axis limits (%): 0 to 100, or, when the values span less than ``full`` points, the values
    with a margin (a slider that hardly moves, CamVid's 42.6 to 43.0, is otherwise one dot)."""
    lo, hi = float(values.min()), float(values.max())
    if hi - lo >= full:
        return 0.0, 100.0
    pad = max(1.0, 0.25 * (hi - lo))
    return max(0.0, lo - pad), min(100.0, hi + pad)


def fusion_reading(frame) -> str:
    """What :func:`fusion_curve` shows, from the same table: the two ends of the slider and EWF's
    own weight."""
    if frame is None or not len(frame):
        return "What this figure shows: no weight was swept."
    lo, hi = frame.iloc[0], frame.iloc[-1]
    line = (
        f"What this figure shows: at w={lo['w']:.2f} old {lo['old']:.0f} / new {lo['new']:.0f}; at "
        f"w={hi['w']:.2f} old {hi['old']:.0f} / new {hi['new']:.0f}"
    )
    own = frame[frame["default"]]
    if len(own):
        o = own.iloc[0]
        line += f"; EWF's own w={o['w']:.2f}: old {o['old']:.0f} / new {o['new']:.0f}"
    return line + "."
