"""Figure colours: every class is told apart from background, void and every other class."""

import numpy as np
import pytest

from incseg_lib.data import dataset_info
from incseg_lib.data.common import DISPLAY_COLOURS, VOID_COLOUR, DatasetInfo, cie_lab, colour_distance


def test_colour_distance_matches_known_lab_values():
    # sRGB red is L*53.24 a*80.09 b*67.20 (D65): its distance from black is that vector's length
    assert colour_distance((255, 0, 0), (0, 0, 0)) == pytest.approx(np.sqrt(53.24**2 + 80.09**2 + 67.20**2), abs=0.1)
    assert colour_distance((255, 255, 255), (0, 0, 0)) == pytest.approx(100.0, abs=0.1)
    assert colour_distance((10, 20, 30), (10, 20, 30)) == 0


@pytest.mark.parametrize("name", ["voc", "shapes", "camvid"])
def test_display_palette_keeps_every_class_apart_from_background_void_and_each_other(name):
    info = dataset_info(name)
    pal = info.display_palette
    assert pal.shape == (info.num_classes, 3) and pal.dtype == np.uint8
    if info.has_background:
        assert (pal[0] == 0).all()  # background black, as in every figure
    classes = pal[int(info.has_background) :]
    assert cie_lab(classes)[:, 0].min() >= 45, f"{name}: a class is too dark to see on the black background"
    colours = np.concatenate([classes, np.array([VOID_COLOUR], np.uint8)])
    d = colour_distance(colours[:, None], colours[None])
    np.fill_diagonal(d, np.inf)
    assert d.min() >= 25, f"{name}: two classes {np.unravel_index(d.argmin(), d.shape)} are {d.min():.1f} apart"


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
