"""Datasets: layouts, bad input messages, the shapes generator, transforms, downloads, resizing."""

import hashlib
import http.server
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from incseg_lib.data import DatasetError, camvid_dataset, ensure_shapes, load_dataset, resize_voc, voc_dataset
from incseg_lib.data.download import DownloadError, download
from incseg_lib.data.transforms import centre_crop_transforms, train_transforms
from tests.conftest import write_voc


def test_missing_folder_names_path_and_command(tmp_path):
    with pytest.raises(DatasetError, match=f"{tmp_path}.*incseg data voc --root"):
        voc_dataset(tmp_path / "nothing", "train")
    with pytest.raises(DatasetError, match="incseg data camvid --root"):
        camvid_dataset(tmp_path, "train")


def test_bad_mask_value_names_file_and_value(tmp_path):
    write_voc(tmp_path, {"ok": np.zeros((8, 8)), "bad": np.full((8, 8), 42)})
    ds = voc_dataset(tmp_path, "train")
    ds[0]
    with pytest.raises(DatasetError, match=r"bad\.png holds value\(s\) \[42\].*0..20 and 255"):
        ds[1]


def test_size_mismatch_names_file(tmp_path):
    voc = write_voc(tmp_path, {"a": np.zeros((8, 8))})
    Image.fromarray(np.zeros((9, 8, 3), np.uint8)).save(voc / "JPEGImages" / "a.jpg")
    with pytest.raises(DatasetError, match=r"a\.jpg is \(9, 8\).*a\.png is \(8, 8\)"):
        voc_dataset(tmp_path, "train")[0]


def test_shapes_made_once_when_processes_start_together(tmp_path):
    """A second process waits for the one making the dataset and reuses it, never replaces it.

    Before the lock, two torchrun ranks on a fresh INCSEG_HOME each drew the dataset and the later
    one deleted and replaced the folder the first was already checking ("384 of 400 shapes images
    are unusable"). Here this test holds the lock, the other process must wait and then find the
    dataset this test wrote: same folder (inode), not a new one.
    """
    import subprocess
    import sys

    from incseg_lib.data.shapes import SHAPES_VERSION, _write_shapes
    from incseg_lib.store import checkpoint_lock

    root = tmp_path / "shapes"
    sizes = dict(n_train=4, n_val=2, size=32, seed=0)
    code = f"from incseg_lib.data import ensure_shapes; ensure_shapes({str(root)!r}, n_train=4, n_val=2, size=32)"
    with checkpoint_lock(root.with_name(".shapes")):
        other = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        said = other.stdout.readline()  # blocks until the other process reports that it waits
        assert "waiting for another process" in said, said
        _write_shapes(root, {"version": SHAPES_VERSION, **sizes})
        made = root.stat().st_ino
    assert other.wait(timeout=60) == 0, other.stdout.read()
    assert root.stat().st_ino == made  # reused, not drawn again and swapped in
    assert len(voc_dataset(root, "train")) == 4


def test_shapes_is_deterministic_and_voc_shaped(tmp_path):
    a = ensure_shapes(tmp_path / "a", n_train=6, n_val=2, size=48)
    b = ensure_shapes(tmp_path / "b", n_train=6, n_val=2, size=48)
    for name in ("train_00000", "train_00005"):
        ma = np.asarray(Image.open(a / "VOCdevkit/VOC2012/SegmentationClass" / f"{name}.png"))
        mb = np.asarray(Image.open(b / "VOCdevkit/VOC2012/SegmentationClass" / f"{name}.png"))
        assert np.array_equal(ma, mb)
        assert set(np.unique(ma)) <= set(range(21)) | {255}
    ds = voc_dataset(a, "train")
    assert len(ds) == 6 and len(voc_dataset(a, "val")) == 2


def test_shapes_classes_do_not_share_a_colour():
    """Version 2: bright (1-10) and dark (11-20) families do not overlap in brightness even with the
    stripes' +-12%, and hues within a family are 36 degrees apart (version 1 put neighbours 18 apart)."""
    import colorsys

    from incseg_lib.data.shapes import STRIPE_AMPLITUDE, _class_colour

    assert STRIPE_AMPLITUDE == 0.12
    hsv = [colorsys.rgb_to_hsv(*_class_colour(k)) for k in range(1, 21)]
    bright_min = min(v for _, _, v in hsv[:10]) * (1 - STRIPE_AMPLITUDE)
    dark_max = max(v for _, _, v in hsv[10:]) * (1 + STRIPE_AMPLITUDE)
    assert dark_max < bright_min - 0.2
    for family in (hsv[:10], hsv[10:]):
        hues = sorted(h for h, _, _ in family)
        gaps = np.diff(hues + [hues[0] + 1])
        assert np.allclose(gaps, 0.1, atol=1e-6)


def test_shapes_has_cooccurring_classes(shapes_root):
    ds = load_dataset("shapes", "train", root=shapes_root)
    P = ds.class_presence()
    assert P[:, 1:].any(0).all()  # every class appears
    assert (P[:, 1:].sum(1) >= 2).mean() > 0.3  # many images hold several classes: background shift is real


def test_camvid_ids(tmp_path):
    cam = tmp_path / "CamVid"
    for d in ("train", "trainannot"):
        (cam / d).mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(cam / "train" / "f1.png")
    Image.fromarray(np.array([[0, 10, 11, 3]] * 4, np.uint8)).save(cam / "trainannot" / "f1.png")
    (cam / "train.txt").write_text("/SegNet/CamVid/train/f1.png /SegNet/CamVid/trainannot/f1.png\n")
    assert camvid_dataset(tmp_path, "train")[0][1][0].tolist() == [0, 10, 255, 3]
    assert camvid_dataset(tmp_path, "train", background=True)[0][1][0].tolist() == [1, 11, 255, 4]
    Image.fromarray(np.full((4, 4), 12, np.uint8)).save(cam / "trainannot" / "f1.png")
    with pytest.raises(DatasetError, match=r"f1\.png holds value\(s\) \[12\]"):
        camvid_dataset(tmp_path, "train")[0]


def test_train_transform_shapes_and_ignore_padding(shapes_root):
    torch.manual_seed(0)
    ds = load_dataset("shapes", "train", root=shapes_root, transforms=train_transforms(120, (1.0, 1.0)))
    x, y = ds[0]  # 80 px image in a 120 crop: the mask padding must be 255, never background
    assert x.shape == (3, 120, 120) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert (y == 255).sum() >= 120 * 120 - 80 * 80
    x, y = load_dataset("shapes", "val", root=shapes_root, transforms=centre_crop_transforms(64))[0]
    assert x.shape == (3, 64, 64) and y.shape == (64, 64)


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves one payload with Range support; can cut the first response short."""

    payload = b""
    cut_first = False

    def log_message(self, *a):
        pass

    def do_GET(self):
        data, start = self.payload, 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if type(self).cut_first:
            type(self).cut_first = False
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()


def test_download_resumes_and_verifies(server, tmp_path):
    payload = bytes(range(256)) * 4000
    _RangeHandler.payload, _RangeHandler.cut_first = payload, True
    url = f"http://127.0.0.1:{server.server_address[1]}/data.bin"
    dest = tmp_path / "data.bin"
    md5 = hashlib.md5(payload).hexdigest()
    with pytest.raises(DownloadError, match="re-run"):
        download(url, dest, md5=md5, progress=False)
    part = dest.with_name("data.bin.part")
    assert 0 < part.stat().st_size < len(payload)
    download(url, dest, md5=md5, progress=False)  # resumes with a Range request
    assert dest.read_bytes() == payload and not part.exists()
    with pytest.raises(DownloadError, match="checksum"):
        download(url, tmp_path / "other.bin", md5="0" * 32, progress=False)
    assert not (tmp_path / "other.bin").exists() and not (tmp_path / "other.bin.part").exists()


def test_resize_voc_keeps_ignore_and_layout(tmp_path):
    m = np.zeros((40, 60), np.uint8)
    m[10:30, 10:30] = 8
    m[9, 10:30] = 255
    write_voc(tmp_path / "src", {"x": m}, size=(40, 60))
    out = resize_voc(tmp_path / "src", tmp_path / "dst", 20, progress=False)
    img = Image.open(out / "JPEGImages" / "x.jpg")
    mask = np.asarray(Image.open(out / "SegmentationClass" / "x.png"))
    assert img.size == (30, 20) and mask.shape == (20, 30)
    assert set(np.unique(mask)) <= {0, 8, 255} and 255 in mask and 8 in mask
    assert (out / "ImageSets" / "Segmentation" / "train.txt").read_text() == "x\n"
    assert len(voc_dataset(tmp_path / "dst", "train")) == 1


def test_shapes_never_deletes_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="not an incseg shapes dataset"):
        ensure_shapes(tmp_path / "mine", n_train=2, n_val=1, size=32)
    assert (tmp_path / "mine" / "thesis.txt").read_text() == "keep me"


def test_data_check_names_a_truncated_jpeg_and_a_missing_file_up_front(tmp_path):
    import numpy as np

    from incseg_lib.data import DatasetError, voc_dataset
    from tests.conftest import write_voc

    voc = write_voc(tmp_path / "v", {"a": np.zeros((8, 8)), "b": np.ones((8, 8)), "c": np.zeros((8, 8))})
    ds = voc_dataset(tmp_path / "v", "train")
    assert ds.check(tmp_path / "cache", progress=False) == 3
    assert ds.check(tmp_path / "cache", progress=False) == 0  # cached: a look-up the second time
    jpg = voc / "JPEGImages" / "b.jpg"
    jpg.write_bytes(jpg.read_bytes()[:40])  # truncated
    (voc / "SegmentationClass" / "c.png").unlink()
    ds = voc_dataset(tmp_path / "v", "train")
    with pytest.raises(
        DatasetError,
        match=r"2 of 3 voc images are unusable:\n  .*b\.jpg cannot be decoded.*\n  .*c\.png does not exist",
    ):
        ds.check(tmp_path / "cache", progress=False)
    with pytest.raises(DatasetError, match="b.jpg cannot be decoded"):
        ds.read_image(1)


def test_missing_voc_is_fetched_only_when_asked(tmp_path, monkeypatch):
    """On Colab (or with INCSEG_FETCH=1) a missing VOC is downloaded from its official archive,
    md5-checked; elsewhere the error names the fetch command. A local file:// archive stands in
    for the network."""
    import tarfile

    from incseg_lib.data import voc
    from incseg_lib.env import auto_fetch

    src = tmp_path / "src"
    write_voc(src, {"2007_000032": np.ones((8, 8), np.uint8)}, split="val")
    tar_path = tmp_path / "VOCtrainval_11-May-2012.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(src / "VOCdevkit", arcname="VOCdevkit")
    monkeypatch.setattr(voc, "VOC_URL", tar_path.as_uri())
    monkeypatch.setattr(voc, "VOC_MD5", hashlib.md5(tar_path.read_bytes()).hexdigest())
    root = tmp_path / "home" / "voc"

    monkeypatch.setenv("INCSEG_FETCH", "0")
    assert not auto_fetch()
    with pytest.raises(DatasetError, match="incseg data voc"):
        load_dataset("voc", "val", root=root)
    assert not root.exists()

    monkeypatch.setenv("INCSEG_FETCH", "maybe")
    with pytest.raises(ValueError, match="INCSEG_FETCH"):
        load_dataset("voc", "val", root=root)

    monkeypatch.setenv("INCSEG_FETCH", "1")
    ds = load_dataset("voc", "val", root=root)
    assert len(ds) == 1 and int(ds[0][1].max()) == 1
    assert (root / "archives" / "VOCtrainval_11-May-2012.tar").is_file()

    monkeypatch.setattr(voc, "VOC_MD5", "0" * 32)  # a corrupted archive is refused, naming the URL
    with pytest.raises(DownloadError, match="checksum"):
        load_dataset("voc", "val", root=tmp_path / "other")


def test_colab_is_detected_by_its_module(tmp_path, monkeypatch):
    import sys

    from incseg_lib.env import auto_fetch, on_colab

    monkeypatch.delenv("INCSEG_FETCH", raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert not on_colab() and not auto_fetch()
    stand_in = tmp_path / "colab_stub" / "google" / "colab"
    stand_in.mkdir(parents=True)
    (stand_in / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "colab_stub"))
    import importlib

    importlib.invalidate_caches()
    assert on_colab() and auto_fetch()


def test_a_checked_dataset_reads_without_per_file_checks_and_views_of_other_files_check_again(tmp_path):
    """After a passing check() reads skip the per-read checks (decoding and mapping only); a view with
    other mask files (e.g. pseudo-labels) is checked on read again."""
    voc = write_voc(tmp_path, {"a": np.ones((8, 8), np.uint8), "b": np.zeros((8, 8), np.uint8)})
    ds = voc_dataset(voc.parents[1], "train")
    assert not ds.verified
    ds.check(tmp_path / "cache", progress=False)
    assert ds.verified and ds.subset([1]).verified
    img, mask = ds[0]
    assert int(mask.max()) == 1 and tuple(img.shape) == (3, 8, 8)
    bad = tmp_path / "bad.png"
    Image.fromarray(np.full((8, 8), 77, np.uint8)).save(bad)
    other = ds._view(mask_paths=[bad, bad])
    assert not other.verified
    with pytest.raises(DatasetError, match="bad.png holds value"):
        other[0]
    again = voc_dataset(voc.parents[1], "train")
    assert again.check(tmp_path / "cache", progress=False) == 0 and again.verified  # cached stamp
