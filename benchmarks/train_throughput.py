"""Training throughput: trajectory steps/s with real test execution, and where the time goes.

For each experiment given (default: Exp 3 and Exp 1, the two model families), on this machine's
CPU (or GPU with ``--device cuda``), it builds the experiment's model and data, runs ``--steps``
optimisation steps of the real training task (trajectory replay with scheduled sampling, every new
program executed in the sandbox) and prints:

* trajectory steps/s (programs x iterations replayed per second) and optimisation steps/s;
* the share of wall time spent in the model (forward + backward + optimiser), in test execution
  (sandbox + feedback), and in graph building (encoding states into PyG batches), measured with
  ``train.pipeline`` off so that the parts do not overlap;
* the same run's wall time with ``train.pipeline`` on (tests of one half-batch overlapping the
  model on the other), and the ratio.

Usage::

    python benchmarks/train_throughput.py [--exp 3 1] [--steps 8] [--device cpu] [--set k=v ...]

The data directory is taken from ``GRAPHREPAIR_DATA`` (or ``--set data.data_dir=DIR``). Epoch 3
of the schedule is replayed (scheduled sampling past its warm-up), the same batches for both runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from graphrepair.config import load_config  # noqa: E402
from graphrepair.data.dataset import prepare  # noqa: E402
from graphrepair.loop.refine import Refiner  # noqa: E402
from graphrepair.loop.training import RefinementTask  # noqa: E402
from graphrepair.models import build_model  # noqa: E402
from harness.sandbox import shutdown  # noqa: E402

EPOCH = 3


class _Clock:
    """Accumulates the wall time spent inside wrapped methods (main thread only)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
        return timed


def measure(exp: str, overrides: list[str], steps: int, device: str, pipeline: bool) -> dict:
    """Run ``steps`` optimisation steps of ``exp``; return timings in seconds and counts."""
    cfg = load_config(exp, [*overrides, f"train.pipeline={pipeline}", f"train.device={device}"])
    data = prepare(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, data.vocab).to(device)
    refiner = Refiner.from_config(model, data.vocab, cfg, device)
    task = RefinementTask(cfg, data, model, refiner)
    clock = _Clock()
    if not pipeline:  # parts are sequential only then; with the pipeline only the total counts
        refiner.run_tests = clock.wrap("tests", refiner.run_tests)
        refiner.batch = clock.wrap("graphs", refiner.batch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr)
    batches = task.train_batches(EPOCH)
    task.training_step(next(batches), EPOCH)  # warm-up: sandbox workers, allocator
    clock.seconds.clear()
    programs = 0
    t0 = time.perf_counter()
    for _, batch in zip(range(steps), batches):
        loss, _ = task.training_step(batch, EPOCH)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        programs += len(batch)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    return {"wall": wall, "programs": programs, "steps": steps, "parts": dict(clock.seconds),
            "iterations": cfg.train.trajectory_iterations, "model": cfg.model.name,
            "params": sum(p.numel() for p in model.parameters())}


def main() -> None:
    """Measure each experiment with the pipeline off (breakdown) and on; print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exp", nargs="+", default=["3", "1"], help="experiment ids (default 3 1)")
    ap.add_argument("--steps", type=int, default=8, help="optimisation steps measured (default 8)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for every experiment (repeatable)")
    args = ap.parse_args()
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    for exp in args.exp:
        seq = measure(exp, args.overrides, args.steps, args.device, pipeline=False)
        pipe = measure(exp, args.overrides, args.steps, args.device, pipeline=True)
        traj = seq["programs"] * seq["iterations"]
        tests, graphs = seq["parts"].get("tests", 0.0), seq["parts"].get("graphs", 0.0)
        model = seq["wall"] - tests - graphs
        print(f"\nExp {exp} ({seq['model']}, {seq['params']:,} parameters): {seq['steps']} steps "
              f"of {seq['programs'] // seq['steps']} programs x {seq['iterations']} iterations")
        print(f"  sequential: {traj / seq['wall']:7.1f} trajectory steps/s, "
              f"{seq['steps'] / seq['wall']:.2f} optimisation steps/s ({seq['wall']:.2f} s)")
        print(f"    model {100 * model / seq['wall']:4.1f}%   test execution "
              f"{100 * tests / seq['wall']:4.1f}%   graph building {100 * graphs / seq['wall']:4.1f}%")
        print(f"  pipelined:  {traj / pipe['wall']:7.1f} trajectory steps/s ({pipe['wall']:.2f} s); "
              f"pipelined / sequential speed: {seq['wall'] / pipe['wall']:.2f}x")
    shutdown()


if __name__ == "__main__":
    main()
