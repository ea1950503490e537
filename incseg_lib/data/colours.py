"""Class colours for figures, and the colour differences that choose and check them.

Two palettes, one per kind of background:

* :data:`DISPLAY_COLOURS` for masks drawn on black (background is class 0, drawn black): every
  colour light enough to see on black and far from void's cream.
* :data:`WHITE_COLOURS` for marks drawn on white (scatter points, lines, bars keyed by class):
  every colour dark or saturated enough to see on white; background is drawn dark grey.

Both are checked with CIEDE2000 (:func:`ciede2000`), the CIE's current colour difference, which
corrects CIE76's overweighting of saturated colours (two saturated greens 25 apart in CIE76 can
be 9 apart in CIEDE2000, and look it). The colours were found by ``tools/palette_search.py``
(max-min CIEDE2000 over the sRGB cube under the constraints above); the tests state the minima.
"""

from __future__ import annotations

import numpy as np


def cie_lab(rgb) -> np.ndarray:
    """sRGB (``(..., 3)`` uint8 or 0-255 numbers, D65) -> CIELAB ``(..., 3)`` (L* 0-100)."""
    c = np.asarray(rgb, dtype=np.float64) / 255
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = c @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def colour_distance(a, b) -> np.ndarray:
    """CIE76 colour difference Delta E*ab between sRGB colours ``a`` and ``b`` (broadcast ``(..., 3)``):
    the Euclidean distance in CIELAB."""
    return np.linalg.norm(cie_lab(a) - cie_lab(b), axis=-1)


def ciede2000_lab(lab1, lab2) -> np.ndarray:
    """CIEDE2000 colour difference Delta E00 between CIELAB colours (broadcast ``(..., 3)``), with
    the reference conditions' weights k_L = k_C = k_H = 1.

    About 1 is just noticeable; flat patches 10 apart are told apart at a glance, 20 apart read as
    unrelated colours. Source: G. Sharma, W. Wu, E. N. Dalal, "The CIEDE2000 color-difference
    formula: implementation notes, supplementary test data, and mathematical observations", Color
    Research & Application 30(1), 2005, equations (1)-(22); the test checks their Table 1 pairs.
    """
    lab1, lab2 = np.asarray(lab1, np.float64), np.asarray(lab2, np.float64)
    L1, a1, b1 = np.moveaxis(lab1, -1, 0)
    L2, a2, b2 = np.moveaxis(lab2, -1, 0)
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))  # eq. (4)
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.where((a1p == 0) & (b1 == 0), 0.0, np.degrees(np.arctan2(b1, a1p)) % 360)  # eq. (7)
    h2p = np.where((a2p == 0) & (b2 == 0), 0.0, np.degrees(np.arctan2(b2, a2p)) % 360)
    dLp, dCp = L2 - L1, c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))  # eq. (10)
    dh = np.where(c1p * c2p == 0, 0.0, dh)
    dHp = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    Lp_bar, Cp_bar = (L1 + L2) / 2, (c1p + c2p) / 2
    h_sum = h1p + h2p
    hp_bar = np.where(
        c1p * c2p == 0,
        h_sum,
        np.where(np.abs(h1p - h2p) <= 180, h_sum / 2, np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2)),
    )  # eq. (14)
    t = (
        1
        - 0.17 * np.cos(np.radians(hp_bar - 30))
        + 0.24 * np.cos(np.radians(2 * hp_bar))
        + 0.32 * np.cos(np.radians(3 * hp_bar + 6))
        - 0.20 * np.cos(np.radians(4 * hp_bar - 63))
    )
    d_theta = 30 * np.exp(-(((hp_bar - 275) / 25) ** 2))
    r_c = 2 * np.sqrt(Cp_bar**7 / (Cp_bar**7 + 25.0**7))
    s_l = 1 + 0.015 * (Lp_bar - 50) ** 2 / np.sqrt(20 + (Lp_bar - 50) ** 2)
    s_c = 1 + 0.045 * Cp_bar
    s_h = 1 + 0.015 * Cp_bar * t
    r_t = -np.sin(np.radians(2 * d_theta)) * r_c
    return np.sqrt((dLp / s_l) ** 2 + (dCp / s_c) ** 2 + (dHp / s_h) ** 2 + r_t * (dCp / s_c) * (dHp / s_h))


def ciede2000(a, b) -> np.ndarray:
    """CIEDE2000 colour difference between sRGB colours ``a`` and ``b`` (``(..., 3)``, 0-255, broadcast);
    see :func:`ciede2000_lab`."""
    return ciede2000_lab(cie_lab(a), cie_lab(b))


def min_pairwise(colours, difference=ciede2000) -> tuple[float, tuple[int, int]]:
    """The smallest difference between two of ``colours`` (``(n, 3)`` sRGB) and the pair's indices."""
    c = np.asarray(colours)
    d = difference(c[:, None], c[None])
    np.fill_diagonal(d, np.inf)
    i, j = np.unravel_index(int(np.argmin(d)), d.shape)
    return float(d[i, j]), (int(i), int(j))


# Classes on black, in class-id order (background, id 0, is black itself). Min CIEDE2000 between two
# classes 20.2, to black or void 20.7; L* 45-92, chroma >= 30 (``tools/palette_search.py``; the
# CIE76-chosen palette before it had pairs 8.4 apart in CIEDE2000).
DISPLAY_COLOURS = np.array(
    [
        (255, 180, 165),
        (165, 90, 75),
        (105, 150, 255),
        (135, 255, 210),
        (195, 180, 0),
        (45, 120, 90),
        (0, 195, 75),
        (255, 135, 195),
        (225, 30, 255),
        (75, 210, 255),
        (210, 195, 255),
        (255, 90, 0),
        (0, 180, 165),
        (180, 255, 0),
        (120, 105, 165),
        (0, 135, 165),
        (195, 45, 120),
        (255, 165, 45),
        (105, 135, 15),
        (150, 105, 0),
    ],
    dtype=np.uint8,
)
# Classes as marks on white, in class-id order. Min CIEDE2000 between two classes 21.6, to white or
# the background mark 23.5; L* 9-74, chroma >= 30.
WHITE_COLOURS = np.array(
    [
        (240, 165, 120),
        (135, 0, 0),
        (0, 150, 240),
        (150, 0, 120),
        (210, 180, 0),
        (0, 120, 105),
        (0, 210, 60),
        (255, 150, 180),
        (240, 15, 225),
        (0, 30, 90),
        (195, 165, 255),
        (255, 45, 0),
        (90, 195, 195),
        (60, 0, 30),
        (120, 105, 165),
        (45, 15, 255),
        (225, 15, 90),
        (0, 60, 0),
        (105, 120, 0),
        (150, 90, 0),
    ],
    dtype=np.uint8,
)
VOID_COLOUR = (224, 224, 192)  # VOC's cream for void (255)
WHITE_BACKGROUND_CLASS = (64, 64, 64)  # background as a mark on white (dark grey: black is text's colour)
