"""Figure colours: every class is told apart from background, void and every other class, on black
and on white (CIEDE2000)."""

import numpy as np
import pytest

from incseg_lib.data import dataset_info
from incseg_lib.data.colours import WHITE_BACKGROUND_CLASS, ciede2000, ciede2000_lab, min_pairwise
from incseg_lib.data.common import DISPLAY_COLOURS, VOID_COLOUR, DatasetInfo, cie_lab, colour_distance

# The smallest CIEDE2000 difference the palettes keep between two classes, and from what they are
# drawn on: 20 reads as two unrelated colours at a glance (1 is just noticeable).
MIN_DE00 = 20.0


def test_colour_distance_matches_known_lab_values():
    # sRGB red is L*53.24 a*80.09 b*67.20 (D65): its distance from black is that vector's length
    assert colour_distance((255, 0, 0), (0, 0, 0)) == pytest.approx(np.sqrt(53.24**2 + 80.09**2 + 67.20**2), abs=0.1)
    assert colour_distance((255, 255, 255), (0, 0, 0)) == pytest.approx(100.0, abs=0.1)
    assert colour_distance((10, 20, 30), (10, 20, 30)) == 0


def test_ciede2000_matches_sharma_wu_dalal_test_data():
    # Table 1 of Sharma, Wu & Dalal (2005): pairs chosen to exercise every branch (hue wrap-around,
    # the blue region's rotation term, near-neutral colours, a colour against grey)
    pairs = [
        ((50, 2.6772, -79.7751), (50, 0, -82.7485), 2.0425),
        ((50, 0, 0), (50, -1, 2), 2.3669),
        ((50, 2.49, -0.001), (50, -2.49, 0.0009), 7.1792),
        ((50, 2.49, -0.001), (50, -2.49, 0.0011), 7.2195),
        ((50, 2.5, 0), (50, 0, -2.5), 4.3065),
        ((50, 2.5, 0), (73, 25, -18), 27.1492),
        ((50, 2.5, 0), (56, -27, -3), 31.9030),
        ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
        ((2.0776, 0.0795, -1.135), (0.9033, -0.0636, -0.5514), 0.9082),
    ]
    lab1, lab2, want = (np.array([p[k] for p in pairs], float) for k in range(3))
    assert ciede2000_lab(lab1, lab2) == pytest.approx(want, abs=1e-4)
    assert ciede2000_lab(lab2, lab1) == pytest.approx(want, abs=1e-4)  # symmetric
    assert ciede2000((10, 20, 30), (10, 20, 30)) == 0


def test_cie76_passed_pairs_that_ciede2000_finds_close():
    # the CIE76-chosen palette this one replaced: two blues 33 apart in CIE76, 8.4 in CIEDE2000
    a, b = (30, 144, 255), (70, 130, 180)
    assert colour_distance(a, b) > 25 and ciede2000(a, b) < 9


@pytest.mark.parametrize("name", ["voc", "shapes", "camvid"])
def test_display_palette_keeps_every_class_apart_from_background_void_and_each_other(name):
    info = dataset_info(name)
    pal = info.display_palette
    assert pal.shape == (info.num_classes, 3) and pal.dtype == np.uint8
    if info.has_background:
        assert (pal[0] == 0).all()  # background black, as in every figure
    classes = pal[int(info.has_background) :]
    assert cie_lab(classes)[:, 0].min() >= 45, f"{name}: a class is too dark to see on the black background"
    d, pair = min_pairwise(np.concatenate([classes, np.array([(0, 0, 0), VOID_COLOUR], np.uint8)]))
    assert d >= MIN_DE00, f"{name}: colours {pair} (classes, then black and void) are {d:.1f} apart"


@pytest.mark.parametrize("name", ["voc", "shapes", "camvid"])
def test_white_palette_keeps_every_class_apart_from_white_the_background_mark_and_each_other(name):
    info = dataset_info(name)
    pal = info.white_palette
    assert pal.shape == (info.num_classes, 3) and pal.dtype == np.uint8
    if info.has_background:
        assert tuple(pal[0]) == WHITE_BACKGROUND_CLASS
    classes = pal[int(info.has_background) :]
    d, pair = min_pairwise(np.concatenate([classes, np.array([(255, 255, 255), WHITE_BACKGROUND_CLASS], np.uint8)]))
    assert d >= MIN_DE00, f"{name}: colours {pair} (classes, then white and the background mark) are {d:.1f} apart"


def test_the_datasets_own_maps_would_fail_the_same_check():
    # VOC's (0, 64, 0) is the reviewer's nearly-black class: the check above is not vacuous
    assert cie_lab((0, 64, 0))[0] < 45
    voc = dataset_info("voc").palette
    d = colour_distance(voc[:, None], voc[None])
    np.fill_diagonal(d, np.inf)
    assert d.min() < 25


def test_one_class_has_one_colour_in_every_class_space():
    camvid = dataset_info("camvid", incremental=False)
    incremental = dataset_info("camvid")
    assert incremental.class_names[1:] == camvid.class_names
    assert (incremental.display_palette[1:] == camvid.display_palette).all()
    too_many = DatasetInfo("x", tuple(str(i) for i in range(len(DISPLAY_COLOURS) + 2)), camvid.palette, False)
    with pytest.raises(ValueError, match="display colours"):
        _ = too_many.display_palette
