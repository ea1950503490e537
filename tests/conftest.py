import logging
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("INCSEG_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session", autouse=True)
def isolated_home(tmp_path_factory):
    """Keep generated data and checkpoints of the tests out of the repository."""
    home = tmp_path_factory.mktemp("incseg_home")
    old = os.environ.get("INCSEG_HOME")
    os.environ["INCSEG_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("INCSEG_HOME", None)
    else:
        os.environ["INCSEG_HOME"] = old


@pytest.fixture(scope="session")
def shapes_root(isolated_home):
    from incseg_lib.data import ensure_shapes

    return ensure_shapes(isolated_home / "data" / "shapes")


@pytest.fixture
def tiny_cfg(tmp_path, shapes_root):
    """``tiny_cfg(**overrides) -> RunConfig``: the smoke profile on the embedded shapes, 15-5, one
    epoch of 32-pixel crops over at most 40 training and 4 validation images, with its run folder
    (``tmp_path``) and checkpoints (``tmp_path / "ckpt"``) in the test's folder; ``overrides``
    replace any of these."""
    from incseg_lib.config import RunConfig

    def make(**overrides):
        values = dict(
            task="15-5",
            epochs=1,
            crop_size=32,
            max_train_images=40,
            max_val_images=4,
            run_dir=str(tmp_path),
            checkpoint_dir=str(tmp_path / "ckpt"),
            data_root=str(shapes_root),
        )
        return RunConfig.from_profile("smoke", **{**values, **overrides})

    return make


def shared(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real data {path} is absent (../shared/data beside the repository)")
    return path


def write_voc(root: Path, masks: dict, size=(8, 8), split="train"):
    """A tiny VOC-layout folder: ``masks`` maps id -> (H, W) uint8 array."""
    import numpy as np
    from PIL import Image

    voc = root / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / d).mkdir(parents=True, exist_ok=True)
    for i, m in masks.items():
        m = np.asarray(m, np.uint8)
        Image.fromarray(np.zeros((*size, 3), np.uint8)).save(voc / "JPEGImages" / f"{i}.jpg")
        Image.fromarray(m).save(voc / "SegmentationClass" / f"{i}.png")
    (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(masks) + "\n")
    return voc


@pytest.fixture
def said():
    """The library's messages (``incseg_lib`` loggers, INFO and above) during the test, one string each."""
    lines: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler, lib = _Keep(logging.INFO), logging.getLogger("incseg_lib")
    lib.addHandler(handler)
    yield lines
    lib.removeHandler(handler)
