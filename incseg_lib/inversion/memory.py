"""The synthetic memory: synthesised images of the old classes stored once per step t-1 model and
replayed beside step t's images."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.common import IGNORE_INDEX, DatasetInfo, SegmentationDataset, class_id_lut
from ..data.transforms import denormalize
from ..env import show_progress
from ..exemplars import annotated_lut
from ..log import get_logger
from ..store import atomic_write_png, atomic_write_text, read_manifest
from .options import InversionConfig
from .synthesis import image_targets, pseudo_labels, snapshot_iterations, synthesize

log = get_logger(__name__)


# ---------------------------------------------------------------------- the synthetic memory
class SyntheticMemory:
    """Synthetic images of the old classes with pseudo-labels, stored as PNGs plus a manifest.

    Folder layout: ``images/NNNNN.png`` (RGB, de-normalised), ``masks/NNNNN.png`` (dataset class ids
    of the old model's pseudo-labels, 255 unsure), ``manifest.json``: the identity ``key``, the
    :class:`InversionConfig`, the finished batches (targets, seconds, loss curves) and totals. A
    batch is written (images, masks, then the manifest, each atomically) before the next begins, so
    a killed synthesis resumes at the first unfinished batch; a finished memory is reused.

    Args:
        folder: where the memory lives.
        key: what determines it (old checkpoint key + settings); a folder holding another key is an
            error, never silently overwritten.
    """

    def __init__(self, folder: Path, key: dict):
        self.folder = Path(folder)
        self.key = key
        self.manifest_path = self.folder / "manifest.json"
        self.manifest = self._load()

    def _load(self) -> dict:
        manifest = read_manifest(self.manifest_path, "synthetic memory manifest")
        if manifest is None:  # none yet, or corrupt: synthesised from the start
            return {"key": self.key, "batches": [], "complete": False}
        if manifest.get("key") != self.key:
            raise FileExistsError(
                f"{self.manifest_path} belongs to another synthesis (its key differs); "
                "move that folder away or delete it to synthesise again"
            )
        return manifest

    @property
    def complete(self) -> bool:
        return bool(self.manifest.get("complete"))

    def _save(self) -> None:
        atomic_write_text(self.manifest_path, json.dumps(self.manifest, indent=1))

    # Longer than the house limit: one loop over the batches that resumes where a stopped run left
    # off, synthesises, pseudo-labels and writes each batch, then the manifest; the per-batch work
    # itself is in synthesize and the memory's writers.
    def build(
        self,
        model: nn.Module,
        class_ids: list[int],
        out_index: dict[int, int],
        class_order: list[int],
        config: InversionConfig,
        *,
        student: nn.Module | None = None,
        device=None,
        progress: bool = True,
        scales: tuple[float, ...] = (),
    ) -> SyntheticMemory:
        """Synthesise every image not made yet (batch by batch) and write it.

        Args:
            model: the old model (eval mode is set during synthesis).
            class_ids: old foreground classes (dataset ids) to synthesise.
            out_index: dataset class id -> the old model's output index, for every old class.
            class_order: the old model's output index -> dataset class id (pseudo-labels are stored
                as dataset ids).
            config: :class:`InversionConfig`.
            student: the current model, for ADI.
            scales: with scale-aware aggregation and no ``config.scales``, the target fractions
                measured on the real data (:func:`measured_scales`), given to the images in turn.

        Raises:
            ValueError: scale-aware aggregation without any scale.
        """
        from tqdm.auto import tqdm

        targets = image_targets(class_ids, config)
        pool = tuple(config.scales) or tuple(scales)
        if config.scale_aware and not pool:
            raise ValueError("scale-aware synthesis needs target scales: set InversionConfig.scales or pass scales=")
        image_scales = [pool[i % len(pool)] for i in range(len(targets))] if config.scale_aware else []
        fg_ids = list(class_ids)
        fg_outputs = [out_index[c] for c in fg_ids]
        batches = [targets[i : i + config.batch_size] for i in range(0, len(targets), config.batch_size)]
        done = {b["index"] for b in self.manifest["batches"]}
        todo = [k for k in range(len(batches)) if k not in done]
        per_batch = config.iterations_low + config.iterations_full
        (self.folder / "images").mkdir(parents=True, exist_ok=True)
        (self.folder / "masks").mkdir(parents=True, exist_ok=True)
        self.manifest.update(config=config.to_dict(), classes=fg_ids, num_images=len(targets), scales=list(pool))
        if todo and done:
            log.info(f"  synthesis resumed: {len(done)} of {len(batches)} batches already made")
        to_class_id = torch.full((256,), IGNORE_INDEX, dtype=torch.uint8)  # output index -> class id
        to_class_id[: len(class_order)] = torch.as_tensor(class_order, dtype=torch.uint8)
        bar = tqdm(total=len(todo) * per_batch, desc="DeepInversion", unit="it", disable=not show_progress(progress))
        try:
            for k in todo:
                batch = batches[k]
                t = torch.zeros(len(batch), len(fg_ids))
                for row, classes in enumerate(batch):
                    for c in classes:
                        t[row, fg_ids.index(c)] = 1
                g = torch.Generator().manual_seed(config.seed * 100_003 + k)
                shots = snapshot_iterations(config) if k == 0 else ()
                res = synthesize(
                    model,
                    t,
                    fg_outputs,
                    config,
                    student=student,
                    generator=g,
                    device=device,
                    snapshot_at=shots,
                    progress=bar.update,
                    scales=image_scales[k * config.batch_size : (k + 1) * config.batch_size] or None,
                )
                if res.snapshots:  # the first batch at several iterations: how an image emerges
                    self._write_snapshots(res.snapshots)
                names = self._write_batch(k, config, model, res.images, to_class_id)
                hist = res.history
                self.manifest["batches"].append(
                    {
                        "index": k,
                        "names": names,
                        "targets": batch,
                        "seconds": round(res.seconds, 3),
                        "final": hist[-1] if hist else {},
                        "curve": [h for h in hist if h["iteration"] % max(1, per_batch // 50) == 0 or h is hist[-1]],
                    }
                )
                self.manifest["batches"].sort(key=lambda b: b["index"])
                self._save()
        finally:
            bar.close()
        secs = sum(b["seconds"] for b in self.manifest["batches"])
        n = self.manifest["num_images"]
        self.manifest.update(
            complete=True,
            seconds=round(secs, 2),
            seconds_per_image=round(secs / max(n, 1), 3),
            image_iterations_per_second=round(n * per_batch / max(secs, 1e-9), 2),
        )
        self._save()
        return self

    def _write_snapshots(self, snapshots: dict[int, torch.Tensor]) -> None:
        """The first batch at several iterations, one PNG row per iteration (``snapshots/it-N.png``)."""
        from torchvision.utils import make_grid

        (self.folder / "snapshots").mkdir(exist_ok=True)
        files = []
        for i, imgs in sorted(snapshots.items()):
            grid = make_grid(imgs, nrow=len(imgs), padding=2, pad_value=1.0)
            f = self.folder / "snapshots" / f"it-{i:05d}.png"
            atomic_write_png(f, (grid * 255).round().byte().permute(1, 2, 0).numpy())
            files.append({"iteration": i, "file": f"snapshots/{f.name}"})
        self.manifest["snapshots"] = files

    def _write_batch(
        self, k: int, config: InversionConfig, model: nn.Module, images: torch.Tensor, to_class_id: torch.Tensor
    ) -> list[str]:
        """Batch ``k``'s images and the old model's pseudo-labels (dataset ids) as PNGs; their names."""
        labels, _ = pseudo_labels(model, images, config.confidence)
        ids = to_class_id[labels.cpu()]
        rgb = (denormalize(images) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        names = []
        for row in range(len(images)):
            name = f"{k * config.batch_size + row:05d}"
            atomic_write_png(self.folder / "images" / f"{name}.png", rgb[row])
            atomic_write_png(self.folder / "masks" / f"{name}.png", ids[row].numpy())
            names.append(name)
        return names

    # ------------------------------------------------------------------ reading
    @property
    def names(self) -> list[str]:
        return [n for b in self.manifest["batches"] for n in b["names"]]

    @property
    def targets(self) -> list[list[int]]:
        return [t for b in self.manifest["batches"] for t in b["targets"]]

    def __len__(self) -> int:
        return len(self.names)

    def as_dataset(self, info: DatasetInfo) -> SegmentationDataset:
        """The memory as a :class:`SegmentationDataset` of dataset class ids (no task remapping)."""
        names = self.names
        if not names:
            raise ValueError(f"the synthetic memory in {self.folder} is empty; build it first")
        return SegmentationDataset(
            info,
            [f"synthetic-{n}" for n in names],
            [self.folder / "images" / f"{n}.png" for n in names],
            [self.folder / "masks" / f"{n}.png" for n in names],
            class_id_lut(info),
        )

    def dataset(
        self, split, info: DatasetInfo, transforms: Callable | None = None, labels: str = "pseudo"
    ) -> SegmentationDataset:
        """The memory labelled for training at ``split.step``, like an exemplar memory.

        Pseudo-labels keep the old classes they name; their background carries the
        annotated-background code of the old outputs
        (:func:`~incseg_lib.losses.known_background`), so MiB's unbiased cross-entropy merges it
        only with the classes learned since. ``labels="none"``: every pixel 255 (distillation only).
        """

        old = split.old_classes
        if labels not in ("pseudo", "none"):
            raise ValueError(f"labels={labels!r}; choose 'pseudo' or 'none'")
        if labels == "none":
            lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
        else:
            lut = annotated_lut(split.lut_keeping(old), len(old))
        return self.as_dataset(info).with_target_lut(lut).with_transforms(transforms)

    def size_bytes(self) -> int:
        return int(sum((self.folder / d / f"{n}.png").stat().st_size for n in self.names for d in ("images", "masks")))

    def summary(self) -> dict:
        """Images, bytes, synthesis seconds, seconds per image and image-iterations per second."""
        m = self.manifest
        return {
            "images": len(self),
            "bytes": self.size_bytes(),
            "seconds": m.get("seconds"),
            "seconds_per_image": m.get("seconds_per_image"),
            "image_iterations_per_second": m.get("image_iterations_per_second"),
            "folder": str(self.folder),
        }

    def loss_curves(self) -> list[dict]:
        """Every stored loss-curve point of every batch, with its ``batch`` index (for plots)."""
        return [{**h, "batch": b["index"]} for b in self.manifest["batches"] for h in b["curve"]]
