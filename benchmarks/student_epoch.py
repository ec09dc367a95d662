"""Training speed of a jepa student on this machine: seconds per batch and per epoch.

Times the training step of an experiment's student (forward, InfoNCE/SmoothL1, backward, AdamW)
on batches of ``train.batch_size`` signatures whose token counts are those of a prepared corpus's
training signatures (``--data-dir``, the directory of ``python -m jepa.prepare``; without it,
uniform 10..90 tokens), in three settings measured in the same run:

* ``fp32``: random batches (the record's setting), float32;
* ``bf16``: random batches under bf16 autocast (CPU AVX512-BF16/AMX, or CUDA);
* ``bf16+grouped``: bf16 with ``train.group_by_length`` (batches of similar lengths, less padding).

Each setting runs the same ``--steps`` batches (after one warm-up step); an epoch over
``--functions`` training functions (the issue's goal for 1_4: 40,000 in <= 1 minute on the 2-core
machine) is extrapolated from the mean seconds per batch. Usage::

    python benchmarks/student_epoch.py [--exp 1_4] [--data-dir DIR] [--functions 40000] [--steps 8]
        [--set student.dropout=0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.config import load_experiment  # noqa: E402
from harness.precision import training_autocast  # noqa: E402
from jepa.config import ExperimentConfig  # noqa: E402
from jepa.data import collate, load_student_data  # noqa: E402
from jepa.prepare import CONFIG_DIR  # noqa: E402
from jepa.task import build_model, group_by_length  # noqa: E402


def signature_lengths(cfg: ExperimentConfig, data_dir: str | None, dim: int) -> tuple[torch.Tensor, int, str]:
    """Token counts of the training signatures, the state width and where they came from."""
    if data_dir is None:
        g = torch.Generator().manual_seed(0)
        return torch.randint(10, 90, (50_000,), generator=g), dim, "uniform 10..90 tokens"
    data = load_student_data(cfg, Path(data_dir), signature_tokens=True, body_tokens=False)
    train = data.splits["train"]
    lengths = torch.tensor([len(t) for t in train.signature_tokens])
    return lengths, data.dim, f"{len(lengths):,} training signatures of {data_dir}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--exp", default="1_4")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--functions", type=int, default=40_000)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--dim", type=int, default=384, help="state width without --data-dir")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value, e.g. student.dropout=0")
    args = ap.parse_args()
    cfg = load_experiment(ExperimentConfig, CONFIG_DIR, args.exp, args.set)
    device = torch.device(args.device)
    lengths, dim, source = signature_lengths(cfg, args.data_dir, args.dim)
    b = cfg.train.batch_size
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(lengths), generator=g)[: (len(lengths) // b) * b]
    random_batches = order.view(-1, b)[: args.steps + 1]
    grouped_batches = group_by_length(order, lengths, b, g).view(-1, b)[: args.steps + 1]
    targets = torch.nn.functional.normalize(torch.randn(b, dim, generator=g), dim=-1)
    print(f"{args.exp}: {cfg.student.name}, {cfg.loss.kind}, batch {b}, D={dim}, "
          f"{torch.get_num_threads()} threads, device {device}; lengths: {source} "
          f"(mean {lengths.float().mean():.1f}, max {int(lengths.max())})")
    print(f"{'setting':<14}{'padded tokens/batch':>20}{'s/batch':>10}"
          f"{'epoch of ' + format(args.functions, ',') + ' (min)':>28}")
    results = {}
    for name, bf16, batches in (("fp32", False, random_batches), ("bf16", True, random_batches),
                                ("bf16+grouped", True, grouped_batches)):
        torch.manual_seed(0)
        model = build_model(cfg, dim).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr)
        times, padded = [], []
        for i, rows in enumerate(batches):
            x, m = collate([torch.randn(int(lengths[r]), dim) for r in rows])
            if model.student.input_kind != "tokens":
                x, m = x.mean(1), None
            start = time.perf_counter()
            with training_autocast(device, cuda=bf16, cpu=bf16):
                loss, _ = model(x.to(device), None if m is None else m.to(device), targets.to(device),
                                torch.arange(b, device=device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i:  # the first step warms up
                times.append(time.perf_counter() - start)
                padded.append(x.shape[0] * (x.shape[1] if x.dim() == 3 else 1))
        per = sum(times) / len(times)
        results[name] = per
        print(f"{name:<14}{sum(padded) / len(padded):>20,.0f}{per:>10.3f}"
              f"{args.functions / b * per / 60:>28.1f}")
    print(f"speed-up over fp32 random batches: bf16 {results['fp32'] / results['bf16']:.2f}x, "
          f"bf16+grouped {results['fp32'] / results['bf16+grouped']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
