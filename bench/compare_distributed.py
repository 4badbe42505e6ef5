"""Data-parallel training speed on this machine, and the scaling model of
docs/distributed.md checked against it.

Runs `neurite bench-train` on resnet20 (global batch 128, dense and 90 %
unstructured) as 1 rank x 1 thread, 1 rank x 2 threads and 2 ranks x 1
thread (mpirun), interleaved over --rounds, and reports median samples/s and
the ratios; the gradient exchange alone (bench_exchange) gives its time and
bytes per step. The model predicts a step as compute + exchange:

    exchange(N) = 2 (N - 1) latency + 2 (N - 1) / N * bytes / bandwidth

(a ring reduce-scatter and all-gather, nothing hidden behind backward), and
is checked here on N = 2 with the shared-memory latency and bandwidth that
bench_exchange measures. Then it predicts 2-64 machines at 10 and 100
Gbit/s, each machine one rank of --threads cores on a batch of 128 (the
global batch grows with the machines, as with DDP).

    /usr/bin/python3 bench/compare_distributed.py [--rounds 3] [--steps 10]
"""
import argparse
import json
import os
import statistics
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEURITE = os.path.join(ROOT, "build", "neurite")
EXCHANGE = os.path.join(ROOT, "build", "bench", "bench_exchange")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
MPIRUN = ["mpirun", "--oversubscribe", "--bind-to", "core"]


def bench_train(ranks, threads, sparsity, steps, batch=128):
    cmd = [NEURITE, "bench-train", "resnet20", "--batch-size", str(batch), "--threads", str(threads), "--steps",
           str(steps), "--warmup", "3", "--sparsity", str(sparsity), "--json"]
    if ranks > 1:
        cmd = MPIRUN + ["-np", str(ranks)] + cmd
    out = subprocess.run(cmd, env=ENV, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def exchange(sparsity):
    out = subprocess.run(MPIRUN + ["-np", "2", EXCHANGE, "resnet20", str(sparsity), "100"], env=ENV, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def table_head(title, columns, intro=""):
    """A Markdown section title and a table's header row."""
    print(f"## {title}\n")
    if intro:
        print(intro + "\n")
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))


def exchange_seconds(machines, nbytes, latency, bandwidth):
    """Ring reduce-scatter + all-gather of nbytes (bytes of one gradient copy)."""
    if machines == 1:
        return 0.0
    return 2 * (machines - 1) * latency + 2 * (machines - 1) / machines * nbytes / bandwidth


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="cores of one machine in the prediction")
    args = parser.parse_args()

    configs = [(1, 1), (1, 2), (2, 1)]
    results = {}
    for _ in range(args.rounds):
        for sparsity in (0.0, 0.9):
            for ranks, threads in configs:
                r = bench_train(ranks, threads, sparsity, args.steps)
                results.setdefault((sparsity, ranks, threads), []).append(r)
            r = bench_train(1, 1, sparsity, args.steps, batch=64)  # one rank's share of the 2-rank step
            results.setdefault((sparsity, "half"), []).append(r)

    table_head("Data-parallel training on this machine (resnet20, global batch 128)",
               ["sparsity", "1 rank x 1 thread", "1 rank x 2 threads", "2 ranks x 1 thread", "2x1 / 1x1", "2x1 / 1x2",
                "exchange wait (share of step)", "exchange values", "bytes sent per rank and step"])
    speeds = {}
    for sparsity in (0.0, 0.9):
        s = {c: statistics.median(r["samples_per_sec"] for r in results[(sparsity,) + c]) for c in configs}
        two = results[(sparsity, 2, 1)]
        wait = statistics.median(r["exchange_ms"] for r in two)
        share = statistics.median(r["exchange_share"] for r in two)
        speeds[sparsity] = s
        print(f"| {sparsity:.0%} | {s[(1, 1)]:.0f} | {s[(1, 2)]:.0f} | {s[(2, 1)]:.0f} | {s[(2, 1)] / s[(1, 1)]:.2f}x |"
              f" {s[(2, 1)] / s[(1, 2)]:.2f}x | {wait:.2f} ms ({share:.1%}) | {two[-1]['exchange_values']} |"
              f" {two[-1]['exchange_bytes'] / 1e6:.3f} MB |")

    print()
    table_head("The scaling model, checked on 2 ranks here",
               ["sparsity", "compute of a 64-example share (1 thread)", "exchange alone (shared memory)",
                "predicted 2x1", "measured 2x1", "error"])
    ex = {}
    for sparsity in (0.0, 0.9):
        ex[sparsity] = exchange(sparsity)
        compute = statistics.median(r["ms_per_step"] for r in results[(sparsity, "half")]) / 1000
        step = compute + ex[sparsity]["exchange_ms"] / 1000
        predicted = 128 / step
        measured = speeds[sparsity][(2, 1)]
        print(f"| {sparsity:.0%} | {compute * 1000:.1f} ms | {ex[sparsity]['exchange_ms']:.3f} ms"
              f" ({ex[sparsity]['bytes_sent'] / 1e6:.3f} MB, sum latency {ex[sparsity]['sum_us']:.1f} us) |"
              f" {predicted:.0f} samples/s | {measured:.0f} samples/s | {predicted / measured - 1:+.1%} |")

    links = [("10 Gbit/s", 30e-6, 0.8 * 10e9 / 8), ("100 Gbit/s", 10e-6, 0.8 * 100e9 / 8)]
    print()
    table_head(f"Predicted samples/s for N machines, each one rank x {args.threads} threads on 128 examples a step",
               ["machines"] + [f"{kind}, {n}" for n, _, _ in links for kind in ("dense", "90 %")],
               "Compute per step: the median 1 rank x 2 threads step measured above. Exchange: the bytes one rank "
               "sends for one gradient copy (dense or the kept values), latency 30 us per message at 10 Gbit/s and "
               "10 us at 100 Gbit/s, 80 % of the link's rate achieved, nothing hidden behind backward.")
    for machines in (1, 2, 4, 8, 16, 32, 64):
        row = f"| {machines} |"
        for _, latency, bandwidth in links:
            for sparsity in (0.0, 0.9):
                compute = 128 / speeds[sparsity][(1, 2)]
                nbytes = 4 * ex[sparsity]["values"]
                step = compute + exchange_seconds(machines, nbytes, latency, bandwidth)
                row += f" {machines * 128 / step:.0f} |"
        print(row)


if __name__ == "__main__":
    main()
