"""One step end to end and the studies the notebooks run, split by job:

- :mod:`.keys`: run identity, every run name and checkpoint path (one owner);
- :mod:`.sources`: what a step trains on besides its masks (exemplars, synthetic images, pseudo-labels);
- :mod:`.step`: one step (split -> model -> fit -> evaluate -> record), Joint and Joint-S;
- :mod:`.studies`: each notebook's plan and one loop over its tasks and settings;
- :mod:`.views`: the data behind the pictures.

The names notebooks and tests use are importable from here.
"""

from .keys import (
    checkpoint_file,
    find_synthetic_memory,
    pseudo_label_store,
    replay_method_name,
    replay_run_name,
    seam_checkpoint,
    synthetic_run_name,
    weak_run_name,
)
from .sources import (
    Masks,
    Replay,
    Source,
    Synthetic,
    Weak,
    find_pseudo_labels,
    step_image_labels,
    step_memory,
    step_pseudo_labels,
    synthetic_memory,
    train_seam,
)
from .step import (
    METHODS_NOW,
    STEP0_NAMES,
    StepOutcome,
    base_datasets,
    build_model,
    evaluate_step,
    joint_config,
    joint_step,
    load_step_model,
    train_step,
    weak_joint_step,
)
from .studies import (
    check_steps,
    for_each_task,
    grid_configs,
    grid_table,
    inversion_plan,
    replay_plan,
    run_grid,
    run_incremental,
    run_inversion_study,
    run_replay_study,
    run_study,
    run_weak_study,
    study_plan,
    weak_config,
    weak_plan,
)
from .views import example_images, model_and_data, seam_examples, step_predictions, task_overview

__all__ = [
    "METHODS_NOW",
    "STEP0_NAMES",
    "Masks",
    "Replay",
    "Source",
    "StepOutcome",
    "Synthetic",
    "Weak",
    "base_datasets",
    "build_model",
    "check_steps",
    "checkpoint_file",
    "evaluate_step",
    "example_images",
    "find_pseudo_labels",
    "find_synthetic_memory",
    "for_each_task",
    "grid_configs",
    "grid_table",
    "inversion_plan",
    "joint_config",
    "joint_step",
    "load_step_model",
    "model_and_data",
    "pseudo_label_store",
    "replay_method_name",
    "replay_plan",
    "replay_run_name",
    "run_grid",
    "run_incremental",
    "run_inversion_study",
    "run_replay_study",
    "run_study",
    "run_weak_study",
    "seam_checkpoint",
    "seam_examples",
    "step_image_labels",
    "step_memory",
    "step_predictions",
    "step_pseudo_labels",
    "study_plan",
    "synthetic_memory",
    "synthetic_run_name",
    "task_overview",
    "train_seam",
    "train_step",
    "weak_config",
    "weak_joint_step",
    "weak_plan",
    "weak_run_name",
]
