#include "autograd/kernels/im2col.h"

#include <algorithm>

namespace neurite::autograd::kernels {

namespace {

// The output columns [begin, end) whose input column ow*stride - pad + offset
// lies inside [0, size).
void valid_range(int64_t offset, int64_t stride, int64_t size, int64_t out, int64_t& begin, int64_t& end) {
  // first ow with ow*stride + offset >= 0, first ow with ow*stride + offset >= size
  auto ceil_div = [](int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); };
  begin = std::clamp<int64_t>(ceil_div(-offset, stride), 0, out);
  end = std::clamp<int64_t>(ceil_div(size - offset, stride), begin, out);
}

}  // namespace

void im2col(const float* image, const ConvGeometry& g, float* cols) {
  for (int64_t c = 0; c < g.channels; ++c)
    for (int64_t kh = 0; kh < g.kernel_h; ++kh)
      for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
        float* row = cols + ((c * g.kernel_h + kh) * g.kernel_w + kw) * g.cols();
        const int64_t x_offset = kw * g.dilation_w - g.pad_w;
        int64_t ow_begin, ow_end;
        valid_range(x_offset, g.stride_w, g.width, g.out_w, ow_begin, ow_end);
        for (int64_t oh = 0; oh < g.out_h; ++oh) {
          float* out = row + oh * g.out_w;
          const int64_t y = oh * g.stride_h - g.pad_h + kh * g.dilation_h;
          if (y < 0 || y >= g.height) {
            std::fill(out, out + g.out_w, 0.0f);
            continue;
          }
          const float* in = image + (c * g.height + y) * g.width + x_offset;
          std::fill(out, out + ow_begin, 0.0f);
          if (g.stride_w == 1) {
            std::copy(in + ow_begin, in + ow_end, out + ow_begin);
          } else {
            for (int64_t ow = ow_begin; ow < ow_end; ++ow) out[ow] = in[ow * g.stride_w];
          }
          std::fill(out + ow_end, out + g.out_w, 0.0f);
        }
      }
}

void col2im(const float* cols, const ConvGeometry& g, float* image) {
  for (int64_t c = 0; c < g.channels; ++c)
    for (int64_t kh = 0; kh < g.kernel_h; ++kh)
      for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
        const float* row = cols + ((c * g.kernel_h + kh) * g.kernel_w + kw) * g.cols();
        const int64_t x_offset = kw * g.dilation_w - g.pad_w;
        int64_t ow_begin, ow_end;
        valid_range(x_offset, g.stride_w, g.width, g.out_w, ow_begin, ow_end);
        for (int64_t oh = 0; oh < g.out_h; ++oh) {
          const int64_t y = oh * g.stride_h - g.pad_h + kh * g.dilation_h;
          if (y < 0 || y >= g.height) continue;
          const float* in = row + oh * g.out_w;
          float* out = image + (c * g.height + y) * g.width + x_offset;
          for (int64_t ow = ow_begin; ow < ow_end; ++ow) out[ow * g.stride_w] += in[ow];
        }
      }
}

}  // namespace neurite::autograd::kernels
