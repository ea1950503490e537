"""Pictures for the notebooks, one module per job: :mod:`.common` (masks, legends, sample grids,
galleries, loss curves), :mod:`.steps` (incremental learning over steps, notebooks 02 and 06),
:mod:`.features` (PLOP's Local POD, SDR's latent space), :mod:`.viewer` (notebook 06's results
viewer), :mod:`.memory` (exemplars, 03), :mod:`.inversion` (DeepInversion, 04) and :mod:`.weak`
(SEAM, 05). Each draws data that :mod:`incseg_lib.experiment` computes; none trains."""

from .common import IGNORE_COLOUR, class_legend, colorize, gallery, iou_bars, loss_curves, show, show_samples
from .features import latent_reading, latent_space, pod_profiles, pod_reading
from .inversion import (
    inversion_emergence,
    inversion_losses,
    object_size_histogram,
    outcome_text,
    scale_examples,
    synthetic_gallery,
    transfer_bars,
    transfer_verdict,
)
from .memory import exemplar_gallery, memory_curves
from .steps import (
    comparison_bars,
    iou_heatmap,
    predictions_over_steps,
    step_curves,
    steps_reading,
    training_curves,
    training_reading,
)
from .viewer import method_galleries, method_gallery, method_gallery_reading, results_viewer
from .weak import seam_gallery, seam_gallery_reading, sweep_reading, threshold_sweep

__all__ = [
    "seam_gallery_reading",
    "steps_reading",
    "latent_reading",
    "show",
    "IGNORE_COLOUR",
    "class_legend",
    "colorize",
    "comparison_bars",
    "exemplar_gallery",
    "gallery",
    "inversion_emergence",
    "inversion_losses",
    "iou_bars",
    "iou_heatmap",
    "latent_space",
    "loss_curves",
    "memory_curves",
    "object_size_histogram",
    "outcome_text",
    "transfer_verdict",
    "pod_profiles",
    "pod_reading",
    "predictions_over_steps",
    "method_galleries",
    "method_gallery",
    "method_gallery_reading",
    "results_viewer",
    "scale_examples",
    "seam_gallery",
    "show_samples",
    "step_curves",
    "sweep_reading",
    "synthetic_gallery",
    "threshold_sweep",
    "training_curves",
    "training_reading",
    "transfer_bars",
]
