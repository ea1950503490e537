"""DeepInversion speed: image-iterations per second of BiSeNet inversion, one JSON line per setting.

An image-iteration is one image through one synthesis iteration (forward with BN hooks, backward
to the pixels, Adam step); a synthetic memory of N images costs N x (iterations_low +
iterations_full) of them, the low-resolution ones cheaper. Runs on CUDA when present (with
``--amp``: bfloat16 autocast on CPU, float16 on CUDA), else CPU::

    python benchmarks/inversion_throughput.py                          # R18 and R50 at 64/160/256 px
    python benchmarks/inversion_throughput.py --backbones resnet18 --sizes 160 --batch 10 --threads 2

Estimate of a synthesis: seconds = images x (iterations_low / ips(size / 2) + iterations_full / ips(size)).
Each line also gives the FLOPs of one image-iteration, from which a GPU's time is estimated as
FLOPs / (peak x utilisation) where no GPU is at hand (docs/methods.md, "DeepInversion").
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

from incseg_lib.inversion import InversionConfig, synthesize
from incseg_lib.models import BiSeNet


def measure(backbone: str, size: int, batch: int, iterations: int, device: str, amp: bool) -> dict:
    torch.manual_seed(0)
    model = BiSeNet([16], backbone, "").to(device).eval()
    cfg = InversionConfig(batch_size=batch, resolution=size, iterations_low=0, iterations_full=iterations)
    targets = torch.zeros(batch, 15)
    targets[torch.arange(batch), torch.arange(batch) % 15] = 1
    dtype = torch.float16 if device.startswith("cuda") else torch.bfloat16
    ctx = torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=amp)
    with ctx:
        synthesize(
            model, targets, list(range(1, 16)), dataclasses.replace(cfg, iterations_full=2), device=device
        )  # warm-up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        synthesize(model, targets, list(range(1, 16)), cfg, device=device)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    secs = time.perf_counter() - t
    return {
        "backbone": backbone,
        "size": size,
        "batch": batch,
        "iterations": iterations,
        "device": device,
        "amp": amp,
        "threads": torch.get_num_threads(),
        "seconds": round(secs, 2),
        "image_iterations_per_second": round(batch * iterations / secs, 2),
        "gflop_per_image_iteration": round(flops_per_image_iteration(model, size, device) / 1e9, 2),
    }


def flops_per_image_iteration(model, size: int, device: str) -> float:
    """FLOPs of one image through one synthesis iteration (forward + backward to the pixels),
    counted by ``torch.utils.flop_counter`` (convolutions and matrix products; what a GPU's
    throughput figure is about)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(1, 3, size, size, device=device, requires_grad=True)
    model.requires_grad_(False)
    with FlopCounterMode(display=False) as counter:
        model(x)["out"].logsumexp((2, 3)).sum().backward()
    return float(counter.get_total_flops())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbones", default="resnet18,resnet50")
    p.add_argument("--sizes", default="64,160,256")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--threads", type=int, default=0, help="PyTorch CPU threads (0: PyTorch's default)")
    p.add_argument("--amp", action="store_true", help="autocast (bfloat16 on CPU, float16 on CUDA)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for backbone in args.backbones.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            print(json.dumps(measure(backbone, size, args.batch, args.iterations, args.device, args.amp)), flush=True)


if __name__ == "__main__":
    main()
