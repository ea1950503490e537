"""Images per second of a BiSeNet training step and of evaluation, per backbone and resolution.

Prints one JSON line per (backbone, resolution, phase) on the available device (CUDA if present).
Synthetic inputs, so the figure is the model's speed, not the data loader's.

    python benchmarks/train_throughput.py                      # resnet18/50/101 at 256 and 512
    python benchmarks/train_throughput.py --backbones resnet18 --sizes 160,512 --batch 8 --iters 5
    python benchmarks/train_throughput.py --compare-channels-last --backbones resnet18,resnet50 --sizes 64,160,256

``--compare-channels-last`` times NCHW and NHWC in interleaved rounds in one process (so a busy
machine slows both alike) and prints the ratio per phase: the measurement behind
``engine.CPU_CHANNELS_LAST_MIN_SIDE`` (the fixed CPU layout rule; re-measure it here when the
reference machine or PyTorch changes, and update the constant by hand).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from incseg_lib.engine import make_optimizer
from incseg_lib.losses import bisenet_loss
from incseg_lib.models import BiSeNet


def bench(backbone: str, size: int, batch: int, iters: int, warmup: int, device: torch.device, amp: bool) -> list[dict]:
    torch.manual_seed(0)
    cuda = device.type == "cuda"
    model = BiSeNet([21], backbone).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, 0.01)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and amp)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 21, (batch, size, size), device=device)
    if cuda:
        x = x.contiguous(memory_format=torch.channels_last)
        torch.cuda.reset_peak_memory_stats()

    def train_step():
        with torch.autocast(device.type, dtype=torch.float16, enabled=cuda and amp):
            loss = bisenet_loss(model(x), y)["loss"]
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    @torch.no_grad()
    def eval_step():
        with torch.autocast(device.type, dtype=torch.float16, enabled=cuda and amp):
            model(x)["out"].argmax(1)

    rows = []
    for phase, fn, mode in (("train", train_step, model.train), ("eval", eval_step, model.eval)):
        mode()
        for _ in range(warmup):
            fn()
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        if cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        rows.append(
            {
                "benchmark": "bisenet_throughput",
                "phase": phase,
                "backbone": backbone,
                "size": size,
                "batch": batch,
                "images_per_second": round(batch * iters / dt, 2),
                "ms_per_batch": round(1000 * dt / iters, 1),
                "amp": bool(cuda and amp),
                "device": torch.cuda.get_device_name(0) if cuda else f"cpu x{torch.get_num_threads()} threads",
                "peak_mem_mib": round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None,
                "torch": torch.__version__,
                "python": platform.python_version(),
            }
        )
    return rows


def compare_channels_last(backbone: str, size: int, batch: int, iters: int, rounds: int) -> list[dict]:
    """Median ms per batch of a training step and of inference in NCHW and NHWC on CPU, interleaved."""
    import statistics

    torch.manual_seed(0)
    model = BiSeNet([21], backbone)
    opt = make_optimizer(model, 0.01)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 21, (batch, size, size))
    times = {(ph, f): [] for ph in ("train", "eval") for f in ("nchw", "nhwc")}
    for r in range(rounds + 1):
        for f in ("nchw", "nhwc"):
            fmt = torch.channels_last if f == "nhwc" else torch.contiguous_format
            model.to(memory_format=fmt)
            xi = x.contiguous(memory_format=fmt)
            for ph in ("train", "eval"):
                model.train(ph == "train")
                t0 = time.perf_counter()
                for _ in range(iters):
                    if ph == "train":
                        loss = bisenet_loss(model(xi), y)["loss"]
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                        opt.step()
                    else:
                        with torch.no_grad():
                            model(xi)["out"].argmax(1)
                if r:  # round 0 warms up
                    times[(ph, f)].append((time.perf_counter() - t0) / iters)
    rows = []
    for ph in ("train", "eval"):
        a, b = statistics.median(times[(ph, "nchw")]), statistics.median(times[(ph, "nhwc")])
        rows.append(
            {
                "benchmark": "channels_last_cpu",
                "phase": ph,
                "backbone": backbone,
                "size": size,
                "batch": batch,
                "nchw_ms": round(1000 * a, 1),
                "nhwc_ms": round(1000 * b, 1),
                "speedup": round(a / b, 3),
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", default="resnet18,resnet50,resnet101")
    ap.add_argument("--sizes", default="256,512", help="square input sizes in px")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--iters", type=int, default=0, help="timed iterations (default: 5 on CPU, 30 on CUDA)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-amp", action="store_true")
    ap.add_argument("--compare-channels-last", action="store_true", help="CPU: NCHW against NHWC, interleaved")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds for --compare-channels-last")
    args = ap.parse_args()
    if args.compare_channels_last:
        for b in args.backbones.split(","):
            for s in (int(v) for v in args.sizes.split(",")):
                for row in compare_channels_last(b, s, args.batch, args.iters or 2, args.rounds):
                    print(json.dumps(row), flush=True)
        return
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    iters = args.iters or (30 if device.type == "cuda" else 5)
    for b in args.backbones.split(","):
        for s in (int(v) for v in args.sizes.split(",")):
            for row in bench(b, s, args.batch, iters, args.warmup, device, not args.no_amp):
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
