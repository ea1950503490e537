"""The course's profiles: how big each run is, per profile, and what each notebook's plan trains.

A :class:`~incseg_lib.config.RunConfig` says what determines a run (its identity: data, model,
schedule, method protocol); this module sizes the course: the values each profile gives it
(:data:`PROFILE_VALUES`, with each dataset's own sizes in its
:class:`~incseg_lib.data.registry.DatasetSpec`), and the sizes of notebook 04's DeepInversion and
notebook 05's SEAM. ``README.md`` ("Profiles") says what each is for.
"""

from __future__ import annotations

from typing import Any

PROFILES = ("demo", "smoke", "cpu", "colab", "paper")

#: What each profile sets in :class:`~incseg_lib.config.RunConfig`, notebooks' plans included.
PROFILE_VALUES: dict[str, dict[str, Any]] = {
    # The default run: the embedded shapes, sized so the models learn within minutes on 2 CPU cores
    # and every lesson shows beyond its run-to-run noise (incseg_lib/calibration/demo-shapes.json:
    # each finding's gap over seeds and thread counts; docs/results.md). Every step after step 0 runs
    # at its method's official protocol: a tenth of step 0's learning rate, losses averaged over every
    # pixel (MiB's, PLOP's and SDR's scripts and train.py; methods/base.py StepProtocol), for 8 epochs
    # (their scripts train every step as long as step 0, 30 epochs on VOC; the demo's step 0 trains
    # longer only because it starts from scratch, see below): at 4 epochs a tenth of the rate
    # barely teaches 15-5's new shapes (MiB new 15.8 against 29.0 at 8; docs/results.md, "The
    # protocol study"). PLOP and SDR run on 10-1: on the shapes MiB hardly forgets over 15-1's five
    # one-class steps (76 of step 0's 80 old-class mIoU), over 10-1's ten it does (58 of 81), and a
    # method that keeps features can only show where MiB forgets. Notebook 03 replays on 15-1; one
    # exemplar per class already restores the old shapes, so a larger memory keeping more is not
    # claimed (size_effect False). Step 0 (and the offline and Joint models, trained like it) runs
    # 16 epochs: from scratch, 8 epochs stop before the plateau, and where they stop moves with the
    # thread count (seed 0: 82.0 at 1 thread, 74.6 at 2); at 16 every seed is within 1.8 points over
    # 1, 2 and 4 threads (benchmarks/step0_stability.py; docs/results.md). The papers' step 0 starts
    # from ImageNet weights and needs no such margin; later steps start from a trained model and
    # keep 8.
    "demo": dict(
        dataset="shapes",
        crop_size=64,
        batch_size=8,
        epochs=16,
        epochs_next=8,
        lr=0.05,
        protocol="official",
        lr_next=0.03,  # the course's shared setting (protocol="shared"): every method at 0.03
        num_workers=0,
        pretrained="",
        checkpoint_every=0,
        grid={"backbones": ["resnet18"], "lrs": [0.05], "batch_sizes": [8]},
        incremental={
            "tasks": ["15-5", "15-1", "10-1"],
            "settings": ["overlapped"],
            "methods": ["ft", "lwf", "ilt", "mib"],
            "task_methods": {"10-1": ["ft", "mib", "plop", "sdr"]},
        },
        replay={
            "tasks": ["15-1"],
            "settings": ["overlapped"],
            "sizes": [1, 5],
            "methods": ["mib"],
            "size_effect": False,
        },
        # Notebook 07: FT and MiB probed after every step of 15-1 and of the longest task, 10-1 (the
        # probe's lesson in RevisitingCSS is on 15-1 and 10-1); DFT* and MiB+EWF on 15-1; EWF's
        # weight slider on 15-5, whose single step makes the slider the whole story.
        probing={
            "tasks": ["15-1", "10-1"],
            "settings": ["overlapped"],
            "methods": ["ft", "mib", "dft", "mib+ewf"],
            "task_methods": {"10-1": ["ft", "mib"]},
            "probe": ["ft", "mib"],
            "sweep": "15-5",
        },
    ),
    "smoke": dict(
        dataset="shapes",
        crop_size=48,
        batch_size=8,
        epochs=2,
        lr=0.05,
        lr_next=0.005,
        num_workers=0,
        pretrained="",
        max_train_images=64,
        max_val_images=24,
        checkpoint_every=0,
        grid={"backbones": ["resnet18"], "lrs": [0.05, 0.01], "batch_sizes": [8]},
        incremental={
            "tasks": ["15-5", "15-1"],
            "settings": ["overlapped"],
            "methods": ["ft", "mib"],
            "task_methods": {"15-1": ["ft", "mib", "plop", "sdr"]},
        },
        replay={"tasks": ["15-5"], "settings": ["overlapped"], "sizes": [1, 2], "methods": ["ft", "mib"]},
        probing={
            "tasks": ["15-1"],
            "settings": ["overlapped"],
            "methods": ["ft", "mib", "dft", "mib+ewf"],
            "probe": ["ft", "mib"],
            "sweep": "15-5",
        },
    ),
    "cpu": dict(
        dataset="voc",
        crop_size=160,
        batch_size=8,
        epochs=30,
        epochs_next=10,
        lr=0.01,
        lr_next=0.001,
        num_workers=2,
        pretrained="imagenet",
        grid={"backbones": ["resnet18"], "lrs": [0.01, 0.025], "batch_sizes": [8]},
        incremental={
            "tasks": ["15-5", "15-1"],
            "settings": ["overlapped", "disjoint"],
            "methods": ["ft", "lwf", "ilt", "mib", "plop", "sdr"],
        },
        replay={"tasks": ["15-5", "15-1"], "settings": ["overlapped"], "sizes": [1, 5, 15], "methods": ["ft", "mib"]},
        probing={
            "tasks": ["15-1"],
            "settings": ["overlapped"],
            "methods": ["ft", "mib", "dft", "mib+ewf"],
            "probe": ["ft", "mib"],
            "sweep": "15-5",
        },
    ),
    "colab": dict(
        dataset="voc",
        crop_size=512,
        batch_size=16,
        epochs=30,
        lr=0.01,
        lr_next=0.001,
        num_workers=2,
        pretrained="imagenet",
        grid={"backbones": ["resnet18", "resnet50"], "lrs": [0.01, 0.025], "batch_sizes": [8, 16]},
        incremental={
            "tasks": ["15-5", "15-1"],
            "settings": ["overlapped", "disjoint"],
            "methods": ["ft", "lwf", "lwf-mc", "ilt", "ewc", "pi", "rw", "mib", "plop", "sdr"],
        },
        replay={
            "tasks": ["15-5", "15-1"],
            "settings": ["overlapped"],
            "sizes": [1, 5, 15, 25, 50],
            "methods": ["ft", "mib"],
        },
        probing={
            "tasks": ["15-1", "10-1"],
            "settings": ["overlapped"],
            "methods": ["ft", "mib", "dft", "mib+ewf"],
            "probe": ["ft", "mib"],
            "sweep": "15-5",
        },
    ),
    # MiB-faithful: Nesterov SGD with weight decay on all parameters, void trained as background,
    # intermediate steps scored on MiB's test protocol (fcdl94/MiB run.py, dataset/voc.py).
    "paper": dict(
        dataset="voc",
        voc_split="train_aug",
        crop_size=512,
        batch_size=24,
        epochs=30,
        lr=0.01,
        optimizer="sgd-mib",
        void_label="background",
        eval_unseen="ignore",
        sync_bn=True,  # MiB's argparser.py: --norm_act iabn_sync (BatchNorm synchronised across GPUs)
        lr_next=0.001,
        num_workers=4,
        pretrained="imagenet",
        eval_crop=512,
        backbone="resnet101",
        grid={"backbones": ["resnet50", "resnet101"], "lrs": [0.01], "batch_sizes": [24]},
        incremental={
            "tasks": ["19-1", "15-5", "15-1", "10-1"],
            "settings": ["disjoint", "overlapped"],
            "methods": ["ft", "lwf", "lwf-mc", "ilt", "ewc", "pi", "rw", "mib", "plop", "sdr"],
        },
        replay={
            "tasks": ["15-5", "15-1"],
            "settings": ["disjoint", "overlapped"],
            "sizes": [1, 5, 15, 25, 50, 100],
            "methods": ["ft", "mib"],
        },
        probing={
            "tasks": ["15-1", "10-1"],
            "settings": ["overlapped"],
            "methods": ["ft", "mib", "dft", "plop", "mib+ewf", "plop+ewf"],
            "probe": ["ft", "mib"],
            "sweep": "15-5",
        },
    ),
}

#: Notebook 04's synthesis (:class:`~incseg_lib.inversion.InversionConfig`) sized per profile
#: (docs/methods.md, "DeepInversion": how each was derived). smoke: every code
#: path in seconds; demo: about a minute on 2 CPU cores, one image per class so that notebook 04's
#: SMiB reuses notebook 03's one-exemplar run; cpu: the VOC subset's 15-5 memory (30 images at
#: 160 px) within 15 minutes on 2 CPU cores; colab: VOC 15-5 (240 images at 256 px) within 30
#: minutes on a T4 at 5% of its float16 peak (FLOPs from benchmarks/inversion_throughput.py);
#: paper: NVlabs' own schedule (2000 + 1000 iterations at 224 px).
INVERSION_PROFILES: dict[str, dict] = {
    "smoke": dict(images_per_class=1, batch_size=4, resolution=48, iterations_low=2, iterations_full=2),
    "demo": dict(images_per_class=1, batch_size=10, resolution=64, iterations_low=60, iterations_full=30),
    "cpu": dict(images_per_class=2, batch_size=10, resolution=160, iterations_low=200, iterations_full=100),
    "colab": dict(images_per_class=16, batch_size=48, resolution=256, iterations_low=1000, iterations_full=500),
    "paper": dict(images_per_class=32, batch_size=64, resolution=224, iterations_low=2000, iterations_full=1000),
}


#: Notebook 05's SEAM (:class:`~incseg_lib.seam.SeamConfig`) sized per profile: smoke runs every code
#: path in seconds; demo and cpu crop about the whole
#: image (shapes: 80 px; the VOC subset's short side: 192), as SEAM's 448 crop does on VOC; colab
#: and paper SEAM's own crop with a ResNet-50 / ResNet-101.
SEAM_PROFILES: dict[str, dict] = {
    "smoke": dict(epochs=1, crop_size=48, scales=(1.0,), flip=False),
    "demo": dict(epochs=8, crop_size=80, scales=(1.0, 1.5), flip=True),
    "cpu": dict(epochs=8, crop_size=192),
    "colab": dict(backbone="resnet50", epochs=8, crop_size=448, init="imagenet"),
    "paper": dict(backbone="resnet101", epochs=8, crop_size=448, init="imagenet"),
}
