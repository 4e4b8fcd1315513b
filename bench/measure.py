"""What a benchmark phase measures: a process's CPU and memory, and round-trip latencies.

CPU is the process's own cpu_times (all its threads: the edge's journal
thread counts) over the phase's wall time, so 100 % is one core fully busy.
Memory is sampled, so a peak between two samples can be missed; every half
second is enough for a server whose memory grows with connections and
buffers, not in sub-second spikes.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import psutil

MB = 1024 * 1024



def progress(message: str) -> None:
    """A benchmark's progress line, on stderr (stdout is its one JSON document)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)

@dataclass
class Usage:
    cpu_percent: float = 0.0
    peak_rss_mb: float = 0.0
    peak_uss_mb: float | None = None  # None when /proc/<pid>/smaps cannot be read


class UsageMeter:
    """`async with UsageMeter(pid) as meter: ...`, then `meter.usage`."""

    def __init__(self, pid: int, *, every: float = 0.5, memory: bool = True) -> None:
        self.process = psutil.Process(pid)
        self.every = every
        self.memory = memory
        self.usage = Usage()
        self._task: asyncio.Task | None = None
        self._cpu_start = 0.0
        self._wall_start = 0.0

    async def __aenter__(self) -> "UsageMeter":
        self._cpu_start = _cpu_seconds(self.process)
        self._wall_start = time.perf_counter()
        if self.memory:
            self._sample_memory()
            self._task = asyncio.create_task(self._sample_forever())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._sample_memory()
        wall = time.perf_counter() - self._wall_start
        try:
            cpu = _cpu_seconds(self.process) - self._cpu_start
        except psutil.NoSuchProcess:  # the server died; the caller finds out and says so
            return
        self.usage.cpu_percent = round(100.0 * cpu / wall, 1) if wall > 0 else 0.0

    async def _sample_forever(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            self._sample_memory()

    def _sample_memory(self) -> None:
        try:
            rss = self.process.memory_info().rss
            self.usage.peak_rss_mb = max(self.usage.peak_rss_mb, round(rss / MB, 1))
            # USS (memory only this process holds) is what killing it would free;
            # it reads smaps, a few milliseconds for a Python process.
            uss = self.process.memory_full_info().uss
            self.usage.peak_uss_mb = max(self.usage.peak_uss_mb or 0.0, round(uss / MB, 1))
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            pass


class MachineMeter:
    """CPU the whole machine used over a phase, in % of one core (all cores together).

    What the server and the bench did not use came from other processes: a
    busy machine makes latencies and throughput worse, so the report shows it.
    """

    def __init__(self) -> None:
        self.busy_percent = 0.0
        self._start = psutil.cpu_times()
        self._wall_start = time.perf_counter()

    async def __aenter__(self) -> "MachineMeter":
        self._start, self._wall_start = psutil.cpu_times(), time.perf_counter()
        return self

    async def __aexit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._wall_start
        busy = _busy_seconds(psutil.cpu_times()) - _busy_seconds(self._start)
        self.busy_percent = round(100.0 * busy / wall, 1) if wall > 0 else 0.0


def _busy_seconds(times: Any) -> float:
    # Not idle, iowait (waiting is not work) or steal (the hypervisor gave the time to someone else).
    return sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq"))


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


@dataclass
class RoundTrips:
    """Client-side round trips of one phase: request sent until its answer was read."""

    seconds: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def add(self, seconds: float) -> None:
        self.seconds.append(seconds)

    def error(self, exc: BaseException) -> None:
        name = type(exc).__name__
        self.errors[name] = self.errors.get(name, 0) + 1

    def summary(self, wall_s: float) -> dict:
        ordered = sorted(self.seconds)
        return {
            "messages": len(ordered),
            "messages_per_s": round(len(ordered) / wall_s, 1) if wall_s > 0 else 0.0,
            "latency_ms": {"p50": _ms(percentile(ordered, 50)), "p99": _ms(percentile(ordered, 99)),
                           "max": _ms(ordered[-1] if ordered else None)},
            "errors": dict(self.errors),
        }


def percentile(ordered: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list (no interpolation: a p99 is a latency that happened)."""
    if not ordered:
        return None
    rank = max(1, math.ceil(len(ordered) * p / 100))
    return ordered[rank - 1]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 2)


@contextlib.contextmanager
def work_dir(prefix: str, *, keep: bool = False, parent: str | None = None) -> Iterator[Path]:
    """A temporary folder for a benchmark's journals and configs; removed after unless `keep`."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def run_report(name: str, run: Any, text_summary: Any, args: Any) -> int:
    """A benchmark's main: run it, add the wall time, print JSON or a summary."""
    import json

    started = time.perf_counter()
    try:
        report = run(args)
    except (RuntimeError, OSError, TimeoutError) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    report["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2) if args.json else text_summary(report))
    return 0
