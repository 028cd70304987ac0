"""Scale: training (and screening) on numpy_bitmap files of 100,000 to 5,000,000 drawings.

Builds synthetic `numpy_bitmap` files (N, 784) uint8, the Aaron sheep tiled, each copy shifted by
up to 2 pixels each way, written once to a folder (`--folder`, default a temporary one), and
measures for each size, each in a fresh process:

  train      STEPS optimiser steps of `sheep train FILE` (the default preset, batch 32) over
             the whole file's shuffle: images/s and the process's peak anonymous memory
  latent     `sheep latent` encoding: drawings/s and peak anonymous memory (--what latent)
  anomalies  the default anomaly score of every drawing (--what anomalies)
  resume     `sheep anomalies` killed halfway through its work (where a full run stood at half its
             time), then run again: the rerun's share of the full time (--what resume)

Peak anonymous memory is the largest `RssAnon` of /proc/PID/status, sampled every 20 ms: what the
process allocated itself. The file's pages, mapped from disk, are the operating system's cache
and do not count.

`--device cuda` runs the model there (training picks CUDA when present anyway; `latent` and
`anomalies` run on the CPU unless told).

    python benchmarks/scale.py [--sizes 100000 1000000 5000000] [--what train latent anomalies] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import Sampled

STEPS = 2000  # optimiser steps timed per training measurement (after WARMUP)
WARMUP = 100


def rss_anon_mib() -> float:
    """This process's anonymous resident memory (MiB), from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_anon() -> Sampled:
    """The largest RssAnon while the block runs: ``max(result.samples)``."""
    return Sampled(rss_anon_mib, every_s=0.02)


def build(path: Path, n: int, seed: int = 0) -> Path:
    """A numpy_bitmap file of n tiled, shifted Aaron sheep, written in blocks (never whole in memory)."""
    if path.is_file():
        return path
    from _common import data_path

    from electric_sheep.data.drawings import load_drawings

    sheep = load_drawings(data_path()).split("train")
    rng = np.random.default_rng(seed)
    part = path.with_suffix(".part.npy")
    out = np.lib.format.open_memmap(part, mode="w+", dtype=np.uint8, shape=(n, 784))
    for start in range(0, n, len(sheep)):
        block = sheep[: min(len(sheep), n - start)]
        dy, dx = rng.integers(-2, 3, size=2)
        out[start : start + len(block)] = np.roll(block, (int(dy), int(dx)), axis=(1, 2)).reshape(len(block), 784)
    out.flush()
    del out
    part.rename(path)
    return path


class _Enough(Exception):
    pass


def measure_train(file: Path, device: str | None) -> dict:
    from electric_sheep.core.trainer import OnStep
    from electric_sheep.runs.train_data import train_on_data

    times: list[float] = []

    def tick(epoch: int, step: int) -> None:
        times.append(time.perf_counter())
        if len(times) > WARMUP + STEPS:
            raise _Enough

    with tempfile.TemporaryDirectory() as run_dir, peak_anon() as anon:
        try:
            quiet = {"progress": False, "log": lambda s: None}
            run = Path(run_dir) / "run"
            train_on_data(file, run, epochs=1, callbacks=[OnStep(tick)], device=device, **quiet)
        except _Enough:
            pass
    seconds = times[-1] - times[WARMUP]
    return {"per_s": STEPS * 32 / seconds, "peak_anon_mib": max(anon.samples), "n": STEPS * 32}


def _measure_command(file: Path, command: list[str], device: str | None) -> dict:
    """A `sheep` command over every drawing of ``file``, in this process: drawings/s, peak memory."""
    from electric_sheep.cli import main

    command = command + (["--device", device] if device else [])
    with tempfile.TemporaryDirectory() as out, peak_anon() as anon:
        t0 = time.perf_counter()
        main([*command, "--split", "all", str(file), "--out-dir", out], standalone_mode=False)
        seconds = time.perf_counter() - t0
    n = len(np.load(file, mmap_mode="r"))
    return {"per_s": n / seconds, "peak_anon_mib": max(anon.samples), "n": n}


def measure_latent(file: Path, device: str | None) -> dict:
    return _measure_command(file, ["latent", "--quiet"], device)


def measure_anomalies(file: Path, device: str | None) -> dict:
    return _measure_command(file, ["anomalies", "--json"], device)


def measure_resume(file: Path, device: str | None) -> dict:
    """`sheep anomalies` killed (SIGKILL) halfway through its work, then run again: the rerun's
    time against a full run's.

    "Halfway" is where the full run stood at half its time: as many score rows stored on disk,
    and as many seconds into the chunk it was computing then. Killing at half the *time* instead
    would measure how fast a shared machine happened to be during the killed run, not what the
    rerun has to do again."""
    import signal

    def command(out: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "electric_sheep",
            "anomalies",
            "--split",
            "all",
            str(file),
            "--out-dir",
            out,
            "--json",
            *(["--device", device] if device else []),
        ]

    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    with tempfile.TemporaryDirectory() as full, tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        timeline = _timeline(subprocess.Popen(command(full), **quiet), Path(full))
        whole = time.perf_counter() - t0
        stored, since = _progress_at(timeline, whole / 2)  # rows on disk at half time, and for how long
        t0 = time.perf_counter()
        child = subprocess.Popen(command(out), **quiet)
        _wait_for_rows(child, Path(out), stored)
        time.sleep(since)
        child.send_signal(signal.SIGKILL)
        child.wait()
        killed_at = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run(command(out), capture_output=True, check=True)
        rerun = time.perf_counter() - t0
    total = max(rows for _, rows in timeline)  # the parts folder goes once the CSV is written
    return {"whole_s": whole, "killed_s": killed_at, "stored": stored / total, "rerun_s": rerun, "ratio": rerun / whole}


POLL_S = 0.05  # how often the score rows on disk are counted while a run goes on


def _timeline(child: subprocess.Popen, out: Path) -> list[tuple[float, int]]:
    """[(seconds since the start, score rows stored under ``out``)] at each change, until ``child``
    exits (an error if it fails)."""
    from electric_sheep.runs.screening import PARTS

    timeline, t0 = [(0.0, 0)], time.perf_counter()
    while child.poll() is None:
        if (rows := _stored_rows(out / PARTS)) != timeline[-1][1]:
            timeline.append((time.perf_counter() - t0, rows))
        time.sleep(POLL_S)
    if child.returncode:
        raise RuntimeError(f"sheep anomalies exited with {child.returncode}")
    return timeline


def _wait_for_rows(child: subprocess.Popen, out: Path, rows: int) -> None:
    """Wait until ``child`` has stored ``rows`` score rows under ``out``."""
    from electric_sheep.runs.screening import PARTS

    while _stored_rows(out / PARTS) < rows:
        if child.poll() is not None:
            raise RuntimeError(f"sheep anomalies exited (code {child.returncode}) before storing {rows} rows")
        time.sleep(POLL_S)


def _stored_rows(parts: Path) -> int:
    """Score rows on disk in a ``sheep anomalies`` parts folder: those of finished columns and of the
    chunks recorded done in unfinished ones (the streaming store's own records)."""
    rows = 0
    for record in parts.glob("*.json"):
        try:
            job = json.loads(record.read_text())
        except (OSError, ValueError):  # being written
            continue
        if record.name.endswith(".job.json"):
            rows += job["n"]
        elif ".partial." in record.name and "done" in job:
            rows += min(job["done"] * job["chunk"], job["n"])
    return rows


def _progress_at(timeline: list[tuple[float, int]], at: float) -> tuple[int, float]:
    """(rows stored by time ``at``, seconds since they were)."""
    when, rows = max((step for step in timeline if step[0] <= at), key=lambda step: step[0])
    return rows, at - when


MEASURES = {"train": measure_train, "latent": measure_latent, "anomalies": measure_anomalies, "resume": measure_resume}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 5_000_000])
    parser.add_argument("--what", nargs="+", choices=list(MEASURES), default=["train"])
    parser.add_argument("--folder", type=Path, default=None, help="keep the synthetic files here (default: temp)")
    parser.add_argument("--device", default=None, help="where the model runs (cpu, cuda, ...)")
    parser.add_argument("--measure", choices=list(MEASURES), help=argparse.SUPPRESS)  # a child process
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(MEASURES[args.measure](args.file, args.device)))
        return
    from _common import machine

    print(f"machine: {machine()}")
    if args.device and args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print("no CUDA GPU here: nothing to measure (the CPU figures: run without --device)")
            return
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        print("| drawings | file | what | per second | peak anonymous memory |\n|---|---|---|---|---|")
        for n in args.sizes:
            t0 = time.perf_counter()
            file = build(folder / f"tiled-{n}.npy", n)
            built = time.perf_counter() - t0
            for what in args.what:
                child = [sys.executable, __file__, "--measure", what, "--file", str(file)]
                child += ["--device", args.device] if args.device else []
                done = subprocess.run(child, capture_output=True, text=True, check=True)
                r = json.loads(done.stdout.strip().splitlines()[-1])
                size = f"{file.stat().st_size / 2**30:.2f} GiB" + (f" (built in {built:.0f} s)" if built > 1 else "")
                if what == "resume":
                    print(f"| {n:,} | {size} | anomalies killed halfway ({r['stored']:.0%} of the rows stored, "
                          f"{r['killed_s']:.0f} s in), rerun: {r['rerun_s']:.0f} s of {r['whole_s']:.0f} s "
                          f"({r['ratio']:.0%}) | | |", flush=True)  # fmt: skip
                    continue
                print(f"| {n:,} | {size} | {what} | {r['per_s']:,.0f} | {r['peak_anon_mib']:,.0f} MiB |", flush=True)


if __name__ == "__main__":
    main()
