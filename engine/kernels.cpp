#include "engine/kernels.h"

#include <omp.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <dnnl.hpp>
#include <limits>
#include <map>
#include <mutex>

#include "autograd/kernels/gemm.h"
#include "autograd/kernels/transpose.h"
#include "engine/cache.h"

namespace neurite::engine::detail {

namespace kernels = autograd::kernels;

namespace {

std::pair<int, int> block_of(WeightFormat f) {
  if (f == WeightFormat::rows4) return {4, 1};
  if (f == WeightFormat::cols4) return {1, 4};
  return {1, 1};
}

int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

// Calls f(r0, c0) for each block of a (rows, cols) matrix padded to whole blocks that holds a nonzero.
template <typename F>
void for_each_kept_block(const float* w, int64_t rows, int64_t cols, int br, int bc, bool keep_all, F f) {
  for (int64_t r0 = 0; r0 < rows; r0 += br)
    for (int64_t c0 = 0; c0 < cols; c0 += bc) {
      bool kept = keep_all;
      for (int r = 0; r < br && !kept; ++r)
        for (int c = 0; c < bc && !kept; ++c)
          kept = r0 + r < rows && c0 + c < cols && w[(r0 + r) * cols + c0 + c] != 0;
      if (kept) f(r0, c0);
    }
}

inline float activate(float v, Activation a) { return a == Activation::relu && v < 0 ? 0.0f : v; }

// even[i] = src[2i], odd[i] = src[2i + 1]: the two column phases of a stride-2 row.
void deinterleave(const float* __restrict src, int64_t n, float* __restrict even, float* __restrict odd) {
  const int64_t pairs = n / 2;
  for (int64_t i = 0; i < pairs; ++i) {
    even[i] = src[2 * i];
    odd[i] = src[2 * i + 1];
  }
  if (n % 2 != 0) even[pairs] = src[n - 1];
}

// to[i] = act(from[i] + add (+ res[i])): one branch-free loop per case, so
// it vectorises; in place when to == from.
void finish_row(float* to, const float* from, int64_t n, float add, const float* __restrict res, Activation a) {
  const bool relu = a == Activation::relu;
  if (res != nullptr && relu) {
    for (int64_t i = 0; i < n; ++i) to[i] = std::max(from[i] + add + res[i], 0.0f);
  } else if (res != nullptr) {
    for (int64_t i = 0; i < n; ++i) to[i] = from[i] + add + res[i];
  } else if (relu) {
    for (int64_t i = 0; i < n; ++i) to[i] = std::max(from[i] + add, 0.0f);
  } else {
    for (int64_t i = 0; i < n; ++i) to[i] = from[i] + add;
  }
}

// Scratch buffers start on a cache line: the kernels' 64-byte loads of
// feature-major rows (multiples of 16 floats apart) then never straddle two
// lines (straddling made the CSR product 1.5x slower).
template <typename T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <typename U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64})); }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t{64}); }
  bool operator==(const CacheLineAllocator&) const { return true; }
};
using ScratchFloats = std::vector<float, CacheLineAllocator<float>>;

thread_local ScratchFloats t_planes, t_rows, t_xt, t_yt;
float* scratch(ScratchFloats& buffer, int64_t size) {
  if (static_cast<int64_t>(buffer.size()) < size) buffer.resize(static_cast<size_t>(size));
  return buffer.data();
}

}  // namespace

double fill_ratio(const float* w, int64_t rows, int64_t cols, WeightFormat format) {
  const auto [br, bc] = block_of(format);
  int64_t nnz = 0, blocks = 0;
  for (int64_t i = 0; i < rows * cols; ++i) nnz += w[i] != 0;
  for_each_kept_block(w, rows, cols, br, bc, false, [&](int64_t, int64_t) { ++blocks; });
  return nnz == 0 ? std::numeric_limits<double>::infinity()
                  : static_cast<double>(blocks * br * bc) / static_cast<double>(nnz);
}

PackedWeight pack(const float* w, int64_t rows, int64_t cols, WeightFormat format) {
  PackedWeight p;
  p.format = format;
  // Dense packs every 4x1 block: the sparse kernel's best register tile.
  const bool keep_all = format == WeightFormat::dense;
  const auto [br, bc] = block_of(keep_all ? WeightFormat::rows4 : format);
  BlockSparse& a = p.pattern;
  a.block_rows = br, a.block_cols = bc, a.rows = round_up(rows, br), a.cols = round_up(cols, bc);
  a.row_ptr.assign(static_cast<size_t>(a.rows / br + 1), 0);
  int64_t nnz = 0;
  for (int64_t i = 0; i < rows * cols; ++i) nnz += w[i] != 0;
  p.density = rows * cols == 0 ? 0.0 : static_cast<double>(nnz) / static_cast<double>(rows * cols);
  for_each_kept_block(w, rows, cols, br, bc, keep_all, [&](int64_t r0, int64_t c0) {
    a.value_at.push_back(static_cast<int32_t>(p.values.size()));
    for (int c = 0; c < bc; ++c) a.col.push_back(static_cast<int32_t>(c0 + c));
    for (int r = 0; r < br; ++r)
      for (int c = 0; c < bc; ++c)
        p.values.push_back(r0 + r < rows && c0 + c < cols ? w[(r0 + r) * cols + c0 + c] : 0.0f);
    ++a.row_ptr[static_cast<size_t>(r0 / br + 1)];
  });
  for (size_t r = 1; r < a.row_ptr.size(); ++r) a.row_ptr[r] += a.row_ptr[r - 1];
  return p;
}

// ---- convolution ----------------------------------------------------------

std::pair<int64_t, int64_t> ConvGeometry::input_rows(int64_t r0, int64_t r1) const {
  const int64_t lo = r0 * sh - pad_top, hi = (r1 - 1) * sh - pad_top + (kh - 1) * dh + 1;
  return {std::clamp<int64_t>(lo, 0, height), std::clamp<int64_t>(hi, 0, height)};
}

PackedConv::PackedConv(const ConvGeometry& g, PackedWeight w, Fused fused)
    : g_(g), w_(std::move(w)), fused_(std::move(fused)) {}

namespace {
// The phase-plane layout of one tile: output rows [r0, r1) read padded input
// rows [r0·sh, r0·sh + window); plane (a, b) holds the window's padded rows
// a, a + sh, ... and padded columns b, b + sw, ...
struct TileLayout {
  int64_t window, hq, wq, plane, ld, count;
  TileLayout(const ConvGeometry& g, int64_t images, int64_t rows) {
    window = (rows - 1) * g.sh + (g.kh - 1) * g.dh + 1;
    const int64_t wp = g.width + g.pad_left + g.pad_right;
    hq = (window + g.sh - 1) / g.sh, wq = (wp + g.sw - 1) / g.sw, plane = hq * wq, count = images;
    const int64_t front = (g.kh - 1) * g.dh / g.sh * wq + (g.kw - 1) * g.dw / g.sw;
    ld = count * plane + front + 16;
  }
  int64_t phases(const ConvGeometry& g) const { return g.sh * g.sw; }
};
}  // namespace

int64_t PackedConv::tile_bytes(int64_t images, int64_t rows) const {
  const TileLayout t(g_, images, rows);
  const auto [lo, hi] = g_.input_rows(0, rows);
  const int64_t input = images * g_.channels * (hi - lo) * g_.width;
  const int64_t planes = t.phases(g_) * g_.channels * t.ld;
  const int64_t output = 2 * images * g_.filters * rows * g_.out_w + w_.pattern.rows * t.count * t.plane;
  return static_cast<int64_t>(sizeof(float)) * (input + planes + output);
}

void PackedConv::run_tile(const float* x, const float* residual, float* y, int64_t b0, int64_t b1, int64_t r0,
                          int64_t r1) const {
  const ConvGeometry& g = g_;
  const TileLayout t(g, b1 - b0, r1 - r0);
  const int64_t phases = t.phases(g), taps = g.kh * g.kw;
  float* planes = scratch(t_planes, phases * g.channels * t.ld);
  std::fill(planes, planes + phases * g.channels * t.ld, 0.0f);
  // The input window into phase planes; rows outside the image stay zero (padding).
  const int64_t first_padded = r0 * g.sh;
  const auto [lo, hi] = g.input_rows(r0, r1);
  // Per column phase b: its first input column and where it starts in the plane row.
  int64_t x0[8], start[8];
  const int64_t sw = std::min<int64_t>(g.sw, 8);
  for (int64_t b = 0; b < sw; ++b) {
    x0[b] = ((b - g.pad_left) % g.sw + g.sw) % g.sw;
    start[b] = (x0[b] + g.pad_left) / g.sw;
  }
  for (int64_t iy = lo; iy < hi; ++iy) {
    const int64_t q = iy + g.pad_top - first_padded, a = q % g.sh, row = q / g.sh;
    for (int64_t s = 0; s < t.count; ++s)
      for (int64_t c = 0; c < g.channels; ++c) {
        const float* src = x + (((b0 + s) * g.channels + c) * g.height + iy) * g.width;
        float* base = planes + s * t.plane + row * t.wq;
        auto phase_row = [&](int64_t b) { return base + ((a * g.sw + b) * g.channels + c) * t.ld + start[b]; };
        if (g.sw == 1) {
          std::memcpy(phase_row(0), src, static_cast<size_t>(g.width) * sizeof(float));
        } else if (g.sw == 2) {
          float* dst[2];
          dst[x0[0]] = phase_row(0), dst[x0[1]] = phase_row(1);
          deinterleave(src, g.width, dst[0], dst[1]);
        } else {
          for (int64_t b = 0; b < sw; ++b) {
            float* at = phase_row(b);
            for (int64_t ix = x0[b], i = 0; ix < g.width; ix += g.sw, ++i) at[i] = src[ix];
          }
        }
      }
  }
  // Column (c, tap) of the weight reads its phase plane at the tap's shift; padded columns read zeros.
  thread_local std::vector<int64_t> offsets;
  offsets.assign(static_cast<size_t>(w_.pattern.cols), 0);
  for (int64_t c = 0; c < g.channels; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        const int64_t phase = (i * g.dh % g.sh) * g.sw + j * g.dw % g.sw;
        offsets[static_cast<size_t>(c * taps + i * g.kw + j)] =
            (phase * g.channels + c) * t.ld + i * g.dh / g.sh * t.wq + j * g.dw / g.sw;
      }
  const int64_t band = r1 - r0, ld_rows = t.count * t.plane;
  float* rows = scratch(t_rows, w_.pattern.rows * ld_rows);
  const int64_t pixels = (t.count - 1) * t.plane + band * t.wq;
  // Chunks of pixels outside, every row inside: a chunk's taps of all
  // channels read a few neighbouring pixel runs, which stay in L1 (rows
  // outside swept all of the planes through L2 once per row: 1.3x slower).
  constexpr int64_t kChunk = 256;
  for (int64_t p = 0; p < pixels; p += kChunk)
    kernels::spmm(w_.pattern, w_.values.data(), {planes, offsets.data()}, rows, ld_rows, 0, w_.pattern.row_blocks(),
                  p, std::min(pixels, p + kChunk));
  // Valid outputs to y, with bias, residual and activation.
  for (int64_t s = 0; s < t.count; ++s)
    for (int64_t f = 0; f < g.filters; ++f) {
      const float add = fused_.bias.empty() ? 0.0f : fused_.bias[static_cast<size_t>(f)];
      for (int64_t oy = r0; oy < r1; ++oy) {
        const float* from = rows + f * ld_rows + s * t.plane + (oy - r0) * t.wq;
        const int64_t at = (((b0 + s) * g.filters + f) * g.out_h + oy) * g.out_w;
        finish_row(y + at, from, g.out_w, add, residual != nullptr ? residual + at : nullptr, fused_.activation);
      }
    }
}

void PackedConv::run(const float* x, const float* residual, float* y) const {
  // Tiles of whole images while they fit in L2, else bands of rows; enough
  // tiles for every thread.
  const int64_t budget = l2_cache_bytes() / 2;
  int64_t images = 1, rows = g_.out_h;
  while (rows > 1 && tile_bytes(1, rows) > budget) rows = (rows + 1) / 2;
  if (rows == g_.out_h)
    while (images < g_.batch && tile_bytes(images * 2, rows) <= budget) images *= 2;
  const int64_t want = 2 * tbb::this_task_arena::max_concurrency();
  while (images > 1 && (g_.batch + images - 1) / images < want) images /= 2;
  const int64_t groups = (g_.batch + images - 1) / images;
  while (rows > 4 && groups * ((g_.out_h + rows - 1) / rows) < want) rows = (rows + 1) / 2;
  const int64_t bands = (g_.out_h + rows - 1) / rows;
  tbb::parallel_for(int64_t{0}, groups * bands, [&](int64_t task) {
    const int64_t b0 = task / bands * images, r0 = task % bands * rows;
    run_tile(x, residual, y, b0, std::min(g_.batch, b0 + images), r0, std::min(g_.out_h, r0 + rows));
  });
}

// The primitives for calls of `images` images: one per filter part.
struct DenseConv::Variant {
  dnnl::memory::desc src, dst, src_plain, dst_plain;
  std::vector<dnnl::convolution_forward> parts;
  std::vector<dnnl::memory::desc> dst_part;
  std::vector<dnnl::memory> weights;
  std::vector<dnnl::memory::desc> scratchpad;
  dnnl::reorder to_src, to_dst, from_dst;
};

struct DenseConv::Primitives {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  int64_t groups = 1;
  std::vector<float> weight;                  // the user's OIHW weight
  std::vector<std::vector<float>> bias_parts;  // per filter part
  int parts = 1;
  int64_t src_size = 0, dst_size = 0;  // floats per image
  bool blocked_src = false, blocked_dst = false;
  std::vector<float> out;  // the batch's output in dst's layout, when blocked
  std::mutex mutex;
  std::map<int64_t, std::unique_ptr<Variant>> variants;
};

namespace {
thread_local ScratchFloats t_src;
}

DenseConv::DenseConv(const ConvGeometry& g, int64_t groups, const float* weight, Fused fused, int threads)
    : p_(std::make_unique<Primitives>()), g_(g), fused_(std::move(fused)) {
  Primitives& p = *p_;
  p.groups = groups;
  p.weight.assign(weight, weight + g.filters * g.channels / groups * g.kh * g.kw);
  p.blocked_src = g.channels % 16 == 0;
  p.blocked_dst = g.filters % 16 == 0;
  p.src_size = g.channels * g.height * g.width;
  p.dst_size = g.filters * g.out_h * g.out_w;
  // Filter parts keep every thread busy on a batch smaller than the threads.
  if (groups == 1 && p.blocked_dst && g.batch < threads)
    while (p.parts * 2 <= threads && g.filters % (16 * p.parts * 2) == 0) p.parts *= 2;
  const int64_t fp = g.filters / p.parts;
  for (int part = 0; part < p.parts; ++part) {
    p.bias_parts.emplace_back(static_cast<size_t>(fp), 0.0f);
    for (int64_t f = 0; f < fp && !fused_.bias.empty(); ++f)
      p.bias_parts.back()[static_cast<size_t>(f)] = fused_.bias[static_cast<size_t>(part * fp + f)];
  }
  if (p.blocked_dst) p.out.resize(static_cast<size_t>(g.batch * p.dst_size));
}

DenseConv::~DenseConv() = default;

DenseConv::Variant& DenseConv::variant(int64_t images) {
  Primitives& p = *p_;
  std::lock_guard lock(p.mutex);
  auto& v = p.variants[images];
  if (v) return *v;
  v = std::make_unique<Variant>();
  using dnnl::memory;
  using Tag = memory::format_tag;
  const auto f32 = memory::data_type::f32;
  const ConvGeometry& g = g_;
  const memory::dims x_dims{images, g.channels, g.height, g.width}, y_dims{images, g.filters, g.out_h, g.out_w};
  v->src_plain = memory::desc(x_dims, f32, Tag::nchw);
  v->dst_plain = memory::desc(y_dims, f32, Tag::nchw);
  v->src = memory::desc(x_dims, f32, p.blocked_src ? Tag::nChw16c : Tag::nchw);
  v->dst = memory::desc(y_dims, f32, p.blocked_dst ? Tag::nChw16c : Tag::nchw);
  const int parts = images == 1 ? p.parts : 1;  // a part's channel blocks are contiguous in one image only
  const int64_t fp = g.filters / parts;
  dnnl::post_ops ops;
  if (fused_.residual) ops.append_sum(1.0f);
  if (fused_.activation == Activation::relu) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(ops);
  // Our scratchpad, per thread: the library's own is shared, and threads run these primitives concurrently.
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::stream stream(p.engine);
  for (int part = 0; part < parts; ++part) {
    const memory::desc dst_part({images, fp, g.out_h, g.out_w}, f32, p.blocked_dst ? Tag::nChw16c : Tag::nchw);
    const int64_t groups = p.groups;
    const memory::desc w_user =
        groups == 1 ? memory::desc({fp, g.channels, g.kh, g.kw}, f32, Tag::oihw)
                    : memory::desc({groups, g.filters / groups, g.channels / groups, g.kh, g.kw}, f32, Tag::goihw);
    const dnnl::convolution_forward::desc desc(
        dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, v->src,
        memory::desc(w_user.dims(), f32, Tag::any), memory::desc({fp}, f32, Tag::x), dst_part, {g.sh, g.sw},
        {g.dh - 1, g.dw - 1}, {g.pad_top, g.pad_left}, {g.pad_bottom, g.pad_right});
    const dnnl::convolution_forward::primitive_desc pd(desc, attr, p.engine);
    v->parts.emplace_back(pd);
    v->dst_part.push_back(dst_part);
    v->scratchpad.push_back(pd.scratchpad_desc());
    // Weights reordered once into the layout the primitive wants.
    const int64_t per_filter = g.channels / groups * g.kh * g.kw;
    memory user(w_user, p.engine, p.weight.data() + part * fp * per_filter);
    v->weights.emplace_back(pd.weights_desc(), p.engine);
    dnnl::reorder(user, v->weights.back()).execute(stream, user, v->weights.back());
  }
  stream.wait();
  if (p.blocked_src) v->to_src = dnnl::reorder(dnnl::reorder::primitive_desc(p.engine, v->src_plain, p.engine, v->src));
  if (p.blocked_dst) {
    v->to_dst = dnnl::reorder(dnnl::reorder::primitive_desc(p.engine, v->dst_plain, p.engine, v->dst));
    v->from_dst = dnnl::reorder(dnnl::reorder::primitive_desc(p.engine, v->dst, p.engine, v->dst_plain));
  }
  return *v;
}

void DenseConv::read_input_from(const DenseConv* producer) {
  input_from_ = producer != nullptr && producer->p_->blocked_dst && p_->blocked_src ? producer : nullptr;
}
void DenseConv::read_residual_from(const DenseConv* producer) {
  residual_from_ = producer != nullptr && producer->p_->blocked_dst && p_->blocked_dst ? producer : nullptr;
}

// The input of images [n, n + images) in the layout the primitive reads.
const float* DenseConv::source(const float* x, int64_t n, int64_t images, Variant& v) {
  Primitives& p = *p_;
  if (input_from_ != nullptr) return input_from_->p_->out.data() + n * p.src_size;
  if (!p.blocked_src) return x + n * p.src_size;
  float* src = scratch(t_src, images * p.src_size);
  dnnl::stream stream(p.engine);
  dnnl::memory plain(v.src_plain, p.engine, const_cast<float*>(x + n * p.src_size)), blocked(v.src, p.engine, src);
  v.to_src.execute(stream, plain, blocked);
  stream.wait();
  return src;
}

// Where images [n, n + images) of the output go; holding the residual, in
// the output's layout, when one is fused (the sum post-op adds to dst).
float* DenseConv::destination(const float* residual, float* y, int64_t n, int64_t images, Variant& v) {
  Primitives& p = *p_;
  float* dst = (p.blocked_dst ? p.out.data() : y) + n * p.dst_size;
  if (!fused_.residual) return dst;
  dnnl::stream stream(p.engine);
  if (residual_from_ != nullptr) {
    std::memcpy(dst, residual_from_->p_->out.data() + n * p.dst_size,
                static_cast<size_t>(images * p.dst_size) * sizeof(float));
  } else if (p.blocked_dst) {
    dnnl::memory plain(v.dst_plain, p.engine, const_cast<float*>(residual + n * p.dst_size)),
        blocked(v.dst, p.engine, dst);
    v.to_dst.execute(stream, plain, blocked);
  } else if (residual + n * p.dst_size != dst) {
    std::memcpy(dst, residual + n * p.dst_size, static_cast<size_t>(images * p.dst_size) * sizeof(float));
  }
  stream.wait();
  return dst;
}

namespace {
// One primitive execution on the calling thread, with its scratchpad.
void execute(const dnnl::engine& e, const dnnl::convolution_forward& conv, const dnnl::memory::desc& src_desc,
             const float* src, const dnnl::memory::desc& dst_desc, float* dst, const dnnl::memory& weights,
             const std::vector<float>& bias, const dnnl::memory::desc& scratchpad, dnnl::stream& stream) {
  using dnnl::memory;
  memory src_m(src_desc, e, const_cast<float*>(src)), dst_m(dst_desc, e, dst);
  memory bias_m(memory::desc({static_cast<int64_t>(bias.size())}, memory::data_type::f32, memory::format_tag::x), e,
                const_cast<float*>(bias.data()));
  thread_local std::vector<char> t_scratchpad;
  if (t_scratchpad.size() < scratchpad.get_size()) t_scratchpad.resize(scratchpad.get_size());
  memory scratch_m(scratchpad, e, t_scratchpad.data());
  conv.execute(stream, {{DNNL_ARG_SRC, src_m}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_BIAS, bias_m},
                        {DNNL_ARG_DST, dst_m}, {DNNL_ARG_SCRATCHPAD, scratch_m}});
}
}  // namespace

void DenseConv::write_plain_output(const float* dst, float* y, int64_t n, Variant& v) {
  Primitives& p = *p_;
  if (!p.blocked_dst || !write_plain_) return;
  dnnl::stream stream(p.engine);
  dnnl::memory blocked(v.dst, p.engine, const_cast<float*>(dst)), out(v.dst_plain, p.engine, y + n * p.dst_size);
  v.from_dst.execute(stream, blocked, out);
  stream.wait();
}

// Images [n, n + images) on this thread, every filter part in turn.
void DenseConv::run_call(const float* x, const float* residual, float* y, int64_t n, int64_t images) {
  Primitives& p = *p_;
  Variant& v = variant(images);
  dnnl::stream stream(p.engine);
  const float* src = source(x, n, images, v);
  float* dst = destination(residual, y, n, images, v);
  const int64_t part_size = p.dst_size / static_cast<int64_t>(v.parts.size());
  for (size_t k = 0; k < v.parts.size(); ++k)
    execute(p.engine, v.parts[k], v.src, src, v.dst_part[k], dst + static_cast<int64_t>(k) * part_size, v.weights[k],
            p.bias_parts[k], v.scratchpad[k], stream);
  write_plain_output(dst, y, n, v);
  stream.wait();
}

void DenseConv::run(const float* x, const float* residual, float* y, int64_t b0, int64_t b1, int threads) {
  Primitives& p = *p_;
  const int64_t count = b1 - b0;
  if (count <= 0) return;
  omp_set_num_threads(1);
  if (threads <= 1) return run_call(x, residual, y, b0, count);
  if (count < threads) {
    for (int64_t n = b0; n < b1; ++n) {
      if (p.parts > 1) {  // filter parts in parallel over a shared input
        Variant& v = variant(1);
        dnnl::stream stream(p.engine);
        const float* src = source(x, n, 1, v);
        float* dst = destination(residual, y, n, 1, v);
        stream.wait();
        const int64_t part_size = p.dst_size / p.parts;
        tbb::parallel_for(0, p.parts, [&](int k) {
          omp_set_num_threads(1);
          dnnl::stream s(p.engine);
          execute(p.engine, v.parts[static_cast<size_t>(k)], v.src, src, v.dst_part[static_cast<size_t>(k)], dst + k * part_size,
                  v.weights[static_cast<size_t>(k)], p.bias_parts[static_cast<size_t>(k)],
                  v.scratchpad[static_cast<size_t>(k)], s);
          s.wait();
        });
        write_plain_output(dst, y, n, v);
        stream.wait();
      } else {  // one image of few filters: one thread (splitting its rows cost more than it gained)
        run_call(x, residual, y, n, 1);
      }
    }
    return;
  }
  // One call of `chunk` images per thread.
  const int64_t chunk = (count + threads - 1) / threads;
  tbb::parallel_for(int64_t{0}, (count + chunk - 1) / chunk, [&](int64_t c) {
    omp_set_num_threads(1);
    const int64_t n = b0 + c * chunk;
    run_call(x, residual, y, n, std::min(chunk, b1 - n));
  });
}

// ---- linear -----------------------------------------------------------------

LinearKernel::LinearKernel(int64_t in_features, int64_t out_features, const float* weight, WeightFormat format,
                           Fused fused)
    : k_(in_features), n_(out_features), format_(format), fused_(std::move(fused)) {
  int64_t nnz = 0;
  for (int64_t i = 0; i < k_ * n_; ++i) nnz += weight[i] != 0;
  density_ = k_ * n_ == 0 ? 0.0 : static_cast<double>(nnz) / static_cast<double>(k_ * n_);
  if (format == WeightFormat::dense) {
    // Wᵀ (K, N), rows padded off a multiple of 4 KiB: a power-of-two leading
    // dimension made sgemm 2x slower (cache-set aliasing).
    ld_ = n_ % 256 == 0 ? n_ + 16 : n_;
    dense_.assign(static_cast<size_t>(k_ * ld_), 0.0f);
    for (int64_t r = 0; r < n_; ++r)
      for (int64_t c = 0; c < k_; ++c) dense_[static_cast<size_t>(c * ld_ + r)] = weight[r * k_ + c];
  } else {
    sparse_ = pack(weight, n_, k_, format);
  }
}

int64_t feature_major_ld(int64_t rows) {
  // Whole vectors, and off a multiple of 1 KiB: a power-of-two stride maps
  // every feature row to the same cache sets.
  const int64_t ld = round_up(rows, 16);
  return ld % 256 == 0 ? ld + 16 : ld;
}

void LinearKernel::set_feature_major(bool input, bool output, int64_t rows) {
  fm_in_ = input && format_ != WeightFormat::dense;
  fm_out_ = output && format_ != WeightFormat::dense;
  fm_ld_ = feature_major_ld(rows);
}

// Rows [m0, m1) through the sparse product: transposed in (unless the input
// is feature-major already), multiplied, and transposed back with the
// epilogue (unless the output stays feature-major); threads > 1 splits the
// output features.
void LinearKernel::sparse_chunk(const float* x, const float* residual, float* y, int64_t m0, int64_t m1,
                                int threads) const {
  const int64_t m = m1 - m0;
  const int64_t ld = feature_major_ld(m);
  const int64_t ld_x = fm_in_ ? fm_ld_ : ld, ld_y = fm_out_ ? fm_ld_ : ld;
  const float* xt = x + m0;
  if (!fm_in_) {
    float* t = scratch(t_xt, k_ * ld);
    kernels::transpose(x + m0 * k_, m, k_, k_, t, ld, true);
    for (int64_t c = 0; c < k_; ++c) std::fill(t + c * ld + m, t + (c + 1) * ld, 0.0f);
    xt = t;
  }
  float* yt = fm_out_ ? y + m0 : scratch(t_yt, sparse_.pattern.rows * ld);
  // A feature-major output is written for exactly these rows: the next ones may be another tile's.
  const int64_t pixels = fm_out_ ? m : round_up(m, 16);
  thread_local std::vector<int64_t> offsets;
  offsets.resize(static_cast<size_t>(sparse_.pattern.cols));
  for (int64_t c = 0; c < sparse_.pattern.cols; ++c) offsets[static_cast<size_t>(c)] = std::min(c, k_ - 1) * ld_x;
  const BlockSparse& a = sparse_.pattern;
  const kernels::DenseRows b{xt, offsets.data()};
  const float* values = sparse_.values.data();
  // Pixel chunks of 128 outside, features inside: a chunk of xt stays in L1/L2 while every feature reads it.
  constexpr int64_t kChunk = 128;
  const int64_t chunks = (pixels + kChunk - 1) / kChunk;
  auto part = [&](int64_t rb0, int64_t rb1) {
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t p0 = c * kChunk, p1 = std::min(pixels, p0 + kChunk);
      kernels::spmm(a, values, b, yt, ld_y, rb0, rb1, p0, p1);
      if (fm_out_)  // bias and activation per feature row; no residual here (the planner's rule)
        for (int64_t r = rb0 * a.block_rows; r < std::min(n_, rb1 * a.block_rows); ++r)
          finish_row(yt + r * ld_y + p0, yt + r * ld_y + p0, p1 - p0,
                     fused_.bias.empty() ? 0.0f : fused_.bias[static_cast<size_t>(r)], nullptr, fused_.activation);
    }
  };
  if (threads <= 1) {
    part(0, a.row_blocks());
  } else {
    const int64_t parts = std::min<int64_t>(a.row_blocks(), 4 * threads);
    tbb::parallel_for(int64_t{0}, parts, [&](int64_t t) {
      part(t * a.row_blocks() / parts, (t + 1) * a.row_blocks() / parts);
    });
  }
  if (fm_out_) return;
  float* ys = y + m0 * n_;
  kernels::transpose(yt, n_, m, ld, ys, n_, false);
  finish_rows(ys, residual != nullptr ? residual + m0 * n_ : nullptr, m, threads);
}

// y rows += bias (+ residual), then the activation.
void LinearKernel::finish_rows(float* ys, const float* res, int64_t m, int threads) const {
  if (fused_.bias.empty() && res == nullptr && fused_.activation == Activation::none) return;
  auto finish = [&](int64_t r) {
    float* row = ys + r * n_;
    for (int64_t j = 0; j < n_; ++j) {
      float v = row[j];
      if (!fused_.bias.empty()) v += fused_.bias[static_cast<size_t>(j)];
      if (res != nullptr) v += res[r * n_ + j];
      row[j] = activate(v, fused_.activation);
    }
  };
  if (threads > 1) {
    tbb::parallel_for(int64_t{0}, m, finish);
  } else {
    for (int64_t r = 0; r < m; ++r) finish(r);
  }
}

void LinearKernel::run(const float* x, const float* residual, float* y, int64_t m0, int64_t m1, int threads) const {
  const int64_t m = m1 - m0;
  if (m <= 0) return;
  const float* xs = x + m0 * k_;
  float* ys = y + m0 * n_;
  if (format_ == WeightFormat::dense) {
    // Threads take column blocks of Wᵀ on oneTBB, each a single-threaded
    // sgemm: oneDNN's own OpenMP team woke up too slowly for a batch of one
    // (2 threads ran 3x slower than 1).
    const int64_t parts = threads > 1 ? std::min<int64_t>(threads, std::max<int64_t>(1, n_ / 64)) : 1;
    auto block = [&](int64_t part) {
      const int64_t c0 = round_up(part * n_ / parts, 16), c1 = part + 1 == parts ? n_ : round_up((part + 1) * n_ / parts, 16);
      if (c1 > c0)
        kernels::gemm({.m = m, .n = c1 - c0, .k = k_}, 1.0f, xs, k_, dense_.data() + c0, ld_, 0.0f, ys + c0, n_, 1);
    };
    if (parts == 1) {
      block(0);
    } else {
      tbb::parallel_for(int64_t{0}, parts, block);
    }
  } else {
    // Many rows: chunks of them in parallel, each transposed in, multiplied
    // and transposed back while it is in L2 (whole-batch transposes ran at
    // DRAM speed and cost as much as the product). Few rows: one chunk, its
    // output features split among the threads.
    const int64_t budget = l2_cache_bytes() / 2;
    const int64_t per_row =
        ((fm_in_ ? 0 : k_) + (fm_out_ ? 0 : 2 * sparse_.pattern.rows) + 16) * static_cast<int64_t>(sizeof(float));
    const int64_t rows = std::clamp<int64_t>(budget / per_row / 16 * 16, 16, 512);
    const int64_t chunks = (m + rows - 1) / rows;
    if (chunks >= 2 * threads || threads <= 1) {
      auto one = [&](int64_t c) {
        const int64_t c0 = c * rows, c1 = std::min(m, c0 + rows);
        sparse_chunk(x, residual, y, m0 + c0, m0 + c1, 1);
      };
      if (threads <= 1) {
        for (int64_t c = 0; c < chunks; ++c) one(c);
      } else {
        tbb::parallel_for(int64_t{0}, chunks, one);
      }
    } else {
      for (int64_t c0 = 0; c0 < m; c0 += rows) sparse_chunk(x, residual, y, m0 + c0, std::min(m1, m0 + c0 + rows), threads);
    }
    return;
  }
  finish_rows(ys, residual != nullptr ? residual + m0 * n_ : nullptr, m, threads);
}

}  // namespace neurite::engine::detail

namespace neurite::engine::detail {

namespace {
// exp(x) for x <= 0 (softmax's shifted inputs): 2^(x·log2 e) as 2^n · 2^f with
// a degree-6 polynomial on f in [-0.5, 0.5]; relative error below 2e-7, and
// plain float arithmetic the compiler vectorises (std::exp it does not).
inline float exp_nonpositive(float x) {
  const float t = std::max(x * 1.44269504f, -126.0f);
  const float n = (t + 12582912.0f) - 12582912.0f, f = t - n;  // round to nearest: 1.5 * 2^23
  float p = 1.5403530e-4f;
  p = p * f + 1.3333558e-3f;
  p = p * f + 9.6181291e-3f;
  p = p * f + 5.5504109e-2f;
  p = p * f + 2.4022651e-1f;
  p = p * f + 6.9314718e-1f;
  p = p * f + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}
}  // namespace

// Sums and maxima in 16 lanes, so the loops vectorise without reassociating flags.
constexpr int64_t kLanes = 16;
inline float lanes_max(const float* v, int64_t n) {
  float m[kLanes];
  for (int64_t l = 0; l < kLanes; ++l) m[l] = -std::numeric_limits<float>::infinity();
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) m[l] = std::max(m[l], v[i + l]);
  for (; i < n; ++i) m[0] = std::max(m[0], v[i]);
  return *std::max_element(m, m + kLanes);
}
template <typename F>
inline float lanes_sum(int64_t n, F term) {
  float s[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) s[l] += term(i + l);
  for (; i < n; ++i) s[0] += term(i);
  float total = 0;
  for (float v : s) total += v;
  return total;
}

void softmax_rows(const float* x, float* y, int64_t n, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* in = x + r * n;
    float* out = y + r * n;
    const float m = lanes_max(in, n);
    for (int64_t i = 0; i < n; ++i) out[i] = exp_nonpositive(in[i] - m);
    const float inv = 1.0f / lanes_sum(n, [out](int64_t i) { return out[i]; });
    for (int64_t i = 0; i < n; ++i) out[i] *= inv;
  }
}

void pool_planes(const ConvGeometry& g, bool is_max, bool include_pad, const float* x, float* y, int64_t p0,
                 int64_t p1) {
  const bool two_by_two = g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.pad_top == 0 && g.pad_left == 0 &&
                          g.out_h * 2 <= g.height && g.out_w * 2 <= g.width;
  for (int64_t p = p0; p < p1; ++p) {
    const float* in = x + p * g.height * g.width;
    float* out = y + p * g.out_h * g.out_w;
    if (two_by_two) {  // the common case, as one loop the compiler vectorises
      for (int64_t oy = 0; oy < g.out_h; ++oy) {
        const float* __restrict a = in + 2 * oy * g.width;
        const float* __restrict b = a + g.width;
        float* __restrict o = out + oy * g.out_w;
        for (int64_t ox = 0; ox < g.out_w; ++ox) {
          const float m = is_max ? std::max(std::max(a[2 * ox], a[2 * ox + 1]), std::max(b[2 * ox], b[2 * ox + 1]))
                                 : 0.25f * (a[2 * ox] + a[2 * ox + 1] + b[2 * ox] + b[2 * ox + 1]);
          o[ox] = m;
        }
      }
      continue;
    }
    for (int64_t oy = 0; oy < g.out_h; ++oy) {
      const int64_t y0 = oy * g.sh - g.pad_top, ya = std::max<int64_t>(y0, 0), yb = std::min(y0 + g.kh, g.height);
      for (int64_t ox = 0; ox < g.out_w; ++ox) {
        const int64_t x0 = ox * g.sw - g.pad_left, xa = std::max<int64_t>(x0, 0), xb = std::min(x0 + g.kw, g.width);
        float acc = is_max ? -std::numeric_limits<float>::infinity() : 0.0f;
        for (int64_t iy = ya; iy < yb; ++iy)
          for (int64_t ix = xa; ix < xb; ++ix) acc = is_max ? std::max(acc, in[iy * g.width + ix]) : acc + in[iy * g.width + ix];
        if (!is_max) acc /= static_cast<float>(include_pad ? g.kh * g.kw : std::max<int64_t>(1, (yb - ya) * (xb - xa)));
        out[oy * g.out_w + ox] = acc;
      }
    }
  }
}

void mean_rows(const float* x, float* y, int64_t n, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* in = x + r * n;
    y[r] = lanes_sum(n, [in](int64_t i) { return in[i]; }) / static_cast<float>(n);
  }
}

void layer_norm_rows(const float* x, float* y, int64_t n, int64_t r0, int64_t r1, const float* scale,
                     const float* bias, float epsilon) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* in = x + r * n;
    float* out = y + r * n;
    const float mean = lanes_sum(n, [in](int64_t i) { return in[i]; }) / static_cast<float>(n);
    const float var = lanes_sum(n, [in, mean](int64_t i) { return (in[i] - mean) * (in[i] - mean); }) /
                      static_cast<float>(n);
    const float inv = 1.0f / std::sqrt(var + epsilon);
    for (int64_t i = 0; i < n; ++i) out[i] = (in[i] - mean) * inv * scale[i] + bias[i];
  }
}

}  // namespace neurite::engine::detail
