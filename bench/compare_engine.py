#!/usr/bin/python3
"""Inference: Neurite's engine (`neurite bench`) against ONNX Runtime 1.17
(npm onnxruntime-node, bench/ort_bench.js) on the same ONNX files, batch
sizes and threads, in one run. Each pair is measured `--rounds` times,
alternating the two runtimes; the table gives the median of each side's mean
latency and the ratio ORT-dense / Neurite (above 1: we are faster).

    /usr/bin/python3 bench/compare_engine.py [--build build] [--models resnet20,mlp,transformer]
        [--sources ours,torch] [--variants dense,u90,b90] [--batches 1,64] [--threads 1,2] [--time 2]
        [--rounds 3] [--layers]

Two sources of ONNX files for the same architectures: "ours", Neurite's own
export (build/bench/bench_engine_models: zoo weights, batch-norm statistics
perturbed; u90: 90 % unstructured, b90: 90 % in 4x1 blocks, both
magnitude-pruned per tensor; qdense, qu90, qb90: the same trained
quantisation-aware to 8 bits, QDQ pairs on every Linear and Conv2d, qb90 in
1x4 blocks), and "torch", the files users bring: PyTorch
1.13's exporter on the PyTorch twins of the zoo (bench/export_torch.py, opset
13: LayerNorm and GELU from primitives, sequence-first attention; dense and
u90 only). ONNX Runtime runs the dense float file as the anchor: it has no
sparse kernels, so its time on a sparse file is the dense time; for a QDQ
variant it also runs the same QDQ file (column "ORT same file").
--layers adds our layer mode beside columns. --json FILE keeps every figure.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

import onnx

ap = argparse.ArgumentParser()
ap.add_argument("--build", default="build")
ap.add_argument("--models", default="resnet20,mlp,transformer")
ap.add_argument("--sources", default="ours,torch")
ap.add_argument("--variants", default="dense,u90,b90,qdense,qu90,qb90")
ap.add_argument("--batches", default="1,64")
ap.add_argument("--threads", default="1,2")
ap.add_argument("--time", type=float, default=2.0)
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--layers", action="store_true", help="also time our layer mode")
ap.add_argument("--json", help="write every measurement here")
args = ap.parse_args()

build = os.path.abspath(args.build)
models_dir = os.path.join(build, "bench-models")
ort_dir = os.path.join(build, "onnxruntime", "node_modules", "onnxruntime-node")
here = os.path.dirname(os.path.abspath(__file__))
sources = args.sources.split(",")
if "ours" in sources and not os.path.exists(os.path.join(models_dir, "transformer_qb90.onnx")):
    subprocess.run([os.path.join(build, "bench", "bench_engine_models"), models_dir], check=True, stdout=subprocess.DEVNULL)
if "torch" in sources and not os.path.exists(os.path.join(models_dir, "torch_transformer_u90.onnx")):
    subprocess.run(["/usr/bin/python3", os.path.join(here, "export_torch.py"), models_dir], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
TORCH_VARIANTS = ("dense", "u90")


def input_shapes(path):
    m = onnx.load(path, load_external_data=False)
    init = {i.name for i in m.graph.initializer}
    out = []
    for i in m.graph.input:
        if i.name in init:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else 1 for d in i.type.tensor_type.shape.dim]
        out.append({"shape": dims, "type": "int64" if i.type.tensor_type.elem_type == onnx.TensorProto.INT64 else "float32"})
    return out


def ours(path, batch, threads, mode):
    r = subprocess.run([os.path.join(build, "neurite"), "bench", path, "--batch-size", str(batch), "--threads",
                        str(threads), "--time", str(args.time), "--warmup", "0.5", "--mode", mode, "--onnxruntime", "off", "--json"],
                       check=True, capture_output=True, text=True)
    return json.loads(r.stdout)


def ort(path, batch, threads):
    env = dict(os.environ, ORT_INPUT_SHAPES=json.dumps(input_shapes(path)))
    r = subprocess.run(["node", os.path.join(here, "ort_bench.js"), ort_dir, path, str(batch), str(threads),
                        str(args.time), "0.5"], check=True, capture_output=True, text=True, env=env)
    return json.loads(r.stdout)


records = []
print(f"| model | source | batch | threads | ORT dense ms | variant | Neurite columns ms | x ORT dense | ORT same file ms | x ORT same file |"
      + (" layers ms | columns/layers |" if args.layers else ""))
print("|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if args.layers else ""))
for model, source in [(m, s) for m in args.models.split(",") for s in sources]:
    prefix = "torch_" if source == "torch" else ""
    variants = [v for v in args.variants.split(",") if source == "ours" or v in TORCH_VARIANTS]
    for batch in map(int, args.batches.split(",")):
        for threads in map(int, args.threads.split(",")):
            dense_path = os.path.join(models_dir, f"{prefix}{model}_dense.onnx")
            ort_ms = []
            rows = {v: {"columns": [], "layers": [], "ort": []} for v in variants}
            for _ in range(args.rounds):
                ort_ms.append(ort(dense_path, batch, threads)["latency_ms"]["mean"])
                for v in rows:
                    path = os.path.join(models_dir, f"{prefix}{model}_{v}.onnx")
                    rows[v]["columns"].append(ours(path, batch, threads, "columns")["latency_ms"]["mean"])
                    if v.startswith("q"):
                        rows[v]["ort"].append(ort(path, batch, threads)["latency_ms"]["mean"])
                    if args.layers:
                        rows[v]["layers"].append(ours(path, batch, threads, "layers")["latency_ms"]["mean"])
            o = statistics.median(ort_ms)
            for v, r in rows.items():
                c = statistics.median(r["columns"])
                same = statistics.median(r["ort"]) if r["ort"] else None
                line = (f"| {model} | {source} | {batch} | {threads} | {o:.3f} | {v} | {c:.3f} | {o / c:.2f} | "
                        + (f"{same:.3f} | {same / c:.2f} |" if same else " | |"))
                rec = {"model": model, "source": source, "batch": batch, "threads": threads, "variant": v, "ort_dense_ms": o,
                       "columns_ms": c, "ort_same_file_ms": same}
                if args.layers:
                    l = statistics.median(r["layers"])
                    line += f" {l:.3f} | {l / c:.2f} |"
                    rec["layers_ms"] = l
                print(line, flush=True)
                records.append(rec)
if args.json:
    with open(args.json, "w") as f:
        json.dump(records, f, indent=1)
