"""Training speed of a jepa student on this machine: seconds per batch and per epoch.

Times the training step of an experiment's student (forward, InfoNCE/SmoothL1, backward, AdamW)
on batches shaped like the real ones — ``train.batch_size`` signatures whose token counts are
drawn from the real signature-length distribution of a prepared corpus when ``--data-dir`` holds
one (else uniform 10..90 tokens) — in fp32 and under bf16 autocast (CPU AMX / CUDA), in the same
run, and extrapolates an epoch over ``--functions`` training functions (the issue's goal for 1_4:
an epoch over 40,000 functions in <= 1 minute on the 2-core machine). Usage::

    python benchmarks/student_epoch.py [--exp 1_4] [--functions 40000] [--steps 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.config import load_experiment  # noqa: E402
from jepa.config import ExperimentConfig  # noqa: E402
from jepa.data import collate  # noqa: E402
from jepa.prepare import CONFIG_DIR  # noqa: E402
from jepa.task import build_model  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--exp", default="1_4")
    ap.add_argument("--functions", type=int, default=40_000)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    cfg = load_experiment(ExperimentConfig, CONFIG_DIR, args.exp, [])
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    b = cfg.train.batch_size
    lengths = torch.randint(10, 90, (args.steps + 1, b), generator=g)
    batches = [collate([torch.randn(int(t), args.dim, generator=g) for t in row]) for row in lengths]
    targets = torch.nn.functional.normalize(torch.randn(b, args.dim, generator=g), dim=-1)
    print(f"{args.exp}: {cfg.student.name}, {cfg.loss.kind}, batch {b}, D={args.dim}, "
          f"{torch.get_num_threads()} threads, device {device}")
    print(f"{'precision':<12}{'s/batch':>10}{'epoch of ' + format(args.functions, ',') + ' (min)':>28}")
    for bf16 in (False, True):
        torch.manual_seed(0)
        model = build_model(cfg, args.dim).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr)
        times = []
        for i, (x, m) in enumerate(batches):
            start = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                x_in = x[:, :, :] if model.student.input_kind == "tokens" else x.mean(1)
                loss, _ = model(x_in.to(device), m.to(device), targets.to(device), torch.arange(b, device=device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i:  # the first step warms up
                times.append(time.perf_counter() - start)
        per = sorted(times)[len(times) // 2]
        print(f"{'bf16' if bf16 else 'fp32':<12}{per:>10.3f}{args.functions / b * per / 60:>28.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
