"""Find class palettes whose smallest CIEDE2000 difference is as large as possible.

Prints two palettes for ``incseg_lib/data/colours.py``: one for masks on black (every colour
light enough to see on black, far from black and from void's cream) and one for marks on white
(far from white, from the dark-grey background mark and from each other). Max-min search over an
sRGB grid: farthest-point seeding, then coordinate ascent (each colour in turn moved to the grid
point that maximises the smallest difference), repeated until no colour moves. Deterministic.

    python tools/palette_search.py            # 20 colours each, grid step 15
    python tools/palette_search.py -n 20 --step 17
"""

from __future__ import annotations

import argparse

import numpy as np

from incseg_lib.data.colours import DISPLAY_COLOURS, VOID_COLOUR, WHITE_BACKGROUND_CLASS, cie_lab, ciede2000_lab


def search(n: int, grid: np.ndarray, fixed: np.ndarray, rounds: int = 30) -> np.ndarray:
    """``n`` rows of ``grid`` (``(m, 3)`` sRGB) maximising the smallest CIEDE2000 difference between
    them and to ``fixed`` (``(k, 3)``: colours every pick must stay away from)."""
    lab = cie_lab(grid)
    to_fixed = ciede2000_lab(lab[:, None], cie_lab(fixed)[None]).min(1)
    picks = [int(np.argmax(to_fixed))]
    nearest = np.minimum(to_fixed, ciede2000_lab(lab, lab[picks[0]]))
    while len(picks) < n:  # farthest point first
        picks.append(int(np.argmax(nearest)))
        nearest = np.minimum(nearest, ciede2000_lab(lab, lab[picks[-1]]))
    for _ in range(rounds):
        moved = False
        for k in range(n):
            others = [p for i, p in enumerate(picks) if i != k]
            d = np.minimum(to_fixed, ciede2000_lab(lab[:, None], lab[others][None]).min(1))
            best = int(np.argmax(d))
            if d[best] > d[picks[k]] + 1e-9:
                picks[k], moved = best, True
        if not moved:
            break
    return grid[picks]


def match_order(pal: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``pal`` reordered so that entry ``i`` is close to ``like[i]`` (greedy: the closest remaining
    pair first), so that a class keeps about its colour when the palette changes, and has about the
    same hue on black and on white."""
    d = ciede2000_lab(cie_lab(like)[:, None], cie_lab(pal)[None])
    out = np.zeros_like(pal)
    for _ in range(len(pal)):
        i, j = np.unravel_index(int(np.argmin(d)), d.shape)
        out[i] = pal[j]
        d[i, :], d[:, j] = np.inf, np.inf
    return out


def report(name: str, pal: np.ndarray, fixed: np.ndarray) -> None:
    lab = cie_lab(pal)
    d = ciede2000_lab(lab[:, None], lab[None])
    np.fill_diagonal(d, np.inf)
    print(
        f"# {name}: min CIEDE2000 between classes {d.min():.1f}, to {fixed.tolist()} "
        f"{ciede2000_lab(lab[:, None], cie_lab(fixed)[None]).min():.1f}, L* {lab[:, 0].min():.0f}-{lab[:, 0].max():.0f}"
    )
    for c in pal:
        print(f"        ({c[0]}, {c[1]}, {c[2]}),")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=20, help="colours per palette")
    p.add_argument("--step", type=int, default=15, help="sRGB grid step (0-255)")
    p.add_argument("--chroma", type=float, default=30, help="smallest chroma C*ab (greys left out)")
    a = p.parse_args()
    axis = np.arange(0, 256, a.step)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    lab = cie_lab(grid)
    dark_bg = np.array([(0, 0, 0), VOID_COLOUR])
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    # L* >= 45: visible on black; chroma >= 30: a class never reads as the greyed image under it
    dark = search(a.n, grid[(lab[:, 0] >= 45) & (chroma >= a.chroma)], dark_bg)
    dark = match_order(dark, DISPLAY_COLOURS[: a.n])  # in class order, each near its current colour
    report("on black", dark, dark_bg)
    white_bg = np.array([(255, 255, 255), WHITE_BACKGROUND_CLASS])
    white = search(a.n, grid[(lab[:, 0] <= 75) & (chroma >= a.chroma)], white_bg)  # L* <= 75: visible on white
    report("on white", match_order(white, dark), white_bg)  # a class about the same hue on both


if __name__ == "__main__":
    main()
