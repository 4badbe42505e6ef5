#include "engine/steps.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cstring>

#include "neurite/kernels/gemm.h"
#include "neurite/kernels/rows.h"
#include "neurite/kernels/scratch.h"
#include "neurite/kernels/transpose.h"
#include "engine/reference_ops.h"
#include "neurite/error.h"

namespace neurite::engine::detail {

const float* ConvStep::x(Values& v) const {
  return v[inputs[0]].data<float>();
}

const float* ConvStep::res(Values& v) const {
  return residual < 0 ? nullptr : v[residual].data<float>();
}

float* ConvStep::y(Values& v) const {
  return v[outputs[0]].data<float>();
}

DenseConvBuffers ConvStep::dense_buffers(Values& v) const {
  auto at = [&](int id) { return id < 0 ? nullptr : v[id].data<float>(); };
  return {.x = x(v), .residual = res(v), .y = y(v), .y_blocked = at(y_blocked), .x_blocked = at(x_blocked),
          .residual_blocked = at(residual_blocked)};
}

void ConvStep::run(Values& v, int threads) {
  if (dense) return dense->run(dense_buffers(v), 0, dense->geometry().batch, threads);
  packed->run(x(v), res(v), y(v));
}

void ConvStep::run_slice(Values& v, int64_t b0, int64_t b1, int threads) {
  if (dense) return dense->run(dense_buffers(v), b0, b1, threads);
  const int64_t h = packed->geometry().out_h;
  const int64_t chunks = (b1 - b0 + tile_images - 1) / tile_images;
  auto one = [&](int64_t c) {
    const int64_t i0 = b0 + c * tile_images;
    packed->run_tile(x(v), res(v), y(v), i0, std::min(b1, i0 + tile_images), 0, h);
  };
  if (threads > 1) {
    tbb::parallel_for(int64_t{0}, chunks, one);
  } else {
    for (int64_t c = 0; c < chunks; ++c) one(c);
  }
}

void ConvStep::run_band(Values& v, int64_t b0, int64_t b1, int64_t r0, int64_t r1) {
  packed->run_tile(x(v), res(v), y(v), b0, b1, r0, r1);
}

void LinearStep::run_units(Values& v, int64_t u0, int64_t u1, int threads) const {
  kernel->run(v[inputs[0]].data<float>(), residual < 0 ? nullptr : v[residual].data<float>(),
              v[outputs[0]].data<float>(), u0, u1, threads);
}

void RowStep::run_units(Values& v, int64_t r0, int64_t r1, int threads) const {
  const float* x = v[inputs[0]].data<float>();
  float* y = v[outputs[0]].data<float>();
  auto chunk = [&](int64_t a, int64_t b) {
    switch (kind) {
      case Kind::softmax: return kernels::softmax_rows(x, y, n, a, b);
      case Kind::layer_norm: return kernels::layer_norm_rows(x, y, n, a, b, scale.data(), bias.data(), epsilon);
      case Kind::mean: return kernels::mean_rows(x, y, n, a, b);
    }
  };
  if (threads <= 1) return chunk(r0, r1);
  const int64_t grain = std::max<int64_t>(1, 16384 / n);
  tbb::parallel_for(tbb::blocked_range<int64_t>(r0, r1, grain),
                    [&](const tbb::blocked_range<int64_t>& r) { chunk(r.begin(), r.end()); });
}

namespace {

// One operand along a run: contiguous, or one value repeated.
template <class T>
struct Run {
  const T* p;
  bool repeated;
  T operator[](int64_t i) const { return p[repeated ? 0 : i]; }
};

template <class Y, class F>
void fill_run(Y* y, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i) y[i] = f(i);
}

std::byte* bytes_of(Tensor& t) {
  return t.dtype() == autograd::Dtype::f32 ? reinterpret_cast<std::byte*>(t.data<float>())
                                           : reinterpret_cast<std::byte*>(t.data<int64_t>());
}

template <class T>
Run<T> run_of(const void* p, bool repeated) {
  return {static_cast<const T*>(p), repeated};
}

// A typed op over a run of n elements; at[k] points at operand k's first one.
void typed_run(const ElementwiseStep& s, const void* const* at, const bool* repeated, void* out, int64_t n) {
  using autograd::Dtype;
  const bool f32 = s.types[0] == Dtype::f32;  // operand 0's type (where: operand 1's)
  auto* yf = static_cast<float*>(out);
  auto* yi = static_cast<int64_t*>(out);
  switch (s.typed) {
    case TypedOp::where: {
      const auto c = run_of<int64_t>(at[0], repeated[0]);
      if (s.types[1] == Dtype::f32) {
        const auto a = run_of<float>(at[1], repeated[1]), b = run_of<float>(at[2], repeated[2]);
        return fill_run(yf, n, [&](int64_t i) { return c[i] != 0 ? a[i] : b[i]; });
      }
      const auto a = run_of<int64_t>(at[1], repeated[1]), b = run_of<int64_t>(at[2], repeated[2]);
      return fill_run(yi, n, [&](int64_t i) { return c[i] != 0 ? a[i] : b[i]; });
    }
    case TypedOp::equal: {
      if (f32) {
        const auto a = run_of<float>(at[0], repeated[0]), b = run_of<float>(at[1], repeated[1]);
        return fill_run(yi, n, [&](int64_t i) { return int64_t{a[i] == b[i]}; });
      }
      const auto a = run_of<int64_t>(at[0], repeated[0]), b = run_of<int64_t>(at[1], repeated[1]);
      return fill_run(yi, n, [&](int64_t i) { return int64_t{a[i] == b[i]}; });
    }
    case TypedOp::logical_not: {
      const auto a = run_of<int64_t>(at[0], repeated[0]);
      return fill_run(yi, n, [&](int64_t i) { return int64_t{a[i] == 0}; });
    }
    case TypedOp::cast:
    case TypedOp::expand: {
      const bool out_f32 = s.types.back() == Dtype::f32;
      if (f32) {
        const auto a = run_of<float>(at[0], repeated[0]);
        if (out_f32) return fill_run(yf, n, [&](int64_t i) { return a[i]; });
        if (s.to_bool) return fill_run(yi, n, [&](int64_t i) { return int64_t{a[i] != 0.0f}; });
        return fill_run(yi, n, [&](int64_t i) { return static_cast<int64_t>(a[i]); });
      }
      const auto a = run_of<int64_t>(at[0], repeated[0]);
      if (out_f32) return fill_run(yf, n, [&](int64_t i) { return static_cast<float>(a[i]); });
      if (s.to_bool) return fill_run(yi, n, [&](int64_t i) { return int64_t{a[i] != 0}; });
      return fill_run(yi, n, [&](int64_t i) { return a[i]; });
    }
  }
}

}  // namespace

void ElementwiseStep::run_units(Values& v, int64_t u0, int64_t u1, int threads) const {
  const size_t operands = strides.size(), rank = dims.size();
  std::vector<const std::byte*> base(operands);
  std::vector<size_t> size(operands);  // bytes per element
  for (size_t k = 0; k < operands; ++k) {
    Tensor& t = v[inputs[k]];
    base[k] = bytes_of(t);
    size[k] = t.dtype() == autograd::Dtype::f32 ? sizeof(float) : sizeof(int64_t);
  }
  Tensor& y = v[outputs[0]];
  std::byte* out_base = bytes_of(y);
  const size_t out_size = y.dtype() == autograd::Dtype::f32 ? sizeof(float) : sizeof(int64_t);
  const int64_t inner = dims.back();
  auto unit = [&](int64_t u) {
    const int64_t row = u / chunks_per_row, i0 = (u % chunks_per_row) * kChunk, n = std::min(kChunk, inner - i0);
    int64_t offset[3] = {0, 0, 0};  // elements into each operand
    for (int64_t rest = row, d = static_cast<int64_t>(rank) - 2; d >= 0; --d) {  // the row's index per dimension
      const int64_t i = rest % dims[static_cast<size_t>(d)];
      rest /= dims[static_cast<size_t>(d)];
      for (size_t k = 0; k < operands; ++k) offset[k] += i * strides[k][static_cast<size_t>(d)];
    }
    const void* at[3] = {};
    bool repeated[3] = {};
    for (size_t k = 0; k < operands; ++k) {
      repeated[k] = strides[k].back() == 0;
      if (!repeated[k]) offset[k] += i0;
      at[k] = base[k] + static_cast<size_t>(offset[k]) * size[k];
    }
    void* out = out_base + static_cast<size_t>(row * inner + i0) * out_size;
    const auto* a = static_cast<const float*>(at[0]);
    auto* yf = static_cast<float*>(out);
    if (kind == Kind::typed) {
      typed_run(*this, at, repeated, out, n);
    } else if (kind == Kind::binary) {
      kernels::binary(binary, a, repeated[0], static_cast<const float*>(at[1]), repeated[1], yf, n);
    } else if (repeated[0]) {  // a broadcast input along the whole run
      kernels::unary(unary, a, yf, 1);
      std::fill(yf + 1, yf + n, yf[0]);
    } else {
      kernels::unary(unary, a, yf, n);
    }
  };
  if (threads <= 1 || u1 - u0 < 2) {
    for (int64_t u = u0; u < u1; ++u) unit(u);
    return;
  }
  const int64_t grain = std::max<int64_t>(1, kChunk / std::max<int64_t>(1, std::min(inner, kChunk)));
  tbb::parallel_for(tbb::blocked_range<int64_t>(u0, u1, grain), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t u = r.begin(); u < r.end(); ++u) unit(u);
  });
}

void MeanAxesStep::run_units(Values& v, int64_t u0, int64_t u1, int threads) const {
  const float* x = v[inputs[0]].data<float>();
  float* y = v[outputs[0]].data<float>();
  const float scale = 1.0f / static_cast<float>(reduced);
  auto item = [&](int64_t o) {
    float* out = y + o * inner;
    const float* in = x + o * reduced * inner;
    std::copy(in, in + inner, out);
    for (int64_t r = 1; r < reduced; ++r) kernels::binary(kernels::BinaryOp::add, out, false, in + r * inner, false, out, inner);
    kernels::binary(kernels::BinaryOp::mul, out, false, &scale, true, out, inner);
  };
  if (threads > 1) {
    tbb::parallel_for(u0, u1, item);
  } else {
    for (int64_t o = u0; o < u1; ++o) item(o);
  }
}

void FakeQuantizeStep::run_units(Values& v, int64_t u0, int64_t u1, int threads) const {
  const float* x = v[inputs[0]].data<float>();
  float* y = v[outputs[0]].data<float>();
  const int64_t n = autograd::numel(item);
  auto one = [&](int64_t u) { fake_quantize(grids, x + u * n, y + u * n, item); };
  if (threads > 1) {
    tbb::parallel_for(u0, u1, one);
  } else {
    for (int64_t u = u0; u < u1; ++u) one(u);
  }
}

void Int8LinearStep::run_units(Values& v, int64_t u0, int64_t u1, int threads) const {
  constexpr int64_t kRows = 64, kFeatures = 64;  // a chunk of rows: its quads and sums stay in L2
  const int64_t k = weight.cols, n = weight.rows;
  const float* x = v[inputs[0]].data<float>();
  const float* res = residual >= 0 ? v[residual].data<float>() : nullptr;
  float* y = v[outputs[0]].data<float>();
  // Rows [r0, r0 + rows); `split`: this chunk's work over the threads (too few chunks to share out).
  auto chunk = [&](int64_t r0, int64_t rows, bool split) {
    thread_local kernels::Scratch<uint8_t> t_quads;
    thread_local kernels::Scratch<int32_t> t_sums, t_corrections;
    const int64_t ld = kernels::quad_ld(rows), quad_count = (k + 3) / 4;
    uint8_t* quads = kernels::scratch(t_quads, quad_count * ld * 4);
    int32_t* sums = kernels::scratch(t_sums, n * ld);
    for (int64_t q = 0; q < quad_count && rows < ld; ++q)  // the padding items, summed but not read
      std::memset(quads + (q * ld + rows) * 4, 0, static_cast<size_t>((ld - rows) * 4));
    auto quantize = [&](int64_t m0, int64_t m1) {
      return kernels::to_quads(x + (r0 + m0) * k, m1 - m0, k, x_grid, quads + m0 * 4, ld);
    };
    const int32_t zp = quantize(0, 0);
    int32_t* corrections = kernels::scratch(t_corrections, n);  // the zero point's share of each feature's sums
    for (int64_t f = 0; f < n; ++f) corrections[f] = zp * weight.row_sum[f];
    if (split) {
      tbb::parallel_for(int64_t{0}, rows, int64_t{16}, [&](int64_t m) { quantize(m, std::min(rows, m + 16)); });
    } else {
      quantize(0, rows);
    }
    const std::vector<int64_t> offsets = kernels::quad_offsets(k, ld);
    float* out = y + r0 * n;
    // A block of features: its sums, scaled, transposed into its columns of the
    // rows, with bias, residual and activation in one pass while they are in cache.
    auto block = [&](int64_t f0, int64_t f1) {
      kernels::int8_gemm(weight, quads, offsets.data(), ld, sums, f0, f1, isa);
      kernels::int8_epilogue_rows(sums + f0 * ld, ld, f1 - f0, rows, scale.data() + f0, corrections + f0,
                                  fused.bias.empty() ? nullptr : fused.bias.data() + f0,
                                  res != nullptr ? res + r0 * n + f0 : nullptr, n, fused.activation, out + f0, n, isa);
    };
    const int64_t blocks = (n + kFeatures - 1) / kFeatures;
    if (split) {
      tbb::parallel_for(int64_t{0}, blocks, [&](int64_t b) { block(b * kFeatures, std::min(n, (b + 1) * kFeatures)); });
    } else {
      for (int64_t b = 0; b < blocks; ++b) block(b * kFeatures, std::min(n, (b + 1) * kFeatures));
    }
  };
  const int64_t chunks = (u1 - u0 + kRows - 1) / kRows;
  // Isolated: a thread waiting inside a chunk's nested loops must not pick
  // up another chunk, which would reuse its scratch.
  auto run_chunk = [&](int64_t c, bool split) {
    const int64_t r0 = u0 + c * kRows;
    tbb::this_task_arena::isolate([&] { chunk(r0, std::min(kRows, u1 - r0), split); });
  };
  if (threads > 1 && chunks >= threads) {
    tbb::parallel_for(int64_t{0}, chunks, [&](int64_t c) { run_chunk(c, false); });
  } else {
    for (int64_t c = 0; c < chunks; ++c) run_chunk(c, threads > 1);
  }
}

void Int8ConvStep::run_units(Values& v, int64_t u0, int64_t u1, int threads) const {
  constexpr int64_t kFeatures = 4;
  const int64_t features = weight.rows, quads = (channels + 3) / 4, hw = height * width, out_hw = out_h * out_w;
  const float* x = v[inputs[0]].data<float>();
  const float* res = residual >= 0 ? v[residual].data<float>() : nullptr;
  float* y = v[outputs[0]].data<float>();
  const int32_t shift = kernels::uint8_shift(x_grid), zp = x_grid.zero_point + shift;
  const float inverse = 1.0f / x_grid.scale;
  const float lo = static_cast<float>(x_grid.qmin + shift), hi = static_cast<float>(x_grid.qmax + shift);
  auto image = [&](int64_t b, bool split) {
    thread_local kernels::Scratch<uint8_t> t_planes;
    thread_local kernels::Scratch<int32_t> t_sums;
    thread_local kernels::Scratch<uint32_t> t_words;
    const int64_t phases = stride_h * stride_w, bytes = phases * quads * plane * 4;
    uint8_t* planes = kernels::scratch(t_planes, bytes);
    int32_t* sums = kernels::scratch(t_sums, features * items);
    std::memset(planes, zp, static_cast<size_t>(bytes));  // the padding holds the zero point: x = 0
    const float* xb = x + b * channels * hw;
    uint32_t* words = kernels::scratch(t_words, width);
    const float zpf = static_cast<float>(zp);
    auto byte = [&](float value) { return static_cast<uint32_t>(kernels::grid_value(value, inverse, zpf, lo, hi)); };
    for (int64_t q = 0; q < quads; ++q)
      for (int64_t h = 0; h < height; ++h) {
        // Four channels' rows into words of four bytes, interleaved in registers. A
        // missing channel (past `channels`) repeats the last: its weights are 0.
        const float* from[4];
        for (int64_t c = 0; c < 4; ++c) from[c] = xb + std::min(channels - 1, 4 * q + c) * hw + h * width;
        const int64_t hp = h + pad_top;
        auto row_of = [&](int64_t p) {  // padded row hp's pixels of column phase p: one row of phase plane (hp % stride_h, p)
          return planes + ((((hp % stride_h) * stride_w + p) * quads + q) * plane + (hp / stride_h) * phase_width) * 4;
        };
        uint32_t* to = stride_w == 1 ? reinterpret_cast<uint32_t*>(row_of(0) + pad_left * 4) : words;
        const float *f0 = from[0], *f1 = from[1], *f2 = from[2], *f3 = from[3];
        for (int64_t w = 0; w < width; ++w)
          to[w] = byte(f0[w]) | byte(f1[w]) << 8 | byte(f2[w]) << 16 | byte(f3[w]) << 24;
        if (stride_w == 1) continue;
        for (int64_t p = 0; p < stride_w; ++p) {
          uint8_t* row = row_of(p);
          const int64_t first = (pad_left + stride_w - 1 - p) / stride_w * stride_w + p;  // the first padded column >= pad_left of phase p
          for (int64_t wp = first, j = first / stride_w; wp < pad_left + width; wp += stride_w, ++j)
            std::memcpy(row + j * 4, words + (wp - pad_left), 4);
        }
      }
    auto block = [&](int64_t f0, int64_t f1) {
      kernels::int8_gemm(weight, planes, quad_offset.data(), items, sums, f0, f1, isa);
      for (int64_t f = f0; f < f1; ++f) {
        const int64_t at = (b * features + f) * out_hw;
        kernels::int8_epilogue(sums + f * items, out_h, out_w, phase_width, scale[f], zp * weight.row_sum[f],
                               fused.bias.empty() ? 0.0f : fused.bias[f], res != nullptr ? res + at : nullptr,
                               fused.activation, y + at, isa);
      }
    };
    // Blocks of a few features: their sums stay in L1 for the epilogue.
    const int64_t blocks = (features + kFeatures - 1) / kFeatures;
    auto run_block = [&](int64_t k) { block(k * kFeatures, std::min(features, (k + 1) * kFeatures)); };
    if (split) {
      tbb::parallel_for(int64_t{0}, blocks, run_block);
    } else {
      for (int64_t k = 0; k < blocks; ++k) run_block(k);
    }
  };
  // Isolated: a thread waiting inside an image's nested loop must not pick up
  // another image, which would reuse its scratch planes.
  auto isolated = [&](int64_t b, bool split) { tbb::this_task_arena::isolate([&] { image(b, split); }); };
  if (threads > 1 && u1 - u0 >= threads) {
    tbb::parallel_for(u0, u1, [&](int64_t b) { isolated(b, false); });
  } else {
    for (int64_t b = u0; b < u1; ++b) isolated(b, threads > 1);
  }
}

void CopyStep::run_units(Values& v, int64_t b0, int64_t b1, int threads) const {
  const float* x = v[inputs[0]].data<float>();
  float* y = v[outputs[0]].data<float>();
  const int64_t per_out = autograd::numel(out_shape) / out_shape[0];
  auto item = [&](int64_t b) {
    if (axis == 0) {  // items start, start + 1, ...
      std::memcpy(y + b * per_out, x + (start + b) * per_out, static_cast<size_t>(per_out) * sizeof(float));
      return;
    }
    if (axis > 0) {  // out[o, j, i] = in[o, start + j, i] for o over the leading axes
      int64_t outer = 1, inner = 1;
      for (int64_t d = 1; d < axis; ++d) outer *= out_shape[static_cast<size_t>(d)];
      for (size_t d = static_cast<size_t>(axis) + 1; d < out_shape.size(); ++d) inner *= out_shape[d];
      const int64_t in_run = in_shape[static_cast<size_t>(axis)] * inner, out_run = out_shape[static_cast<size_t>(axis)] * inner;
      for (int64_t o = 0; o < outer; ++o)
        std::memcpy(y + (b * outer + o) * out_run, x + (b * outer + o) * in_run + start * inner,
                    static_cast<size_t>(out_run) * sizeof(float));
      return;
    }
    // Runs of the last axis, read at the input strides.
    const size_t rank = out_shape.size();
    const int64_t run = out_shape.back();
    const std::vector<int64_t>& stride = strides;
    std::vector<int64_t> index(rank, 0);
    const int64_t runs = per_out / run;
    const float* src_item = x + offset + b * stride[0];
    float* dst = y + b * per_out;
    for (int64_t r = 0; r < runs; ++r, dst += run) {
      int64_t at = 0;
      for (size_t d = 1; d + 1 < rank; ++d) at += index[d] * stride[d];
      if (const int64_t step = stride[rank - 1]; step == 1) {
        std::memcpy(dst, src_item + at, static_cast<size_t>(run) * sizeof(float));
      } else {  // the last axis moved: a strided read
        const float* src = src_item + at;
        for (int64_t j = 0; j < run; ++j) dst[j] = src[j * step];
      }
      for (size_t d = rank - 1; d-- > 1;) {  // next index of the middle axes
        if (++index[d] < out_shape[d]) break;
        index[d] = 0;
      }
    }
  };
  if (threads > 1) {
    tbb::parallel_for(b0, b1, item);
  } else {
    for (int64_t b = b0; b < b1; ++b) item(b);
  }
}

void CopyStep::run(Values& v, int threads) {
  if (axis == 0) {  // a run of whole items is a view, no copy (nothing writes into it: it is never grouped)
    v[outputs[0]] = v[inputs[0]].narrow(start, out_shape[0]).reshape(out_shape);
    return;
  }
  UnitStep::run(v, threads);
}

void BatchedMatMulStep::run_units(Values& v, int64_t i0, int64_t i1, int threads) const {
  const float* a = v[inputs[0]].data<float>();
  const float* b = v[inputs[1]].data<float>();
  float* c = v[outputs[0]].data<float>();
  auto one = [&](int64_t i) {
    const auto m = static_cast<size_t>(i);
    kernels::gemm(shape, alpha, a + a_at[m], lda, b + b_at[m], ldb, 0.0f, c + c_at[m], ldc, 1);
  };
  if (threads > 1) {
    tbb::parallel_for(i0, i1, one);
  } else {
    for (int64_t i = i0; i < i1; ++i) one(i);
  }
}

void AttentionStep::run_units(Values& v, int64_t i0, int64_t i1, int threads) const {
  const float* q = v[scores.inputs[0]].data<float>();
  const float* k = v[scores.inputs[1]].data<float>();
  const float* val = v[values.inputs[1]].data<float>();
  float* out = v[values.outputs[0]].data<float>();
  const float* mask_values = mask >= 0 ? v[mask].data<float>() : nullptr;
  const kernels::GemmShape& s1 = scores.shape;
  auto chunk = [&](int64_t a, int64_t b) {
    thread_local kernels::ScratchFloats t_scores;
    float* s = kernels::scratch(t_scores, s1.m * s1.n);
    for (int64_t i = a; i < b; ++i) {
      const auto m = static_cast<size_t>(i);
      kernels::gemm(s1, scores.alpha, q + scores.a_at[m], scores.lda, k + scores.b_at[m], scores.ldb, 0.0f, s, s1.n, 1);
      if (mask_values != nullptr)
        for (int64_t r = 0; r < s1.m; ++r)
          kernels::binary(kernels::BinaryOp::add, s + r * s1.n, false, mask_values + mask_at[m] + r * mask_row_stride,
                          false, s + r * s1.n, s1.n);
      kernels::softmax_rows(s, s, s1.n, 0, s1.m);
      kernels::gemm(values.shape, values.alpha, s, s1.n, val + values.b_at[m], values.ldb, 0.0f, out + values.c_at[m],
                    values.ldc, 1);
    }
  };
  if (threads <= 1) return chunk(i0, i1);
  tbb::parallel_for(tbb::blocked_range<int64_t>(i0, i1),
                    [&](const tbb::blocked_range<int64_t>& r) { chunk(r.begin(), r.end()); });
}

void GatherRowsStep::run_units(Values& v, int64_t u0, int64_t u1, int threads) const {
  const float* table = v[inputs[0]].data<float>();
  const int64_t* index = v[inputs[1]].data<int64_t>();
  float* y = v[outputs[0]].data<float>();
  auto copy = [&](int64_t a, int64_t b) {
    for (int64_t u = a; u < b; ++u) {
      const int64_t i = index[u] < 0 ? index[u] + rows : index[u];
      check<ValueError>(i >= 0 && i < rows, "node '{}' (Gather): index {} is out of range for {} rows", info.name, index[u], rows);
      std::memcpy(y + u * row, table + i * row, static_cast<size_t>(row) * sizeof(float));
    }
  };
  if (threads <= 1) return copy(u0, u1);
  tbb::parallel_for(tbb::blocked_range<int64_t>(u0, u1, std::max<int64_t>(1, 4096 / row)),
                    [&](const tbb::blocked_range<int64_t>& r) { copy(r.begin(), r.end()); });
}

void ConcatStep::run_units(Values& v, int64_t u0, int64_t u1, int threads) const {
  float* y = v[outputs[0]].data<float>();
  int64_t total = 0;
  for (int64_t r : runs) total += r;
  auto unit = [&](int64_t u) {
    float* out = y + u * total;
    for (size_t k = 0; k < runs.size(); ++k) {
      std::memcpy(out, v[inputs[k]].data<float>() + u * runs[k], static_cast<size_t>(runs[k]) * sizeof(float));
      out += runs[k];
    }
  };
  if (threads > 1) {
    tbb::parallel_for(u0, u1, unit);
  } else {
    for (int64_t u = u0; u < u1; ++u) unit(u);
  }
}

void PoolStep::run_units(Values& v, int64_t b0, int64_t b1, int threads) const {
  const float* x = v[inputs[0]].data<float>();
  float* y = v[outputs[0]].data<float>();
  const int64_t c = geo.channels;
  if (threads <= 1) return pool_planes(geo, is_max, include_pad, x, y, b0 * c, b1 * c);
  tbb::parallel_for(tbb::blocked_range<int64_t>(b0 * c, b1 * c), [&](const tbb::blocked_range<int64_t>& r) {
    pool_planes(geo, is_max, include_pad, x, y, r.begin(), r.end());
  });
}

void NodeStep::run(Values& v, int) {
  std::vector<Tensor> in;
  for (int id : inputs) in.push_back(id < 0 ? Tensor() : v[id]);
  std::vector<Tensor> out = run_node(node, in);
  for (size_t k = 0; k < outputs.size(); ++k)
    if (outputs[k] >= 0 && k < out.size()) v[outputs[k]] = out[k];
}

void NodeStep::run_slice(Values& v, int64_t b0, int64_t b1, int) {
  std::vector<Tensor> in;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const int id = inputs[k];
    if (id < 0) {
      in.emplace_back();
    } else if (static_cast<int>(k) == shape_input) {
      std::vector<int64_t> shape(out_shape.begin(), out_shape.end());
      shape[0] = b1 - b0;
      in.push_back(Tensor::from_data({static_cast<int64_t>(shape.size())}, shape));
    } else {
      in.push_back(sliced[k] ? v[id].narrow(b0, b1 - b0) : v[id]);
    }
  }
  std::vector<Tensor> out = run_node(node, in);
  for (size_t k = 0; k < outputs.size(); ++k)
    if (outputs[k] >= 0 && k < out.size()) {
      Tensor dst = v[outputs[k]].narrow(b0, b1 - b0);
      dst.copy_from_(out[k]);
    }
}

}  // namespace neurite::engine::detail
