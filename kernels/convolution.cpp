#include "neurite/kernels/convolution.h"

#include <omp.h>

#include <dnnl.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <unordered_map>
#include <vector>
#include <array>

#include "neurite/parallel.h"

namespace neurite::kernels {

namespace {

using dnnl::memory;
using Tag = memory::format_tag;

dnnl::engine& cpu() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// The three primitives of one shape, built once: creating them JIT-compiles code.
struct Primitives {
  memory::desc x, w, y, bias;  // the user's plain layouts
  dnnl::convolution_forward::primitive_desc forward;
  dnnl::convolution_backward_data::primitive_desc backward_data;
  dnnl::convolution_backward_weights::primitive_desc backward_weights;
  dnnl::convolution_forward forward_primitive;
  dnnl::convolution_backward_data backward_data_primitive;
  dnnl::convolution_backward_weights backward_weights_primitive;

  Primitives(const ConvShape& s, bool with_bias) {
    const auto f32 = memory::data_type::f32;
    x = memory::desc({s.batch, s.channels, s.height, s.width}, f32, Tag::nchw);
    y = memory::desc({s.batch, s.filters, s.out_h, s.out_w}, f32, Tag::nchw);
    w = s.groups == 1 ? memory::desc({s.filters, s.channels, s.kernel_h, s.kernel_w}, f32, Tag::oihw)
                      : memory::desc({s.groups, s.filters / s.groups, s.channels / s.groups, s.kernel_h, s.kernel_w},
                                     f32, Tag::goihw);
    bias = with_bias ? memory::desc({s.filters}, f32, Tag::x) : memory::desc();
    // `any` lets oneDNN pick its blocked layouts; run() reorders to and from ours.
    const memory::desc x_any(x.dims(), f32, Tag::any), w_any(w.dims(), f32, Tag::any), y_any(y.dims(), f32, Tag::any);
    const memory::dims stride{s.stride_h, s.stride_w}, dilation{s.dilation_h - 1, s.dilation_w - 1},
        pad{s.pad_h, s.pad_w};  // right padding as left: oneDNN floors the output size as we do
    const auto direct = dnnl::algorithm::convolution_direct;
    forward = {{dnnl::prop_kind::forward_training, direct, x_any, w_any, bias, y_any, stride, dilation, pad, pad},
               cpu()};
    backward_data = {{direct, x_any, w_any, y_any, stride, dilation, pad, pad}, cpu(), forward};
    backward_weights = {{direct, x_any, w_any, bias, y_any, stride, dilation, pad, pad}, cpu(), forward};
    forward_primitive = dnnl::convolution_forward(forward);
    backward_data_primitive = dnnl::convolution_backward_data(backward_data);
    backward_weights_primitive = dnnl::convolution_backward_weights(backward_weights);
  }
};

const Primitives& primitives(const ConvShape& s, bool with_bias) {
  static std::mutex mutex;
  static std::map<std::tuple<std::array<int64_t, 16>, bool>, std::unique_ptr<Primitives>> cache;
  const std::array<int64_t, 16> key{s.batch,    s.channels, s.height,  s.width,      s.filters,    s.kernel_h,
                                    s.kernel_w, s.stride_h, s.stride_w, s.pad_h,     s.pad_w,      s.dilation_h,
                                    s.dilation_w, s.groups, s.out_h,   s.out_w};
  std::lock_guard lock(mutex);
  auto& entry = cache[{key, with_bias}];
  if (!entry) entry = std::make_unique<Primitives>(s, with_bias);
  return *entry;
}

// One execution: wraps user buffers, reorders them into the layouts a
// primitive wants and its outputs back.
class Run {
 public:
  Run() : stream_(cpu()) { omp_set_num_threads(neurite::num_threads()); }

  // A read-only argument, in layout `want`.
  memory in(const memory::desc& user, const float* data, const memory::desc& want) {
    memory m(user, cpu(), const_cast<float*>(data));
    if (want == user) return m;
    memory converted(want, cpu());
    dnnl::reorder(m, converted).execute(stream_, m, converted);
    return converted;
  }
  // An output argument in layout `want`, copied into `data` by finish().
  memory out(const memory::desc& user, float* data, const memory::desc& want) {
    memory m(user, cpu(), data);
    if (want == user) return m;
    memory produced(want, cpu());
    pending_.emplace_back(produced, m);
    return produced;
  }
  template <typename Primitive>
  void execute(const Primitive& p, const std::unordered_map<int, memory>& args) {
    p.execute(stream_, args);
    for (auto& [from, to] : pending_) dnnl::reorder(from, to).execute(stream_, from, to);
    pending_.clear();
    stream_.wait();
  }

 private:
  dnnl::stream stream_;
  std::vector<std::pair<memory, memory>> pending_;
};

}  // namespace

void conv_forward(const ConvShape& s, const float* x, const float* w, const float* bias, float* y) {
  const Primitives& p = primitives(s, bias != nullptr);
  Run run;
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, run.in(p.x, x, p.forward.src_desc())},
                                       {DNNL_ARG_WEIGHTS, run.in(p.w, w, p.forward.weights_desc())},
                                       {DNNL_ARG_DST, run.out(p.y, y, p.forward.dst_desc())}};
  if (bias != nullptr) args.emplace(DNNL_ARG_BIAS, run.in(p.bias, bias, p.bias));
  run.execute(p.forward_primitive, args);
}

void conv_backward(const ConvShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw,
                   float* db) {
  const Primitives& p = primitives(s, db != nullptr);
  Run run;
  const auto& data = p.backward_data;
  const auto& weights = p.backward_weights;
  // Both gradients read dy; oneDNN picks the same blocked layout for both, so it is converted once.
  const memory dy_blocked = run.in(p.y, dy, data.diff_dst_desc());
  auto dy_for = [&](const memory::desc& want) { return want == data.diff_dst_desc() ? dy_blocked : run.in(p.y, dy, want); };
  if (dx != nullptr)
    run.execute(p.backward_data_primitive, {{DNNL_ARG_DIFF_DST, dy_for(data.diff_dst_desc())},
                                                        {DNNL_ARG_WEIGHTS, run.in(p.w, w, data.weights_desc())},
                                                        {DNNL_ARG_DIFF_SRC, run.out(p.x, dx, data.diff_src_desc())}});
  if (dw != nullptr) {
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, run.in(p.x, x, weights.src_desc())},
                                         {DNNL_ARG_DIFF_DST, dy_for(weights.diff_dst_desc())},
                                         {DNNL_ARG_DIFF_WEIGHTS, run.out(p.w, dw, weights.diff_weights_desc())}};
    if (db != nullptr) args.emplace(DNNL_ARG_DIFF_BIAS, run.out(p.bias, db, weights.diff_bias_desc()));
    run.execute(p.backward_weights_primitive, args);
  }
}

}  // namespace neurite::kernels
