// 2-D convolution kernels on NCHW float tensors, forward and both gradients.
// They run oneDNN's direct convolutions (JIT for the CPU's ISA, channel-blocked
// inside): bench/compare_conv.py measured them 1.1-2x faster than our own
// im2col + GEMM and than PyTorch 1.13 on ResNet-20's shapes.
#pragma once

#include <cstdint>

namespace neurite::kernels {

struct ConvShape {
  int64_t batch, channels, height, width;  // input (N, C, H, W)
  int64_t filters, kernel_h, kernel_w;     // weight (F, C/groups, KH, KW)
  int64_t stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups;
  int64_t out_h, out_w;
  bool operator==(const ConvShape&) const = default;
};

// y = conv(x, w) + bias; bias may be null.
void conv_forward(const ConvShape& s, const float* x, const float* w, const float* bias, float* y);
// The gradients for output gradient dy, each overwritten: dx of the input,
// dw of the weight, db of the bias. A null pointer skips that gradient.
void conv_backward(const ConvShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw,
                   float* db);

}  // namespace neurite::kernels
