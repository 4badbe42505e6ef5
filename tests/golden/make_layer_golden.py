#!/usr/bin/python3
"""Writes PyTorch 1.13 reference values for tests/layers/golden_test.cpp:
each layer and zoo model, run forward and backward once.

    /usr/bin/python3 tests/golden/make_layer_golden.py tests/golden/data

A case folder holds the input `x`, the upstream gradient `g`, the output `y`,
and per parameter or buffer name: `s.NAME` its value before the step, `d.NAME`
the gradient of sum(y * g), `b.NAME` a buffer after the forward pass.
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zoo  # noqa: E402

torch.manual_seed(0)
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "data")


def save(folder, name, value):
    value = value.detach().numpy() if isinstance(value, torch.Tensor) else value
    value = np.require(value, requirements="C")
    np.save(os.path.join(folder, name + ".npy"), value)


def case(name, module, x, training=True, mask=None):
    folder = os.path.join(OUT, "layer_" + name)
    os.makedirs(folder, exist_ok=True)
    for f in os.listdir(folder):
        os.remove(os.path.join(folder, f))
    module.train(training)
    for n, t in module.state_dict().items():
        save(folder, "s." + n, t)
    if x.dtype.is_floating_point:
        x.requires_grad_(True)
    y = module(x) if mask is None else module(x, src_key_padding_mask=mask) if isinstance(
        module, nn.TransformerEncoderLayer) else module(x, x, x, key_padding_mask=mask, need_weights=False)[0]
    g = torch.randn_like(y)
    (y * g).sum().backward()
    save(folder, "x", x)
    save(folder, "y", y)
    save(folder, "g", g)
    if mask is not None:
        save(folder, "mask", mask.to(torch.float32))
    for n, p in module.named_parameters():
        save(folder, "d." + n, p.grad)
    for n, b in module.named_buffers():
        save(folder, "b." + n, b)


case("linear", nn.Linear(5, 7), torch.randn(2, 3, 5))
case("conv2d", nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), torch.randn(2, 4, 9, 9))
case("batch_norm2d", nn.BatchNorm2d(3), torch.randn(4, 3, 5, 5) * 2 + 1)
case("layer_norm", nn.LayerNorm(8), torch.randn(2, 3, 8))
case("embedding", nn.Embedding(11, 4), torch.randint(0, 11, (2, 5)))
padding = torch.tensor([[False] * 5, [False, False, False, True, True]])
case("multihead_attention", nn.MultiheadAttention(8, 2, batch_first=True), torch.randn(2, 5, 8), mask=padding)
case("encoder_post_norm", zoo.encoder_layer(8, 2, 16, 0.0, "relu", False), torch.randn(2, 5, 8), mask=padding)
case("encoder_pre_norm_gelu", zoo.encoder_layer(8, 2, 16, 0.0, "gelu", True), torch.randn(2, 5, 8), mask=padding)
case("model_cnn", zoo.make_model("cnn", image_size=12), torch.randn(3, 1, 12, 12), training=False)
case("model_resnet20", zoo.make_model("resnet20", in_channels=3, image_size=16), torch.randn(2, 3, 16, 16))
case("model_mobilenet", zoo.make_model("mobilenet", image_size=12), torch.randn(2, 1, 12, 12))
case("model_vit_tiny", zoo.make_model("vit-tiny", image_size=8, dropout=0.0), torch.randn(2, 1, 8, 8))
