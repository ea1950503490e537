"""Checkpoints trained before a change of the library are found after it: their paths (which hold the
digest of each training key) are those recorded in tests/data/checkpoint_keys.json."""

import json
from pathlib import Path

from .helpers.checkpoint_keys import checkpoint_paths

RECORDED = Path(__file__).parent / "data" / "checkpoint_keys.json"


def test_checkpoint_paths_are_those_recorded(shapes_root, tmp_path):
    want = json.loads(RECORDED.read_text())
    have = checkpoint_paths(shapes_root, tmp_path / "checkpoints")
    assert set(have) == set(want)
    changed = {k: (want[k], have[k]) for k in want if have[k] != want[k]}
    assert not changed, f"checkpoint keys changed (every earlier checkpoint would be retrained): {changed}"


def test_a_method_declared_option_enters_only_that_methods_key(tiny_cfg):
    """PI declares ``pi_estimator`` among its key options: it moves PI's step-1 key, not MiB's,
    and not PI's step 0 (shared by every method)."""
    from incseg_lib.store import key_digest

    mib_cfg, zenke_cfg = tiny_cfg(), tiny_cfg(pi_estimator="zenke")

    def digest(cfg, method, step):
        return key_digest(cfg.training_key(step=step, method=method))

    assert digest(mib_cfg, "pi", 1) != digest(zenke_cfg, "pi", 1)
    assert digest(mib_cfg, "mib", 1) == digest(zenke_cfg, "mib", 1)
    assert digest(mib_cfg, "pi", 0) == digest(zenke_cfg, "pi", 0)
