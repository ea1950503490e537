"""One incremental step by hand (notebook 02's cell "One step, by hand"): the library's parts called
one at a time give the record train_step gives."""

import pytest

from incseg_lib.engine import Hooks, fit
from incseg_lib.experiment import (
    base_datasets,
    evaluate_step,
    fit_options,
    frozen_copy,
    grow,
    load_step_model,
    step_training_set,
    train_step,
)
from incseg_lib.methods import get_method
from incseg_lib.tasks import IncrementalSplit


@pytest.mark.parametrize("name", ["mib", "lwf"])
def test_step_by_hand_gives_the_study_record(tiny_cfg, name):
    cfg = tiny_cfg(max_val_images=6)
    quiet = dict(progress=False)
    train_step(cfg, step=0, method="step0", notebook="test", **quiet)
    split = IncrementalSplit(cfg.dataset, cfg.task, 1, cfg.setting)

    model = load_step_model(cfg, 0, "step0")  # the step-0 model ...
    old = frozen_copy(model, cfg)  # ... and its frozen copy, the old model
    method = get_method(name, protocol=cfg.protocol)
    grow(model, split, method, cfg.seed)  # heads for the new classes, initialised as the method does
    loss_fn = method.loss_fn(
        old, sum(old.classes_per_step), cfg.aux_weight, ce_normalisation=cfg.ce_normalisation_at(name)
    )
    history = fit(
        model, step_training_set(cfg, split), **fit_options(cfg, 1, name), hooks=Hooks(loss_fn), progress=False
    )
    val = base_datasets(cfg, split)[1]
    by_hand = evaluate_step(cfg, model, split, val, method=name, notebook="test", record=False, **quiet)

    study = train_step(cfg, step=1, method=name, notebook="test", **quiet)
    assert history["loss"] == study.history["loss"]  # the same training, batch for batch
    for part in ("miou_all", "miou_old", "miou_new"):
        assert by_hand[part] == study.record[part]
