"""ONNX files exported by PyTorch 1.13, for the import tests (tests/engine/import_test.cpp)
and the fusion tests (tests/engine/fusion_test.cpp): a ResNet-style CNN, a
transformer encoder (LayerNorm, GELU, attention with a padding mask made from
the token ids), an MLP, and a model of the patterns the engine fuses (ReLU6
after a convolution and a linear layer, LayerNorm without affine, GELU in its
tanh form, nn.TransformerEncoderLayer), a network of PyTorch's QAT flow
(QuantizeLinear/DequantizeLinear pairs), each at opsets 13 and 17 with a
dynamic batch, plus one input batch and PyTorch's output for it.

    /usr/bin/python3 tests/golden/make_onnx_golden.py   # writes tests/golden/onnx/
"""
import os
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "onnx")
torch.manual_seed(0)


class Block(nn.Module):
    def __init__(self, i, o, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(i, o, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(o)
        self.conv2 = nn.Conv2d(o, o, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(o)
        self.down = nn.Sequential(nn.Conv2d(i, o, 1, stride, bias=False), nn.BatchNorm2d(o)) if stride != 1 or i != o else None

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (self.down(x) if self.down is not None else x))


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.layers = nn.Sequential(Block(8, 8, 1), Block(8, 16, 2), Block(16, 16, 1))
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        y = self.pool(self.layers(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


class Encoder(nn.Module):
    """Token ids (N, L) -> logits; id 0 is padding, masked out of attention and of the mean."""

    def __init__(self, vocab=50, d=32, heads=4, layers=2, length=12):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(1, length, d) * 0.1)
        self.attn = nn.ModuleList(nn.MultiheadAttention(d, heads, batch_first=True) for _ in range(layers))
        self.norm1 = nn.ModuleList(nn.LayerNorm(d) for _ in range(layers))
        self.norm2 = nn.ModuleList(nn.LayerNorm(d) for _ in range(layers))
        self.ff1 = nn.ModuleList(nn.Linear(d, 2 * d) for _ in range(layers))
        self.ff2 = nn.ModuleList(nn.Linear(2 * d, d) for _ in range(layers))
        self.head = nn.Linear(d, 5)

    def forward(self, tokens):
        pad = tokens == 0
        x = self.embed(tokens) + self.pos
        for attn, n1, n2, f1, f2 in zip(self.attn, self.norm1, self.norm2, self.ff1, self.ff2):
            h = n1(x)
            x = x + attn(h, h, h, key_padding_mask=pad, need_weights=False)[0]
            x = x + f2(F.gelu(f1(n2(x))))
        return self.head(x.mean(1))


class Fusions(nn.Module):
    """(N, 3, 2, 8) images -> 4 outputs through the patterns exporters write from primitives."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.up = nn.Linear(16, 32)
        self.down = nn.Linear(32, 16)
        self.layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, activation="gelu", batch_first=True)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        t = F.relu6(self.bn(self.conv(x))).flatten(2)  # (N, 8 tokens, 16)
        d = t - t.mean(-1, keepdim=True)  # a layer norm without affine, its square as a product
        n = d / torch.sqrt((d * d).mean(-1, keepdim=True) + 1e-5)
        t = t + self.down(F.gelu(self.up(n), approximate="tanh"))
        return F.relu6(self.head(self.layer(t).mean(1)))


class QatNet(nn.Module):
    """PyTorch's eager QAT flow: QuantStub/DeQuantStub, conv-bn(-relu) fused for
    QAT, a FloatFunctional add, and a linear head."""

    def __init__(self):
        super().__init__()
        self.quant = torch.ao.quantization.QuantStub()
        self.conv1, self.bn1, self.relu1 = nn.Conv2d(3, 8, 3, 1, 1), nn.BatchNorm2d(8), nn.ReLU()
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, 1, 1), nn.BatchNorm2d(8)
        self.add = nn.quantized.FloatFunctional()
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)
        self.dequant = torch.ao.quantization.DeQuantStub()

    def forward(self, x):
        y = self.relu1(self.bn1(self.conv1(self.quant(x))))
        y = self.relu2(self.add.add(self.bn2(self.conv2(y)), y))
        return self.dequant(self.fc(torch.flatten(self.pool(y), 1)))


def qat():
    """QatNet prepared with the fbgemm QAT qconfig (version 0: the observers
    PyTorch 1.13 can export) and trained on a few batches, observers then off."""
    import torch.ao.quantization as tq
    model = QatNet().train()
    model.qconfig = tq.get_default_qat_qconfig("fbgemm", version=0)
    tq.fuse_modules_qat(model, [["conv1", "bn1", "relu1"], ["conv2", "bn2"]], inplace=True)
    tq.prepare_qat(model, inplace=True)
    for _ in range(8):
        model(torch.randn(8, 3, 8, 8))
    model.apply(tq.disable_observer)
    return model


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 32), nn.Sigmoid(), nn.Linear(32, 3))


def export(name, model, x, trained=False):
    model.eval()
    with torch.no_grad():
        for m in model.modules():  # trained-looking statistics
            if isinstance(m, nn.BatchNorm2d) and not trained:
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
        y = model(x)
    for opset in (13, 17):
        torch.onnx.export(model, x, os.path.join(OUT, f"{name}_opset{opset}.onnx"), opset_version=opset,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    np.save(os.path.join(OUT, f"{name}_input.npy"), x.numpy())
    np.save(os.path.join(OUT, f"{name}_output.npy"), y.numpy())


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    export("resnet", ResNet(), torch.randn(3, 3, 16, 16))
    tokens = torch.randint(1, 50, (3, 12))
    tokens[0, 8:] = 0  # padded sequences
    tokens[2, 5:] = 0
    export("encoder", Encoder(), tokens)
    export("mlp", mlp(), torch.randn(3, 1, 8, 8))
    export("fusions", Fusions(), torch.randn(3, 3, 2, 8))
    export("qat", qat(), torch.randn(3, 3, 8, 8), trained=True)
