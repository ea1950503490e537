"""Run under ``torchrun --nproc_per_node=N`` or plain ``python``: engine.fit on a tiny per-pixel model
and fixed data, then write the final weights (rank 0) and every rank's parameter digest into OUT.

A 1x1-convolution model has no batch statistics, so N processes with the same global batch must end
with the weights of one process to float tolerance (tests/test_distributed.py).
"""

import hashlib
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from incseg_lib.engine import Hooks, Saving, Schedule, distributed, fit
from incseg_lib.launch import init_distributed


class PixelModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return {"out": self.head(x), "aux": []}


def main(out: Path) -> None:
    init_distributed()
    rank, world = distributed()
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(3, 6, 6, generator=g), torch.randint(0, 4, (6, 6), generator=g)) for _ in range(24)]
    torch.manual_seed(0)
    model = PixelModel()
    ce = lambda m, x, y, o: {"loss": nn.functional.cross_entropy(o["out"], y)}  # noqa: E731
    hist = fit(
        model,
        data,
        Schedule(epochs=3, batch_size=8, lr=0.5, seed=1),
        saving=Saving(out / "ckpt.pt", {"k": 1}),
        hooks=Hooks(loss_fn=ce),
        progress=False,
    )
    digest = hashlib.sha1(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()
    out.mkdir(parents=True, exist_ok=True)
    (out / f"digest-{rank}.txt").write_text(digest)
    if rank == 0:
        torch.save({k: v.clone() for k, v in model.state_dict().items()}, out / "weights.pt")
        (out / "history.json").write_text(json.dumps({"loss": hist["loss"], "images": hist["images"], "world": world}))
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
