// Unfolding image patches into columns (im2col) and folding them back
// (col2im), the data movement of convolution as GEMM.
#pragma once

#include <cstdint>

namespace neurite::autograd::kernels {

struct ConvGeometry {
  int64_t channels, height, width;  // of the input image (one group)
  int64_t kernel_h, kernel_w;
  int64_t stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  int64_t out_h, out_w;
  int64_t rows() const { return channels * kernel_h * kernel_w; }
  int64_t cols() const { return out_h * out_w; }
  // A 1x1, stride-1, unpadded convolution reads the image as its own columns.
  bool is_pointwise() const {
    return kernel_h == 1 && kernel_w == 1 && stride_h == 1 && stride_w == 1 && pad_h == 0 && pad_w == 0;
  }
};

// cols (rows, cols) [(c, kh, kw), (oh, ow)] = image (channels, height, width) at the
// patch position, or 0 in the padding.
void im2col(const float* image, const ConvGeometry& g, float* cols);

// image += the columns folded back: the adjoint of im2col.
void col2im(const float* cols, const ConvGeometry& g, float* image);

}  // namespace neurite::autograd::kernels
