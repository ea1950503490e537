"""The feature-space methods (notebook 02): Local POD profiles (PLOP) and the latent space (SDR)."""

from __future__ import annotations

import numpy as np

from ..results import display_name
from .common import to_rgb


def pod_profiles(data: dict, title: str = ""):
    """What PLOP's Local POD keeps of a feature map: its squared activations pooled over the width (one
    value per row) and over the height (one per column), for the step-0 model and each method after the
    last step (data of :func:`incseg_lib.experiment.measure_pod`); the legend gives each model's POD
    distance to step 0 on that map."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), gridspec_kw={"width_ratios": [1, 1.4, 1.4]})
    axes[0].imshow(to_rgb(data["image"]))
    axes[0].set_title("validation image", fontsize=10)
    axes[0].axis("off")
    styles = {"step 0": dict(color="k", lw=2.2, ls="--")}
    for ax, key, what in ((axes[1], "rows", "row (top to bottom)"), (axes[2], "cols", "column (left to right)")):
        for name, prof in data[key].items():
            label = display_name(name) if name != "step 0" else "step 0 (old model)"
            if name != "step 0":
                label += f" (POD distance {data['distance'][name]:.0f})"
            ax.plot(np.arange(len(prof)), prof, marker="o", ms=3, label=label, **styles.get(name, {}))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # positions of the map: no 0.5 ticks
        ax.set_xlabel(f"{what} of the 1/{2 ** (data['stage'] + 2)} map")
        ax.set_ylabel("mean squared activation")
        ax.set_title(f"pooled over the {'width' if key == 'rows' else 'height'}", fontsize=10)
        ax.grid(alpha=0.3)
    axes[2].legend(fontsize=8, loc="best")
    fig.suptitle(title or f"ResNet stage {data['stage'] + 1}: what Local POD compares, step 0 against the last step")
    fig.tight_layout()
    return fig


def latent_space(data: dict, title: str = ""):
    """SDR's latent space: pixel features of validation images (dots, coloured by their class) and the
    class prototypes (stars) on two principal axes, after step 0 and after the last step (data of
    :func:`incseg_lib.experiment.latent_projection`)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    panels, names, palette = data["panels"], data["class_names"], np.asarray(data["palette"]) / 255
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.8), sharex=True, sharey=True)
    classes = sorted(
        {int(c) for p in panels for c in np.unique(p["labels"])} | {c for p in panels for c in p["prototypes"]}
    )
    for ax, p in zip(np.atleast_1d(axes), panels):
        for c in classes:
            pts = p["points"][p["labels"] == c]
            if len(pts):
                ax.scatter(pts[:, 0], pts[:, 1], s=6, alpha=0.45, color=palette[c], edgecolors="none")
            if c in p["prototypes"]:
                q = p["prototypes"][c]
                ax.scatter([q[0]], [q[1]], s=180, marker="*", color=palette[c], edgecolors="k", linewidths=0.8)
        ax.set_title(p["title"], fontsize=10)
        ax.set_xlabel("first principal axis")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("second principal axis")
    handles = [Line2D([], [], marker="o", ls="", color=palette[c], label=names[c]) for c in classes]
    handles.append(Line2D([], [], marker="*", ls="", color="w", markeredgecolor="k", ms=12, label="prototype"))
    fig.legend(handles=handles, loc="lower center", ncol=min(8, len(handles)), fontsize=9, frameon=False)
    fig.suptitle(title or "SDR's latent space: pixel features (dots) and class prototypes (stars)")
    fig.tight_layout(rect=(0, 0.06 + 0.03 * (len(handles) // 8), 1, 1))
    return fig


def pod_reading(data: dict) -> str:
    """What :func:`pod_profiles`'s figure shows, from the same data: which method's map stays closest
    to the old model's (POD distance), and whether PLOP, whose Local POD distils exactly these pooled
    profiles, keeps it closer than the others, as it is meant to; said plainly when it does not."""
    dist = {m: d for m, d in data["distance"].items() if m != "step 0"}
    if not dist:
        return "What this figure shows: the old model's profiles only (no method after the last step)."
    shown = ", ".join(f"{display_name(m)} {d:.0f}" for m, d in sorted(dist.items(), key=lambda kv: kv[1]))
    line = f"What this figure shows: POD distance to the old model's map after the last step: {shown}."
    others = {m: d for m, d in dist.items() if m != "plop"}
    if "plop" in dist and others:
        rival = min(others, key=others.get)
        if dist["plop"] < others[rival]:
            line += (
                f" PLOP's features stay closer to the old model's than {display_name(rival)}'s, as Local POD "
                "(which distils these pooled profiles) is meant to keep them."
            )
        else:
            line += (
                f" PLOP's features are further from the old model's than {display_name(rival)}'s "
                f"({dist['plop']:.0f} against {others[rival]:.0f}): the opposite of what Local POD exists to do. "
                "On this image and run PLOP did not keep the layout it distils; its training curves show "
                "whether its POD term came down within each step."
            )
    return line


def latent_reading(data: dict) -> str:
    """What :func:`latent_space`'s figure shows, from the same projections: in the last panel, how far
    each new class's prototype lies from background (its prototype, or the mean of its pixels when
    the model keeps no background prototype) and from the other new prototypes, against the typical
    distance between two old classes' prototypes. SDR's repulsion exists to keep class prototypes
    apart; a new prototype on top of background, or new prototypes on top of each other (under a
    quarter of that typical distance), are said plainly.
    """
    panels = data["panels"]
    first, last = panels[0], panels[-1]
    old = [c for c in first["prototypes"] if c != 0]
    new = [c for c in last["prototypes"] if c not in first["prototypes"]]
    if len(old) < 2 or not new:
        return "What this figure shows: the prototypes of the classes present (too few to compare distances)."
    proto = {c: np.asarray(p, float) for c, p in last["prototypes"].items()}
    names = data["class_names"]

    def dist(a, b) -> float:
        return float(np.linalg.norm(a - b))

    typical = float(np.median([dist(proto[a], proto[b]) for i, a in enumerate(old) for b in old[i + 1 :]]))
    bg_points = np.asarray(last["points"])[np.asarray(last["labels"]) == 0]
    if 0 in proto:
        bg, bg_name = proto[0], "background's prototype"
    elif len(bg_points):
        bg, bg_name = bg_points.mean(0), "the mean of background's pixels"
    else:
        bg, bg_name = None, ""
    line = f"What this figure shows: after the last step, two old classes' prototypes are typically {typical:.1f} apart"
    notes = []
    if bg is not None:
        to_bg = {c: dist(proto[c], bg) for c in new}
        line += "; the new classes' lie at " + ", ".join(f"{names[c]} {d:.1f}" for c, d in to_bg.items())
        line += f" from {bg_name}"
        close = [names[c] for c, d in to_bg.items() if d < 0.25 * typical]
        if close:
            notes.append(f"{', '.join(close)} {'sits' if len(close) == 1 else 'sit'} on top of background")
    if len(new) > 1:
        spread = float(np.median([dist(proto[a], proto[b]) for i, a in enumerate(new) for b in new[i + 1 :]]))
        line += f", and {spread:.1f} from each other (median)"
        if spread < 0.25 * typical:
            notes.append(f"the {len(new)} new prototypes sit on top of each other")
        elif spread < 0.5 * typical:
            notes.append(
                f"the {len(new)} new prototypes crowd together ({spread / typical:.0%} of the old classes' "
                "typical distance)"
            )
    line += "."
    if notes:
        said = "; ".join(notes)
        line += (
            f" {said[0].upper() + said[1:]}: SDR's repulsion is meant to push class prototypes apart, and here it "
            "did not, so the model tells these classes apart less well than the old ones (their IoU after the "
            "last step says how much)."
        )
    else:
        line += " Every new prototype stands apart from background and from the others, as SDR's repulsion means it to."
    return line
