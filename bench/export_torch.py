#!/usr/bin/python3
"""The benchmark models as users bring them: PyTorch 1.13's own ONNX exporter
(`torch.onnx.export`, opset 13, dynamic batch) on the PyTorch twins of the zoo
(tests/golden/zoo.py): ResNet-20 with projection shortcuts (3x32x32), the
4-layer 256-wide `nn.TransformerEncoderLayer` encoder (128 tokens) and the
784-1024-1024-10 MLP. Each is written dense and 90 % unstructured
magnitude-pruned (every Conv2d and Linear weight and the attention input
projection, per tensor), as DIR/torch_<model>_<variant>.onnx.

    /usr/bin/python3 bench/export_torch.py DIR [--models resnet20,transformer,mlp] [--opset 13]

Opset 13 has no LayerNormalization: PyTorch writes it from ReduceMean, Sub,
Pow, Sqrt, Div, Mul and Add, and GELU from Erf. bench/compare_engine.py
--source torch runs these files.
"""
import argparse
import os
import sys

import torch
import torch.nn as nn

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "golden"))
import zoo  # noqa: E402

INPUTS = {  # model: (example input of batch 1, zoo options)
    "resnet20": (lambda: torch.randn(1, 3, 32, 32), {"in_channels": 3, "image_size": 32}),
    "transformer": (lambda: torch.randint(0, 8192, (1, 128)), {}),
    "mlp": (lambda: torch.randn(1, 1, 28, 28), {}),
}


def prunable(model):
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            yield m.weight
        elif isinstance(m, nn.MultiheadAttention) and m.in_proj_weight is not None:
            yield m.in_proj_weight


def prune(model, sparsity):
    with torch.no_grad():
        for w in prunable(model):
            k = int(round(sparsity * w.numel()))
            if k > 0:
                threshold = w.abs().flatten().kthvalue(k).values
                w[w.abs() <= threshold] = 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--models", default="resnet20,transformer,mlp")
    ap.add_argument("--opset", type=int, default=13)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name in args.models.split(","):
        make_input, options = INPUTS[name]
        torch.manual_seed(0)
        model = zoo.make_model(name, **options).eval()
        with torch.no_grad():
            for m in model.modules():  # trained-looking statistics, so batch norm is no identity
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 1.5)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.2, 0.2)
        x = make_input()
        for variant, sparsity in (("dense", 0.0), ("u90", 0.9)):
            prune(model, sparsity)
            path = os.path.join(args.out, f"torch_{name}_{variant}.onnx")
            torch.onnx.export(model, x, path, opset_version=args.opset, input_names=["input"],
                              output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
            print(path)


if __name__ == "__main__":
    main()
