"""Checkpoints of training: written atomically, read back as tensors and plain values only, checked
against the model and the configuration that ask for them."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ..store import CorruptCheckpoint, load_torch, save_torch


class CheckpointMismatch(ValueError):
    """A checkpoint does not fit the model or the configuration asking for it."""


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (:func:`~incseg_lib.store.save_torch`: a full disk raises
    :class:`~incseg_lib.store.DiskFull` naming the folder, and leaves no partial file)."""
    save_torch(path, state)


def load_checkpoint(path: Path, model: nn.Module | None = None, *, key: dict | None = None, map_location="cpu") -> dict:
    """Read a checkpoint, check it against ``model`` and ``key``, load the weights into ``model``.

    Raises:
        FileNotFoundError: no file at ``path``.
        CorruptCheckpoint: the file is not a readable checkpoint (truncated, empty, not a torch file).
        CheckpointMismatch: the backbone or class count differs from ``model``, or the training
            key differs from ``key`` (the message names the differing fields).
    """
    path = Path(path)
    state = load_torch(path, map_location)
    if not isinstance(state, dict) or "model" not in state:
        raise CorruptCheckpoint(f"checkpoint {path} is not an incseg checkpoint (no 'model' entry)", path)
    if model is not None:
        want = (getattr(model, "backbone_name", None), list(getattr(model, "classes_per_step", [])))
        have = (state.get("backbone"), list(state.get("classes_per_step", [])))
        if want != have:
            raise CheckpointMismatch(
                f"checkpoint {path} holds a {have[0]} BiSeNet with classes per step {have[1]} "
                f"({sum(have[1])} classes), but the model is {want[0]} with {want[1]} ({sum(want[1])} classes); "
                "use the matching backbone/task, or delete the checkpoint to retrain"
            )
    if key is not None and state.get("key") is not None and state["key"] != key:
        diff = sorted(k for k in set(key) | set(state["key"]) if key.get(k) != state["key"].get(k))
        raise CheckpointMismatch(
            f"checkpoint {path} was trained with a different configuration "
            f"(differs in {diff}); delete it or change checkpoint_dir"
        )
    if model is not None:
        model.load_state_dict(state["model"])
    return state
