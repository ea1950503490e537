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
