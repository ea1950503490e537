"""Does SEAM's classifier learn the new classes? A diagnostic for notebook 05's demo.

Trains :class:`incseg_lib.seam.SeamNet` on the demo's 15-5 overlapped step-1 images (shapes,
image-level labels of the five new classes; the ResNet copied from the demo's step-0 BiSeNet,
trained first if missing) and prints one JSON line per run: the training loss per epoch, how often
the image-level label is predicted right from the pooled CAM (``label_acc``; predicting each
class's frequency scores ``freq_acc``) and how often each present class's CAM maximum falls on a
pixel of that class (``peak_on_class``), on the same 180 images at full size; with ``--pseudo``
also the pseudo-labels' quality (mIoU % and new-class mIoU % against the masks, CAM / PCM /
chance, SEAM's inference settings of the demo; made in a temporary folder)::

    python benchmarks/seam_classifier.py                        # SEAM's loss, demo settings
    python benchmarks/seam_classifier.py --loss cls --pseudo    # L_cls alone (the CAM baseline)
    python benchmarks/seam_classifier.py --warmup 12 --epochs 16  # L_cls for 12 epochs, then SEAM's
    python benchmarks/seam_classifier.py --train-bn --pseudo    # BatchNorm trained (before the fix)

Nothing is written to the project's checkpoints but the demo's step-0 model (shared with notebook 02).
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np
import torch

logging.getLogger("incseg_lib").setLevel(logging.WARNING)  # the figures only, not each step's lines


def main() -> None:
    from incseg_lib.config import RunConfig
    from incseg_lib.data.transforms import eval_transforms, train_transforms
    from incseg_lib.engine import Hooks, Schedule, fit
    from incseg_lib.experiment import base_datasets, step_image_labels, train_step, weak_config
    from incseg_lib.seam import ImageLabelDataset, SeamNet, seam_loss
    from incseg_lib.tasks import IncrementalSplit

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--loss", choices=("seam", "cls"), default="seam", help="SEAM's L_cls + L_ER + L_ECR, or L_cls alone"
    )
    ap.add_argument("--warmup", type=int, default=0, help="epochs of L_cls alone before SEAM's loss")
    ap.add_argument("--epochs", type=int, default=0, help="SEAM epochs (0: the demo profile's, 8)")
    ap.add_argument("--lr", type=float, default=0.0, help="SEAM learning rate (0: SEAM's 0.01)")
    ap.add_argument(
        "--train-bn",
        action="store_true",
        help="train the backbone's BatchNorm (before the fix; SEAM's code freezes it)",
    )
    ap.add_argument("--pseudo", action="store_true", help="also make the pseudo-labels and report their quality")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = RunConfig.from_profile("demo").replace(task="15-5", setting="overlapped")
    seam = weak_config(cfg, epochs=args.epochs or None, lr=args.lr or None, freeze_bn=False if args.train_bn else None)
    split = IncrementalSplit(cfg.dataset, "15-5", 1, "overlapped")
    train_base, _ = base_datasets(cfg, split)
    step0 = train_step(cfg, step=0, method="mib", record=False, evaluate_now=False, progress=False).model
    idx, new, labels = step_image_labels(cfg, split, train_base)
    torch.manual_seed(seam.seed)
    model = SeamNet(len(new), seam.backbone, seam.output_stride, freeze_bn=seam.bn_frozen)
    model.backbone.load_state_dict(step0.context_path.backbone.state_dict())
    data = ImageLabelDataset(
        train_base.subset(idx).with_transforms(train_transforms(seam.crop_size, seam.scale_range)), labels
    )
    iters_per_epoch = -(-len(data) // seam.batch_size)
    seen = [0]

    def loss_fn(m, x, y, out):
        seen[0] += 1
        d = seam_loss(m, x, y, out, seam)
        if args.loss == "cls" or seen[0] <= args.warmup * iters_per_epoch:
            d = dict(d, loss=d["cls"])
        return d

    t0 = time.perf_counter()
    hist = fit(
        model,
        data,
        Schedule(seam.epochs, seam.batch_size, seam.lr, momentum=0.9, weight_decay=seam.weight_decay, seed=seam.seed),
        hooks=Hooks(loss_fn=loss_fn),
        progress=False,
    )
    seconds = time.perf_counter() - t0
    images = train_base.subset(idx).with_transforms(eval_transforms())
    model.eval()
    pooled, hits = [], []
    with torch.no_grad():
        for i in range(len(images)):
            x, mask = images[i]
            cam = model(x[None])["cam"][0, 1:]
            pooled.append(cam.mean((1, 2)))
            for k in np.flatnonzero(labels[i]):
                hits.append(int(mask.flatten()[cam[k].flatten().argmax()] == new[k]))
    quality = None
    if args.pseudo:
        import tempfile

        from incseg_lib.seam import PseudoLabels

        with tempfile.TemporaryDirectory() as tmp:
            q = PseudoLabels(tmp, {}).build(model, train_base.subset(idx), labels, new, seam, progress=False).quality()
            quality = {k: [v["miou"], v["miou_new"]] for k, v in q.items()}
    y = torch.as_tensor(np.asarray(labels), dtype=torch.float32)
    freq = y.mean(0)
    print(
        json.dumps(
            {
                "benchmark": "seam_classifier",
                "loss": args.loss,
                "warmup": args.warmup,
                "epochs": seam.epochs,
                "lr": seam.lr,
                "images": len(data),
                "train_loss": [round(v, 3) for v in hist["loss"]],
                "label_acc": round(((torch.stack(pooled) > 0).float() == y).float().mean().item(), 3),
                "freq_acc": round(torch.maximum(freq, 1 - freq).mean().item(), 3),
                "peak_on_class": round(float(np.mean(hits)), 3),
                "pseudo_quality": quality,
                "freeze_bn": model.freeze_bn,
                "train_seconds": round(seconds),
                "threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
