"""Speed and memory of AutoTask on this machine's CPU, printed as tables.

Run from the repository root after `make test` or `make book` has set up .venv:

    .venv/bin/python benchmarks/bench_speed.py          # about 3 minutes
    .venv/bin/python benchmarks/bench_speed.py --quick  # fewer repeats

Every timing is a median over repeats, and the training comparisons interleave
the models inside one process, so a noisy machine slows all of them alike;
ratios are more trustworthy than absolute rates. Nothing here asserts a target:
the script prints the figures and the targets beside them.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference_autotask import ReferenceAutoTask  # noqa: E402

from autotask_lib import (  # noqa: E402
    AutoTask,
    AutoTaskConfig,
    BaselineConfig,
    MultiTaskDNN,
)
from autotask_lib.serving import OnnxScorer, export_onnx  # noqa: E402

BATCH = 512  # rows per training step, as in the profiles


def _median_time(fn, repeats: int, inner: int = 1) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - start) / inner)
    return statistics.median(times)


def matmul_peak(dtype: torch.dtype, repeats: int) -> float:
    """GFLOP/s of a large square matmul in ``dtype``."""
    n = 2048
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm up
    return 2 * n**3 / _median_time(lambda: a @ b, repeats, 3) / 1e9


def random_rows(n: int, d: int, num_tasks: int, gen: torch.Generator):
    x = torch.randn(n, d, generator=gen)
    x[:, -1] = torch.randint(0, num_tasks, (n,), generator=gen).float()
    y = torch.rand(n, generator=gen)
    return x, y


def forward_flops_per_row(model, x) -> float:
    with FlopCounterMode(display=False) as counter:
        model(x)
    rows = x.shape[0] * (x.shape[1] if x.ndim == 3 else 1)
    return counter.get_total_flops() / rows


def _autotask_step(model, opt, x, y):
    logits = model(x)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _baseline_step(model, opt, x, y):
    general, specific = model(x)
    own = model.own_branch_logits(specific, x[:, -1].long().clamp(min=1))
    loss = torch.nn.functional.binary_cross_entropy_with_logits(general, y)
    loss = loss + torch.nn.functional.binary_cross_entropy_with_logits(own, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def training_rates(models: dict, steps: int, repeats: int, t: int, d: int,
                   num_tasks: int) -> dict[str, float]:
    """Median training rows/s of each model, timed in interleaved rounds."""
    gen = torch.Generator().manual_seed(0)
    x, y = random_rows(BATCH * steps, d, num_tasks, gen)
    opts = {k: torch.optim.Adam(m.parameters(), lr=6e-4) for k, m in models.items()}
    times: dict[str, list[float]] = {k: [] for k in models}
    for r in range(repeats + 1):  # round 0 warms up
        for name, model in models.items():
            step = _baseline_step if isinstance(model, MultiTaskDNN) else _autotask_step
            start = time.perf_counter()
            for i in range(steps):
                xb, yb = x[i * BATCH:(i + 1) * BATCH], y[i * BATCH:(i + 1) * BATCH]
                if not isinstance(model, MultiTaskDNN):
                    xb, yb = xb.view(-1, t, d), yb.view(-1, t)
                step(model, opts[name], xb, yb)
            if r:
                times[name].append(time.perf_counter() - start)
    return {k: BATCH * steps / statistics.median(v) for k, v in times.items()}


def latency(fn, repeats: int) -> tuple[float, float]:
    """p50 and p99 latency of ``fn`` in microseconds."""
    for _ in range(20):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return (1e6 * float(np.percentile(samples, 50)),
            1e6 * float(np.percentile(samples, 99)))


def table(title: str, rows: list[tuple], header: tuple) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch threads for training (default: all)")
    args = parser.parse_args(argv)
    reps = 3 if args.quick else 5
    steps = 10 if args.quick else 30
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    print("machine:", platform.processor() or platform.machine(), "|",
          os.cpu_count(), "cores |", "torch", torch.__version__, "|",
          "training threads", torch.get_num_threads())

    # 1. The machine's matmul peak.
    fp32 = matmul_peak(torch.float32, reps)
    bf16 = matmul_peak(torch.bfloat16, reps)
    table("matmul peak (2048 x 2048)", [("fp32", f"{fp32:.0f}"),
                                        ("bf16", f"{bf16:.0f}")],
          ("dtype", "GFLOP/s"))

    # 2. Training throughput at the default config, interleaved.
    cfg = AutoTaskConfig()
    ours = AutoTask(cfg)
    ref = ReferenceAutoTask().load_from(ours)
    probe = random_rows(64, cfg.d, cfg.num_tasks, torch.Generator().manual_seed(1))[0]
    probe = probe.view(4, 16, cfg.d)
    gap = (ours(probe) - ref(probe)).abs().max().item()
    base = MultiTaskDNN(BaselineConfig())
    flops = {
        "AutoTask (library)": 3 * forward_flops_per_row(ours, probe),
        "AutoTask (plain reference)": 3 * forward_flops_per_row(ref, probe),
        "multi-task DNN baseline": 3 * forward_flops_per_row(
            base, probe.view(-1, cfg.d)
        ),
    }
    rates = training_rates({"AutoTask (library)": ours,
                            "AutoTask (plain reference)": ref,
                            "multi-task DNN baseline": base},
                           steps, reps, cfg.block_len, cfg.d, cfg.num_tasks)
    rows = []
    for name, rate in rates.items():
        achieved = rate * flops[name] / 1e9
        rows.append((name, f"{rate / 1e3:.1f}k", f"{flops[name] / 1e6:.2f}",
                     f"{achieved:.1f}", f"{100 * achieved / fp32:.1f}%"))
    table(f"training, batch {BATCH}, fp32 eager (library vs reference max |diff| "
          f"{gap:.1e})", rows,
          ("model", "rows/s", "MFLOP/row (fwd+bwd)", "GFLOP/s", "of fp32 peak"))
    speedup = rates["AutoTask (library)"] / rates["AutoTask (plain reference)"]
    print(f"library / reference training speed: {speedup:.2f}x (target: >= 2x)")

    # 3. Scoring: one request, one row, and batches.
    torch.set_num_threads(1)
    ours.eval()
    gen = torch.Generator().manual_seed(2)
    request = random_rows(16, cfg.d, cfg.num_tasks, gen)[0][None]  # (1, 16, d)
    one_row = request[:, :1]
    with tempfile.TemporaryDirectory() as tmp:
        scorer = OnnxScorer(export_onnx(ours, Path(tmp) / "autotask.onnx"))
        base_scorer = OnnxScorer(export_onnx(base, Path(tmp) / "baseline.onnx"))
        onnx_gap = np.abs(scorer.logits(request.numpy())
                          - ours(request).detach().numpy()).max()
        lat = []
        with torch.no_grad():
            for label, fn in (
                ("AutoTask eager, 16 candidates", lambda: ours(request)),
                ("AutoTask eager, 1 row", lambda: ours(one_row)),
                ("AutoTask onnxruntime, 16 candidates",
                 lambda: scorer.logits(request.numpy())),
                ("AutoTask onnxruntime, 1 row",
                 lambda: scorer.logits(one_row.numpy())),
                ("baseline onnxruntime, 16 candidates",
                 lambda: base_scorer.logits(request[0].numpy())),
            ):
                p50, p99 = latency(fn, 300 if args.quick else 1000)
                lat.append((label, f"{p50:.0f}", f"{p99:.0f}"))
        table(f"scoring latency, one thread (onnx vs eager max |diff| "
              f"{onnx_gap:.1e}; target p50 <= 100 us for 16 candidates)", lat,
              ("request", "p50 us", "p99 us"))

        torch.set_num_threads(args.threads)
        big = random_rows(65536, cfg.d, cfg.num_tasks, gen)[0].view(-1, 16, cfg.d)
        chunks = big.split(256)  # 4,096 rows a call, as a scoring service would

        def eager_all():
            with torch.no_grad():
                for c in chunks:
                    ours(c)

        ort_batch = OnnxScorer(Path(tmp) / "autotask.onnx", threads=args.threads)
        arrays = [c.numpy() for c in chunks]
        eager = big.shape[0] * 16 / _median_time(eager_all, reps)
        onnx_rate = big.shape[0] * 16 / _median_time(
            lambda: [ort_batch.logits(a) for a in arrays], reps)
        table("batch scoring, 65,536 rows in blocks of 16 (target >= 200k rows/s)",
              [("eager", f"{eager / 1e3:.0f}k"),
               ("onnxruntime", f"{onnx_rate / 1e3:.0f}k")],
              ("engine", "rows/s"))

    # 4. How training cost grows with d and t.
    scale_rows = []
    for d, t in ((24, 16), (48, 16), (96, 16), (24, 4), (24, 64)):
        e1 = 8
        c = AutoTaskConfig(d=d, e1=e1, e2=d * e1, fusion_hidden=d * e1,
                           block_len=t, n_head2=4)
        m = AutoTask(c)
        r = training_rates({"m": m}, max(3, steps // 3), max(2, reps - 2), t, d,
                           c.num_tasks)["m"]
        p = random_rows(2 * t, d, c.num_tasks, gen)[0].view(2, t, d)
        f = 3 * forward_flops_per_row(m, p)
        scale_rows.append((d, t, f"{r / 1e3:.1f}k", f"{f / 1e6:.2f}",
                           f"{r * f / 1e9:.1f}"))
    table("training cost against features d and block length t (e2 = 8 d)",
          scale_rows, ("d", "t", "rows/s", "MFLOP/row", "GFLOP/s"))

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory of this process: {peak:.0f} MiB (target <= 2048)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
