// The engine's convolution kernels: our packed direct convolution over
// phase planes (kernels/layout.h), and oneDNN's.
#include <omp.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstring>
#include <dnnl.hpp>
#include <map>
#include <mutex>

#include "engine/kernels.h"
#include "neurite/kernels/cache.h"
#include "neurite/kernels/rows.h"
#include "neurite/kernels/scratch.h"

namespace neurite::engine::detail {

namespace {
thread_local kernels::ScratchFloats t_planes, t_rows;
}  // namespace

PackedConv::PackedConv(const ConvGeometry& g, PackedWeight w, Fused fused, kernels::Isa isa)
    : g_(g), w_(std::move(w)), fused_(std::move(fused)), isa_(isa) {}

int64_t PackedConv::tile_bytes(int64_t images, int64_t rows) const {
  const kernels::PhasePlanes t(g_, images, kernels::PhasePlanes::window_for(g_, rows));
  const auto [lo, hi] = g_.input_rows(0, rows);
  const int64_t input = images * g_.channels * (hi - lo) * g_.width;
  const int64_t output = 2 * images * g_.filters * rows * g_.out_w + w_.pattern.rows * images * t.plane();
  return static_cast<int64_t>(sizeof(float)) * (input + t.size() + output);
}

void PackedConv::run_tile(const float* x, const float* residual, float* y, int64_t b0, int64_t b1, int64_t r0,
                          int64_t r1) const {
  const ConvGeometry& g = g_;
  const int64_t count = b1 - b0, band = r1 - r0;
  const kernels::PhasePlanes t(g, count, kernels::PhasePlanes::window_for(g, band));
  float* planes = kernels::scratch(t_planes, t.size());
  t.fill(x, b0, count, r0 * g.sh, planes);
  thread_local std::vector<int64_t> offsets;
  t.column_offsets(offsets);
  offsets.resize(static_cast<size_t>(w_.pattern.cols), 0);  // padded columns (zero weights) read anywhere valid
  const int64_t ld_rows = count * t.plane();
  float* rows = kernels::scratch(t_rows, w_.pattern.rows * ld_rows);
  const int64_t pixels = (count - 1) * t.plane() + band * t.wq();
  // Chunks of pixels outside, every row inside: a chunk's taps of all
  // channels read a few neighbouring pixel runs, which stay in L1 (rows
  // outside swept all of the planes through L2 once per row: 1.3x slower).
  constexpr int64_t kChunk = 256;
  for (int64_t p = 0; p < pixels; p += kChunk)
    kernels::spmm(w_.pattern, w_.values.data(), {planes, offsets.data()}, rows, ld_rows, 0, w_.pattern.row_blocks(),
                  p, std::min(pixels, p + kChunk), isa_);
  // Valid outputs to y, with bias, residual and activation.
  for (int64_t s = 0; s < count; ++s)
    for (int64_t f = 0; f < g.filters; ++f) {
      const float add = fused_.bias.empty() ? 0.0f : fused_.bias[static_cast<size_t>(f)];
      for (int64_t oy = r0; oy < r1; ++oy) {
        const float* from = rows + f * ld_rows + s * t.plane() + (oy - r0) * t.wq();
        const int64_t at = (((b0 + s) * g.filters + f) * g.out_h + oy) * g.out_w;
        kernels::bias_activation_row(y + at, from, g.out_w, add, residual != nullptr ? residual + at : nullptr,
                                     fused_.activation);
      }
    }
}

void PackedConv::run(const float* x, const float* residual, float* y) const {
  // Tiles of whole images while they fit in L2, else bands of rows; enough
  // tiles for every thread.
  const int64_t budget = kernels::l2_cache_bytes() / 2;
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
  std::mutex mutex;
  std::map<int64_t, std::unique_ptr<Variant>> variants;
};

namespace {
thread_local kernels::ScratchFloats t_src;
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
  if (fused_.activation == Activation::relu6) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_clip, 0.0f, 6.0f);
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

bool DenseConv::read_input_from(const DenseConv& producer) {
  return blocked_input_ = producer.p_->blocked_dst && p_->blocked_src;
}
bool DenseConv::read_residual_from(const DenseConv& producer) {
  return blocked_residual_ = producer.p_->blocked_dst && p_->blocked_dst;
}
int64_t DenseConv::blocked_output_size() const { return p_->blocked_dst ? g_.batch * p_->dst_size : 0; }

// The input of images [n, n + images) in the layout the primitive reads.
const float* DenseConv::source(const DenseConvBuffers& io, int64_t n, int64_t images, Variant& v) {
  Primitives& p = *p_;
  if (blocked_input_) return io.x_blocked + n * p.src_size;
  if (!p.blocked_src) return io.x + n * p.src_size;
  float* src = kernels::scratch(t_src, images * p.src_size);
  dnnl::stream stream(p.engine);
  dnnl::memory plain(v.src_plain, p.engine, const_cast<float*>(io.x + n * p.src_size)), blocked(v.src, p.engine, src);
  v.to_src.execute(stream, plain, blocked);
  stream.wait();
  return src;
}

// Where images [n, n + images) of the output go; holding the residual, in
// the output's layout, when one is fused (the sum post-op adds to dst).
float* DenseConv::destination(const DenseConvBuffers& io, int64_t n, int64_t images, Variant& v) {
  Primitives& p = *p_;
  const float* residual = io.residual;
  float* dst = (p.blocked_dst ? io.y_blocked : io.y) + n * p.dst_size;
  if (!fused_.residual) return dst;
  dnnl::stream stream(p.engine);
  if (blocked_residual_) {
    std::memcpy(dst, io.residual_blocked + n * p.dst_size,
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
void DenseConv::run_call(const DenseConvBuffers& io, int64_t n, int64_t images) {
  Primitives& p = *p_;
  Variant& v = variant(images);
  dnnl::stream stream(p.engine);
  const float* src = source(io, n, images, v);
  float* dst = destination(io, n, images, v);
  const int64_t part_size = p.dst_size / static_cast<int64_t>(v.parts.size());
  for (size_t k = 0; k < v.parts.size(); ++k)
    execute(p.engine, v.parts[k], v.src, src, v.dst_part[k], dst + static_cast<int64_t>(k) * part_size, v.weights[k],
            p.bias_parts[k], v.scratchpad[k], stream);
  write_plain_output(dst, io.y, n, v);
  stream.wait();
}

void DenseConv::run(const DenseConvBuffers& io, int64_t b0, int64_t b1, int threads) {
  Primitives& p = *p_;
  const int64_t count = b1 - b0;
  if (count <= 0) return;
  omp_set_num_threads(1);
  if (threads <= 1) return run_call(io, b0, count);
  if (count < threads) {
    for (int64_t n = b0; n < b1; ++n) {
      if (p.parts > 1) {  // filter parts in parallel over a shared input
        Variant& v = variant(1);
        dnnl::stream stream(p.engine);
        const float* src = source(io, n, 1, v);
        float* dst = destination(io, n, 1, v);
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
        write_plain_output(dst, io.y, n, v);
        stream.wait();
      } else {  // one image of few filters: one thread (splitting its rows cost more than it gained)
        run_call(io, n, 1);
      }
    }
    return;
  }
  // One call of `chunk` images per thread.
  const int64_t chunk = (count + threads - 1) / threads;
  tbb::parallel_for(int64_t{0}, (count + chunk - 1) / chunk, [&](int64_t c) {
    omp_set_num_threads(1);
    const int64_t n = b0 + c * chunk;
    run_call(io, n, std::min(chunk, b1 - n));
  });
}

}  // namespace neurite::engine::detail
