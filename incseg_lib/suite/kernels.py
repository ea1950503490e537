"""The notebooks' Jupyter kernels as processes: finding them, signalling their process groups, and
turning SIGTERM and SIGHUP into the Ctrl-C the suite already handles."""

from __future__ import annotations

import contextlib
import os
import threading


def kernels() -> list:
    """The Jupyter kernels this process started (they run in sessions of their own, so a terminal's
    Ctrl-C does not reach them)."""
    import psutil

    out = []
    for child in psutil.Process().children(recursive=True):
        try:
            if any("ipykernel" in part for part in child.cmdline()):
                out.append(child)
        except psutil.Error:
            continue
    return out


def signal_kernels(sig: int) -> int:
    """Send ``sig`` to every kernel's process group (its DataLoader workers too); the number signalled."""
    n = 0
    for k in kernels():
        try:
            os.killpg(os.getpgid(k.pid), sig)
            n += 1
        except OSError:  # gone already
            continue
    return n


@contextlib.contextmanager
def stop_signals_interrupt(caught: dict):
    """SIGTERM and SIGHUP (a batch scheduler's stop, a closed SSH session) stop the suite as Ctrl-C
    does: each raises ``KeyboardInterrupt`` in the main thread, and ``caught["signal"]`` names it.
    The previous handlers come back on exit; outside the main thread nothing is changed."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        caught["signal"] = signal.Signals(signum).name
        raise KeyboardInterrupt

    names = [n for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)]
    previous = {n: signal.signal(getattr(signal, n), handler) for n in names}
    try:
        yield
    finally:
        for n, h in previous.items():
            signal.signal(getattr(signal, n), h)
