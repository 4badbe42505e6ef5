// engine::compile: passes, fusion into steps, weight packing by measured
// cost, and the grouping of steps into tensor columns.
#include <fmt/format.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <set>

#include "neurite/kernels/gemm.h"
#include "neurite/kernels/transpose.h"
#include "neurite/kernels/cache.h"
#include "neurite/kernels/layout.h"
#include "engine/passes.h"
#include "engine/plan.h"
#include "engine/steps.h"
#include "engine/reference_ops.h"
#include "neurite/error.h"
#include "neurite/autograd/ops.h"
#include "neurite/parallel.h"

namespace neurite::engine {

std::string to_string(Mode mode) { return mode == Mode::columns ? "columns" : "layers"; }

Mode parse_mode(std::string_view name) {
  if (name == "columns") return Mode::columns;
  if (name == "layers") return Mode::layers;
  throw ValueError(fmt::format("mode '{}': expected columns or layers", name));
}

namespace detail {
namespace {

using autograd::Dtype;

int64_t batch_rows(const Shape& s, int64_t batch) { return s.empty() || s[0] != batch ? -1 : s[0]; }
int64_t per_item(const Tensor& t) { return t.dim() == 0 || t.size(0) == 0 ? 0 : t.numel() / t.size(0); }

std::string fused_name(const Fused& f) {
  std::string s;
  if (!f.bias.empty()) s += "+bias";
  if (f.residual) s += "+add";
  if (f.activation == Activation::relu) s += "+relu";
  return s;
}

// ---- the builder ------------------------------------------------------------------

struct Builder {
  Graph& g;
  const CompileOptions& o;
  Engine::Plan& plan;
  std::map<std::string, int> ids;
  std::map<std::string, int> readers;
  std::map<std::string, std::vector<size_t>> consumers;
  std::set<std::string> constants;
  std::vector<bool> done;
  std::set<std::string> ready;  // values computed by the steps so far, inputs and constants
  std::map<std::string, const Step*> producer_step;  // value name -> the step that computes it

  int id(const std::string& name) {
    if (name.empty()) return -1;
    auto [it, fresh] = ids.emplace(name, static_cast<int>(plan.values.size()));
    if (fresh) {
      const ValueInfo& info = g.values.at(name);
      const Tensor* c = g.constant(name);
      check<ShapeError>(c != nullptr || std::all_of(info.shape.begin(), info.shape.end(), [](int64_t d) { return d >= 0; }),
                        "compile: value '{}' has shape {}, not known before run time", name,
                        autograd::to_string(info.shape));
      plan.values.push_back(c != nullptr ? *c
                                         : Tensor::zeros(info.shape, info.type == DataType::float32 ? Dtype::f32
                                                                                                    : Dtype::i64));
    }
    return it->second;
  }

  // The only consumer of `value` when it has one and is not a graph output.
  const Node* sole_consumer(const std::string& value, OpKind op) {
    if (readers[value] != 1 || consumers[value].size() != 1) return nullptr;
    const Node& n = g.nodes[consumers[value][0]];
    return n.op == op && !done[consumers[value][0]] ? &n : nullptr;
  }
  void consume(const Node* n) { done[static_cast<size_t>(n - g.nodes.data())] = true; }

  // Add(value, residual) and Relu after a kernel's output; returns the final output name.
  std::string fuse_tail(std::string out, Fused& fused, int& residual) {
    if (const Node* add = sole_consumer(out, OpKind::add)) {
      const std::string& other = add->inputs[0] == out ? add->inputs[1] : add->inputs[0];
      if (other != out && ready.count(other) && g.values.at(other).shape == g.values.at(out).shape &&
          g.values.at(other).type == DataType::float32) {
        residual = id(other);
        fused.residual = true;
        consume(add);
        out = add->outputs[0];
      }
    }
    if (const Node* relu = sole_consumer(out, OpKind::relu)) {
      fused.activation = Activation::relu;
      consume(relu);
      out = relu->outputs[0];
    }
    return out;
  }

  template <typename Make>
  WeightFormat choose(const float* w, int64_t rows, int64_t cols, bool dense_allowed, Make time_of) {
    if (o.format) return *o.format;
    std::vector<WeightFormat> candidates{WeightFormat::csr};
    if (dense_allowed) candidates.push_back(WeightFormat::dense);
    for (WeightFormat f : {WeightFormat::rows4, WeightFormat::cols4})
      if (fill_ratio(w, rows, cols, f) <= 2.5) candidates.push_back(f);
    const double density = static_cast<double>(kernels::count_nonzero(w, rows * cols)) /
                           static_cast<double>(std::max<int64_t>(rows * cols, 1));
    // Dense weights: oneDNN, or our kernel over full 4x1 blocks (it won on
    // thin layers, such as a first convolution of one input channel).
    if (density > 0.6) candidates = {WeightFormat::dense, WeightFormat::rows4};
    if (candidates.size() == 1) return candidates[0];
    if (!o.measure) {  // by density: dense, a block form that adds few zeros, else CSR
      if (density > 0.6) return WeightFormat::dense;
      for (WeightFormat f : {WeightFormat::rows4, WeightFormat::cols4})
        if (fill_ratio(w, rows, cols, f) <= 1.2 && std::count(candidates.begin(), candidates.end(), f)) return f;
      return density < 0.3 ? WeightFormat::csr : WeightFormat::dense;
    }
    WeightFormat best = candidates[0];
    double best_time = 1e30;
    for (WeightFormat f : candidates) {
      const double t = time_of(f);
      if (t < best_time) best_time = t, best = f;
    }
    return best;
  }

  // The fastest of a few runs of f, after one warm-up run.
  template <typename F>
  double time_runs(F f) {
    using clock = std::chrono::steady_clock;
    f();
    double best = 1e30, spent = 0;
    for (int i = 0; i < 15 && (i < 3 || spent < 0.05); ++i) {
      const auto t0 = clock::now();
      f();
      const double s = std::chrono::duration<double>(clock::now() - t0).count();
      best = std::min(best, s), spent += s;
    }
    return best;
  }

  std::unique_ptr<Step> conv_step(const Node& n) {
    const Tensor* w = g.constant(n.inputs[1]);
    const Tensor* b = n.inputs.size() > 2 && !n.inputs[2].empty() ? g.constant(n.inputs[2]) : nullptr;
    const Shape& xs = g.values.at(n.inputs[0]).shape;
    if (w == nullptr || w->dim() != 4 || xs.size() != 4 || (n.inputs.size() > 2 && !n.inputs[2].empty() && !b))
      return nullptr;
    if (n.has("auto_pad") && std::get<std::string>(n.attributes.at("auto_pad")) != "NOTSET") return nullptr;
    const int64_t groups = n.integer("group", 1);
    const auto strides = n.integers("strides", {1, 1}), dil = n.integers("dilations", {1, 1});
    const auto pads = n.integers("pads", {0, 0, 0, 0});
    const Shape& ys = g.values.at(n.outputs[0]).shape;
    ConvGeometry geo{.batch = xs[0], .channels = xs[1], .height = xs[2], .width = xs[3],
                     .filters = w->size(0), .kh = w->size(2), .kw = w->size(3), .sh = strides[0], .sw = strides[1],
                     .dh = dil[0], .dw = dil[1], .pad_top = pads[0], .pad_left = pads[1], .pad_bottom = pads[2],
                     .pad_right = pads[3], .out_h = ys[2], .out_w = ys[3]};
    auto step = std::make_unique<ConvStep>();
    Fused fused;
    if (b != nullptr) fused.bias.assign(b->data<float>(), b->data<float>() + b->numel());
    const std::string out = fuse_tail(n.outputs[0], fused, step->residual);
    step->inputs = {id(n.inputs[0])};
    step->outputs = {id(out)};
    const int64_t rows = geo.filters, cols = w->numel() / geo.filters;
    const float* pw = w->data<float>();
    const WeightFormat format =
        groups != 1 || geo.sw > 8 ? WeightFormat::dense  // the packed kernel: groups 1, column strides to 8
                    : choose(pw, rows, cols, true, [&](WeightFormat f) {
                        // Timed on up to 8 images: the cost per image is what differs.
                        ConvGeometry part = geo;
                        part.batch = std::min<int64_t>(geo.batch, std::max(8, plan.threads));
                        Shape xp = xs, yp = ys;
                        xp[0] = yp[0] = part.batch;
                        Tensor x = Tensor::randn(xp, 1), y = Tensor::empty(yp), r = Tensor::randn(yp, 2);
                        const float* res = fused.residual ? r.data<float>() : nullptr;
                        if (f == WeightFormat::dense) {
                          DenseConv k(part, 1, pw, fused, plan.threads);
                          return time_runs(
                              [&] { k.run(x.data<float>(), res, y.data<float>(), 0, part.batch, plan.threads); });
                        }
                        PackedConv k(part, pack(pw, rows, cols, f), fused);
                        return time_runs([&] { k.run(x.data<float>(), res, y.data<float>()); });
                      });
    const char* what = groups == 1 ? "conv" : "conv grouped";
    if (format == WeightFormat::dense) {
      step->dense = std::make_unique<DenseConv>(geo, groups, pw, fused, plan.threads);
      step->sliceable = true;
    } else {
      step->packed = std::make_unique<PackedConv>(geo, pack(pw, rows, cols, format), fused);
      step->sliceable = step->bands = true;
      step->conv = step->packed.get();
      step->band_input = step->inputs[0];
      const int64_t budget = tile_budget() / 2;
      while (step->tile_images < geo.batch && step->packed->tile_bytes(2 * step->tile_images, geo.out_h) <= budget)
        step->tile_images *= 2;
    }
    step->info = {.name = n.name,
                  .kernel = fmt::format("{} {}x{}/{} {}{}", what, geo.kh, geo.kw, geo.sh,
                                        format == WeightFormat::dense && step->dense ? "dense(onednn)"
                                                                                      : to_string(format),
                                        fused_name(fused)),
                  .density = static_cast<double>(kernels::count_nonzero(pw, w->numel())) / static_cast<double>(w->numel())};
    return step;
  }

  // Gemm(x, W) and MatMul(x, W) [+ bias] with constant W: W kept as (N, K).
  std::unique_ptr<Step> linear_step(const Node& n) {
    const Shape& xs = g.values.at(n.inputs[0]).shape;
    const Tensor* w = g.constant(n.inputs[1]);
    if (w == nullptr || w->dim() != 2 || w->dtype() != Dtype::f32 || xs.size() < 2) return nullptr;
    const bool gemm = n.op == OpKind::gemm;
    if (gemm && (n.integer("transA", 0) != 0 || xs.size() != 2)) return nullptr;
    const bool trans_b = gemm && n.integer("transB", 0) != 0;
    const int64_t k = xs.back(), features = trans_b ? w->size(0) : w->size(1);
    Tensor wt = Tensor::empty({features, k});  // (N, K)
    if (trans_b) {
      wt.copy_from_(*w);
    } else {
      kernels::transpose(w->data<float>(), k, features, features, wt.data<float>(), k, false);
    }
    Fused fused;
    std::string out = n.outputs[0];
    if (gemm) {
      const float alpha = static_cast<float>(n.real("alpha", 1.0)), beta = static_cast<float>(n.real("beta", 1.0));
      if (alpha != 1.0f)
        for (int64_t i = 0; i < wt.numel(); ++i) wt.data<float>()[i] *= alpha;
      if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
        const Tensor* c = g.constant(n.inputs[2]);
        if (c == nullptr || c->numel() != features) return nullptr;  // a full (M, N) C: the reference's case
        for (int64_t i = 0; i < features; ++i) fused.bias.push_back(beta * c->data<float>()[i]);
      }
    } else if (const Node* add = sole_consumer(out, OpKind::add)) {  // MatMul + bias
      const std::string& other = add->inputs[0] == out ? add->inputs[1] : add->inputs[0];
      const Tensor* c = g.constant(other);
      if (c != nullptr && c->dtype() == Dtype::f32 && c->numel() == features && c->dim() == 1) {
        fused.bias.assign(c->data<float>(), c->data<float>() + features);
        consume(add);
        out = add->outputs[0];
      }
    }
    auto step = std::make_unique<LinearStep>();
    out = fuse_tail(out, fused, step->residual);
    step->inputs = {id(n.inputs[0])};
    step->outputs = {id(out)};
    const int64_t m = autograd::numel(xs) / k;
    step->units = m;
    step->units_per_item = m / plan.batch;
    const float* pw = wt.data<float>();
    const WeightFormat format = choose(pw, features, k, true, [&](WeightFormat f) {
      const int64_t rows = std::min<int64_t>(m, 1024);  // past a few chunks the cost per row is what differs
      Tensor x = Tensor::randn({rows, k}, 1), y = Tensor::empty({rows, features}), r = Tensor::randn({rows, features}, 2);
      LinearKernel kernel(k, features, pw, f, fused);
      return time_runs([&] {
        kernel.run(x.data<float>(), fused.residual ? r.data<float>() : nullptr, y.data<float>(), 0, rows, plan.threads);
      });
    });
    step->kernel = std::make_unique<LinearKernel>(k, features, pw, format, fused);
    step->sliceable = m % plan.batch == 0 && xs[0] == plan.batch;
    step->info = {.name = n.name,
                  .kernel = fmt::format("linear {}x{} {}{}", k, features, to_string(format), fused_name(fused)),
                  .density = step->kernel->density()};
    return step;
  }

  // Whether node n runs the same on any slice of the batch (its batch-major
  // values cut to the slice), judged from its shapes at the compiled batch.
  bool sliceable(const Node& n, NodeStep& s) {
    const int64_t B = plan.batch;
    for (const std::string& out : n.outputs)
      if (!out.empty() && batch_rows(g.values.at(out).shape, B) < 0) return false;
    const size_t rank = g.values.at(n.outputs[0]).shape.size();
    s.sliced.assign(n.inputs.size(), false);
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      const std::string& in = n.inputs[k];
      if (in.empty()) continue;
      const Shape& shape = g.values.at(in).shape;
      if (constants.count(in)) {  // a batch-shaped constant (an expanded token) lines up with the slice
        const bool aligned = n.op == OpKind::add || n.op == OpKind::sub || n.op == OpKind::mul ||
                             n.op == OpKind::div || n.op == OpKind::where || n.op == OpKind::concat;
        s.sliced[k] = aligned && shape.size() == rank && batch_rows(shape, B) > 0;
        continue;
      }
      if (batch_rows(shape, B) < 0 || (shape.size() != rank && n.op != OpKind::reshape && n.op != OpKind::flatten &&
                                        n.op != OpKind::squeeze && n.op != OpKind::unsqueeze &&
                                        n.op != OpKind::reduce_mean && n.op != OpKind::global_average_pool))
        return false;
      s.sliced[k] = true;
    }
    auto axis = [&](const char* name, int64_t fallback, size_t r) {
      const int64_t a = n.integer(name, fallback);
      return a < 0 ? a + static_cast<int64_t>(r) : a;
    };
    const size_t in_rank = g.values.at(n.inputs[0]).shape.size();
    switch (n.op) {
      case OpKind::shape:
      case OpKind::constant:
      case OpKind::constant_of_shape: return false;
      case OpKind::transpose: {
        const auto perm = n.integers("perm");
        return !perm.empty() && perm[0] == 0;
      }
      case OpKind::softmax:
      case OpKind::layer_norm: return axis("axis", -1, in_rank) != 0;
      case OpKind::concat: return axis("axis", 0, in_rank) != 0;
      case OpKind::flatten: return axis("axis", 1, in_rank) != 0;
      case OpKind::gather: return constants.count(n.inputs[0]) || axis("axis", 0, in_rank) != 0;
      case OpKind::matmul: return constants.count(n.inputs[1]) || in_rank >= 3;
      case OpKind::reduce_mean: {
        std::vector<int64_t> axes = n.integers("axes");
        if (n.inputs.size() > 1 && !n.inputs[1].empty()) {
          const Tensor* t = g.constant(n.inputs[1]);
          if (t == nullptr) return false;
          axes.assign(t->data<int64_t>(), t->data<int64_t>() + t->numel());
        }
        return !axes.empty() && std::none_of(axes.begin(), axes.end(), [&](int64_t a) {
          return a == 0 || a + static_cast<int64_t>(in_rank) == 0;
        });
      }
      case OpKind::slice: {
        if (n.inputs.size() < 4 || n.inputs[3].empty()) return false;
        const Tensor* t = g.constant(n.inputs[3]);
        if (t == nullptr) return false;
        for (int64_t i = 0; i < t->numel(); ++i) {
          const int64_t a = t->data<int64_t>()[i];
          if (a == 0 || a + static_cast<int64_t>(in_rank) == 0) return false;
        }
        return true;
      }
      case OpKind::squeeze:
      case OpKind::unsqueeze: return g.values.at(n.inputs[0]).shape.size() >= 1;
      case OpKind::reshape:
      case OpKind::expand: s.shape_input = 1; return true;
      default: return true;
    }
  }

  std::unique_ptr<Step> row_step(const Node& n) {
    const ValueInfo& x = g.values.at(n.inputs[0]);
    if (x.type != DataType::float32 || x.shape.empty()) return nullptr;
    const int64_t rank = static_cast<int64_t>(x.shape.size()), axis = n.integer("axis", -1);
    auto step = std::make_unique<RowStep>();
    step->n = x.shape.back();
    if (n.op == OpKind::reduce_mean || n.op == OpKind::global_average_pool) {
      // A mean over trailing axes: rows of their product.
      std::vector<int64_t> axes;
      if (n.op == OpKind::global_average_pool) {
        for (int64_t a = 2; a < rank; ++a) axes.push_back(a);
      } else {
        axes = n.integers("axes");
        if (n.inputs.size() > 1 && !n.inputs[1].empty()) {
          const Tensor* t = g.constant(n.inputs[1]);
          if (t == nullptr) return nullptr;
          axes.assign(t->data<int64_t>(), t->data<int64_t>() + t->numel());
        }
      }
      if (axes.empty()) return nullptr;
      for (int64_t& a : axes) a = a < 0 ? a + rank : a;
      std::sort(axes.begin(), axes.end());
      const int64_t first = rank - static_cast<int64_t>(axes.size());
      step->n = 1;
      for (size_t i = 0; i < axes.size(); ++i) {
        if (axes[i] != first + static_cast<int64_t>(i)) return nullptr;
        step->n *= x.shape[static_cast<size_t>(axes[i])];
      }
      if (first == 0 || step->n == 0) return nullptr;
      step->kind = RowStep::Kind::mean;
    } else if (axis != -1 && axis != rank - 1) {
      return nullptr;
    }
    if (n.op == OpKind::softmax) step->kind = RowStep::Kind::softmax;
    if (n.op == OpKind::layer_norm) {
      step->kind = RowStep::Kind::layer_norm;
      for (size_t k = 1; k < n.outputs.size(); ++k)
        if (!n.outputs[k].empty() && readers[n.outputs[k]] > 0) return nullptr;  // Mean / InvStdDev read
      const Tensor* scale = g.constant(n.inputs[1]);
      const Tensor* bias = n.inputs.size() > 2 && !n.inputs[2].empty() ? g.constant(n.inputs[2]) : nullptr;
      if (scale == nullptr || scale->numel() != step->n || (n.inputs.size() > 2 && !n.inputs[2].empty() && !bias))
        return nullptr;
      step->scale.assign(scale->data<float>(), scale->data<float>() + step->n);
      step->bias = bias ? std::vector<float>(bias->data<float>(), bias->data<float>() + step->n)
                        : std::vector<float>(static_cast<size_t>(step->n), 0.0f);
      step->epsilon = static_cast<float>(n.real("epsilon", 1e-5));
    }
    step->inputs = {id(n.inputs[0])};
    step->outputs = {id(n.outputs[0])};
    const int64_t rows = autograd::numel(x.shape) / step->n;
    step->sliceable = x.shape[0] == plan.batch && rank >= 2;
    step->units = rows;
    step->units_per_item = rows / plan.batch;
    const char* names[] = {"softmax rows", "layer_norm rows", "mean rows"};
    step->info = {.name = n.name, .kernel = names[static_cast<int>(step->kind)]};
    return step;
  }

  std::unique_ptr<Step> batched_matmul_step(const Node& n) {
    const ValueInfo &a = g.values.at(n.inputs[0]), &b = g.values.at(n.inputs[1]);
    const size_t rank = a.shape.size();
    if (a.type != DataType::float32 || b.type != DataType::float32 || rank < 3 || b.shape.size() != rank ||
        constants.count(n.inputs[1]))
      return nullptr;
    for (size_t d = 0; d + 2 < rank; ++d)
      if (a.shape[d] != b.shape[d]) return nullptr;  // broadcasting batches: the reference's case
    auto step = std::make_unique<BatchedMatMulStep>();
    step->m = a.shape[rank - 2], step->k = a.shape[rank - 1], step->n = b.shape[rank - 1];
    step->units = autograd::numel(a.shape) / (step->m * step->k);
    step->units_per_item = step->units / plan.batch;
    std::string b_name = n.inputs[1];
    // B = Transpose(X, perm swapping the last two axes), read by this alone: read X with transB.
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      const Node& t = g.nodes[i];
      if (t.op != OpKind::transpose || t.outputs[0] != b_name || readers[b_name] != 1) continue;
      std::vector<int64_t> swap(rank);
      for (size_t d = 0; d < rank; ++d) swap[d] = static_cast<int64_t>(d);
      std::swap(swap[rank - 1], swap[rank - 2]);
      if (t.integers("perm") != swap) break;
      // The Transpose came first in topological order and became a step; now it is folded away.
      const Step* made = producer_step.count(b_name) ? producer_step.at(b_name) : nullptr;
      const auto it = std::find_if(plan.steps.begin(), plan.steps.end(), [&](const auto& s) { return s.get() == made; });
      if (made == nullptr || it == plan.steps.end() || (*it)->outputs.size() != 1) break;
      plan.steps.erase(it);
      step->trans_b = true;
      b_name = t.inputs[0];
      break;
    }
    step->inputs = {id(n.inputs[0]), id(b_name)};
    step->outputs = {id(n.outputs[0])};
    step->sliceable = a.shape[0] == plan.batch && step->units % plan.batch == 0;
    step->info = {.name = n.name, .kernel = fmt::format("batched matmul {}x{}x{}{}", step->m, step->k, step->n,
                                                         step->trans_b ? " (B transposed)" : "")};
    return step;
  }

  std::unique_ptr<Step> pool_step(const Node& n) {
    const ValueInfo& x = g.values.at(n.inputs[0]);
    const Shape& ys = g.values.at(n.outputs[0]).shape;
    if (x.type != DataType::float32 || x.shape.size() != 4 || n.outputs.size() != 1) return nullptr;
    if (n.integer("ceil_mode", 0) != 0 || n.integers("dilations", {1, 1}) != std::vector<int64_t>{1, 1}) return nullptr;
    if (n.has("auto_pad") && std::get<std::string>(n.attributes.at("auto_pad")) != "NOTSET") return nullptr;
    const auto kernel = n.integers("kernel_shape"), strides = n.integers("strides", {1, 1});
    const auto pads = n.integers("pads", {0, 0, 0, 0});
    if (kernel.size() != 2 || strides.size() != 2 || pads.size() != 4) return nullptr;
    auto step = std::make_unique<PoolStep>();
    step->geo = {.batch = x.shape[0], .channels = x.shape[1], .height = x.shape[2], .width = x.shape[3],
                 .filters = x.shape[1], .kh = kernel[0], .kw = kernel[1], .sh = strides[0], .sw = strides[1],
                 .dh = 1, .dw = 1, .pad_top = pads[0], .pad_left = pads[1], .pad_bottom = pads[2],
                 .pad_right = pads[3], .out_h = ys[2], .out_w = ys[3]};
    step->units = x.shape[0];
    step->is_max = n.op == OpKind::max_pool;
    step->include_pad = n.integer("count_include_pad", 0) != 0;
    step->inputs = {id(n.inputs[0])};
    step->outputs = {id(n.outputs[0])};
    step->sliceable = x.shape[0] == plan.batch;
    step->info = {.name = n.name, .kernel = fmt::format("{} {}x{}/{}", step->is_max ? "max pool" : "average pool",
                                                         kernel[0], kernel[1], strides[0])};
    return step;
  }

  std::unique_ptr<Step> copy_step(const Node& n) {
    const ValueInfo& x = g.values.at(n.inputs[0]);
    const Shape& ys = g.values.at(n.outputs[0]).shape;
    const int64_t rank = static_cast<int64_t>(x.shape.size());
    if (x.type != DataType::float32 || rank < 2) return nullptr;
    auto step = std::make_unique<CopyStep>();
    step->in_shape = x.shape;
    step->out_shape = ys;
    step->units = ys[0];
    if (n.op == OpKind::transpose) {
      step->perm = n.integers("perm");
      if (static_cast<int64_t>(step->perm.size()) != rank || step->perm.back() != rank - 1) return nullptr;
    } else {  // Slice: one constant axis, step 1
      if (n.inputs.size() < 4) return nullptr;
      const Tensor *starts = g.constant(n.inputs[1]), *axes = g.constant(n.inputs[3]);
      const Tensor* steps = n.inputs.size() > 4 && !n.inputs[4].empty() ? g.constant(n.inputs[4]) : nullptr;
      if (!starts || !axes || starts->numel() != 1 || axes->numel() != 1 || (n.inputs.size() > 4 && !n.inputs[4].empty() && !steps))
        return nullptr;
      if (steps && steps->data<int64_t>()[0] != 1) return nullptr;
      int64_t a = axes->data<int64_t>()[0];
      a = a < 0 ? a + rank : a;
      if (a < 0 || a >= rank) return nullptr;
      const int64_t size = x.shape[static_cast<size_t>(a)];
      int64_t b = starts->data<int64_t>()[0];
      b = std::clamp<int64_t>(b < 0 ? b + size : b, 0, size);
      step->axis = a, step->start = b;
    }
    step->inputs = {id(n.inputs[0])};
    step->outputs = {id(n.outputs[0])};
    step->sliceable = x.shape[0] == plan.batch && ys[0] == plan.batch &&
                      (n.op == OpKind::transpose ? step->perm[0] == 0 : step->axis != 0);
    step->info = {.name = n.name, .kernel = n.op == OpKind::transpose ? "copy transpose" : "copy slice"};
    return step;
  }

  std::unique_ptr<Step> node_step(const Node& n) {
    auto step = std::make_unique<NodeStep>();
    step->node = n;
    for (const std::string& in : n.inputs) step->inputs.push_back(id(in));
    for (const std::string& out : n.outputs) step->outputs.push_back(id(out));
    step->out_shape = g.values.at(n.outputs[0]).shape;
    step->sliceable = sliceable(n, *step);
    step->info = {.name = n.name, .kernel = fmt::format("node {}", op_info(n.op).onnx)};
    return step;
  }

  int64_t tile_budget() const { return o.tile_bytes > 0 ? o.tile_bytes : kernels::l2_cache_bytes(); }

  void build_steps() {
    readers.clear();
    for (size_t i = 0; i < g.nodes.size(); ++i)
      for (const std::string& in : g.nodes[i].inputs)
        if (!in.empty()) ++readers[in], consumers[in].push_back(i);
    for (const ValueInfo& v : g.outputs) ++readers[v.name];
    for (const auto& [name, t] : g.initializers) constants.insert(name), ready.insert(name);
    for (const ValueInfo& in : g.inputs) ready.insert(in.name);
    done.assign(g.nodes.size(), false);
    for (size_t i : g.topological_order()) {
      if (done[i]) continue;
      done[i] = true;
      const Node n = g.nodes[i];  // a copy: steps keep nodes, fusion marks others done
      std::unique_ptr<Step> step;
      if (n.op == OpKind::conv) step = conv_step(n);
      if ((n.op == OpKind::gemm || n.op == OpKind::matmul) && !step) step = linear_step(n);
      if (n.op == OpKind::matmul && !step) step = batched_matmul_step(n);
      if (n.op == OpKind::softmax || n.op == OpKind::layer_norm || n.op == OpKind::reduce_mean ||
          n.op == OpKind::global_average_pool)
        step = row_step(n);
      if (n.op == OpKind::transpose || n.op == OpKind::slice) step = copy_step(n);
      if (n.op == OpKind::max_pool || n.op == OpKind::average_pool) step = pool_step(n);
      if (!step) step = node_step(n);
      for (const auto& [name, value] : ids)
        if (std::find(step->outputs.begin(), step->outputs.end(), value) != step->outputs.end())
          ready.insert(name), producer_step[name] = step.get();
      plan.steps.push_back(std::move(step));
    }
  }

  // A sparse linear layer whose output only the next sparse linear layer
  // reads (a ReLU between them is fused) hands it over feature-major.
  void link_feature_major() {
    std::map<int, std::vector<Step*>> readers_of;
    for (auto& s : plan.steps) {
      for (int id : s->inputs)
        if (id >= 0) readers_of[id].push_back(s.get());
      if (s->residual >= 0) readers_of[s->residual].push_back(s.get());
    }
    for (const auto& [name, id] : plan.outputs) readers_of[id].push_back(nullptr);
    for (auto& s : plan.steps) {
      auto* a = dynamic_cast<LinearStep*>(s.get());
      if (a == nullptr || a->kernel->format() == WeightFormat::dense || a->residual >= 0) continue;
      const auto& r = readers_of[a->outputs[0]];
      auto* b = r.size() == 1 ? dynamic_cast<LinearStep*>(r[0]) : nullptr;
      if (b == nullptr || b->kernel->format() == WeightFormat::dense || b->inputs[0] != a->outputs[0] ||
          b->units_per_item != a->units_per_item)
        continue;
      const int64_t rows = a->units;
      a->out_fm = b->in_fm = true;
      a->kernel->set_feature_major(a->in_fm, true, rows);
      b->kernel->set_feature_major(true, b->out_fm, rows);
      plan.values[a->outputs[0]] = Tensor::zeros({a->kernel->out_features() * kernels::feature_major_ld(rows)});
      a->info.kernel += " >fm";
    }
  }

  // Keeps the column groups that measure faster than their steps run layer
  // by layer, on random inputs: tiles that fit in cache did not pay for
  // themselves everywhere (a 2 MiB transformer batch, or a batch of 64 MLP
  // rows that fits in L2 already).
  // The tile size is measured too: the planner's estimate from the cache
  // size, and a half, quarter and eighth of it (the estimate ignores scratch buffers and
  // weights, which share L2 with the tile).
  void keep_faster_groups() {
    std::vector<Group> kept;
    for (Group group : plan.groups) {
      double columns = 1e30;
      Group best = group;
      for (int64_t divisor : {1, 2, 4, 8}) {
        Group g = group;
        if (g.bands) {
          g.rows = std::max<int64_t>(1, group.rows / divisor);
        } else {
          g.slice = std::max<int64_t>(1, group.slice / divisor);
        }
        if (divisor > 1 && (g.bands ? g.rows == best.rows : g.slice == best.slice)) continue;
        const double t = time_runs([&] { run_group(plan, g); });
        if (t < columns) columns = t, best = g;
      }
      const double layers = time_runs([&] {
        for (size_t k = group.first; k < group.last; ++k) plan.steps[k]->run(plan.values, plan.threads);
      });
      if (columns < layers) kept.push_back(best);
    }
    plan.groups = std::move(kept);
    number_groups();
  }

  void number_groups() {
    for (auto& s : plan.steps) s->info.group = -1;
    for (size_t i = 0; i < plan.groups.size(); ++i)
      for (size_t k = plan.groups[i].first; k < plan.groups[i].last; ++k) plan.steps[k]->info.group = static_cast<int>(i);
  }

  // A node run over whole tensors may leave its output sharing storage with
  // its input (Reshape returns a view); in a group it writes slices of its
  // output, so it gets a buffer of its own.
  void own_group_buffers() {
    for (auto& s : plan.steps) {
      auto* node = dynamic_cast<NodeStep*>(s.get());
      if (node == nullptr || s->info.group < 0) continue;
      for (size_t k = 0; k < node->outputs.size(); ++k) {
        if (node->outputs[k] < 0) continue;
        const ValueInfo& info = g.values.at(node->node.outputs[k]);
        plan.values[node->outputs[k]] =
            Tensor::zeros(info.shape, info.type == DataType::float32 ? Dtype::f32 : Dtype::i64);
      }
    }
  }

  // Random inputs (ids below every table an int64 input indexes), and one
  // run layer by layer, so that every buffer holds values.
  void fill_buffers() {
    Values& v = plan.values;
    for (size_t i = 0; i < g.inputs.size(); ++i) {
      const ValueInfo& in = g.inputs[i];
      int64_t bound = 100;
      for (const Node& n : g.nodes)
        if (n.op == OpKind::gather && n.inputs[1] == in.name)
          if (const Tensor* table = g.constant(n.inputs[0])) bound = std::min(bound, table->size(n.integer("axis", 0)));
      v[ids.at(in.name)] = in.type == DataType::float32 ? Tensor::randn(in.shape, 7 + i)
                                                        : Tensor::randint(in.shape, 7 + i, 0, bound);
      plan.input_bounds.push_back(bound);
    }
    for (auto& s : plan.steps) s->run(v, plan.threads);
  }

  // Chains of oneDNN convolutions pass their outputs channel-blocked; an
  // output anything else reads (or a graph output) is also written plain.
  void link_blocked_layouts() {
    std::map<int, ConvStep*> dense_producer;
    std::map<int, int> plain_readers;  // value id -> readers that need it plain
    for (auto& s : plan.steps) {
      auto* conv = dynamic_cast<ConvStep*>(s.get());
      for (size_t k = 0; k < s->inputs.size(); ++k) {
        const int in = s->inputs[k];
        if (in < 0) continue;
        auto from = dense_producer.find(in);
        bool blocked_read = false;
        if (conv && conv->dense && k == 0 && from != dense_producer.end()) {
          conv->dense->read_input_from(from->second->dense.get());
          blocked_read = conv->dense->reads_blocked_input();
        }
        if (!blocked_read) ++plain_readers[in];
      }
      if (s->residual >= 0) {
        auto from = dense_producer.find(s->residual);
        bool blocked_read = false;
        if (conv && conv->dense && from != dense_producer.end()) {
          conv->dense->read_residual_from(from->second->dense.get());
          blocked_read = conv->dense->reads_blocked_residual();
        }
        if (!blocked_read) ++plain_readers[s->residual];
      }
      if (conv && conv->dense) dense_producer[s->outputs[0]] = conv;
    }
    for (const auto& [name, id] : plan.outputs) ++plain_readers[id];
    for (const auto& [id, step] : dense_producer) step->dense->write_plain(plain_readers[id] > 0);
  }

  // Columns: maximal runs of sliceable steps. A run of band convolutions whose
  // images overflow the tile budget streams bands of rows; other runs take
  // slices of the batch that fit it.
  void build_groups() {
    const int64_t budget = tile_budget();
    auto& steps = plan.steps;
    for (size_t i = 0; i < steps.size();) {
      if (!steps[i]->sliceable) {
        ++i;
        continue;
      }
      size_t j = i;
      while (j < steps.size() && steps[j]->sliceable) ++j;
      if (j - i >= 2) {
        Group group{.first = i, .last = j};
        group.bands = std::all_of(steps.begin() + i, steps.begin() + j, [](auto& s) { return s->bands; });
        int64_t item = 0;  // bytes per batch item of the largest step's operands
        for (size_t k = i; k < j; ++k) {
          int64_t bytes = 0;
          for (int id : steps[k]->inputs)
            if (id >= 0 && plan.values[id].dim() >= 1 && plan.values[id].size(0) == plan.batch)
              bytes += per_item(plan.values[id]) * 4;
          for (int id : steps[k]->outputs)
            if (id >= 0) bytes += per_item(plan.values[id]) * 4;
          item = std::max(item, bytes);
        }
        const int64_t per_thread = (plan.batch + plan.threads - 1) / plan.threads;
        group.slice = std::clamp<int64_t>(budget / std::max<int64_t>(item, 1), 1, per_thread);
        if (group.bands) {
          const auto& last = *steps[j - 1]->conv;
          group.rows = last.geometry().out_h;
          int64_t need = 0;  // bytes per image of every step's tile
          for (size_t k = i; k < j; ++k) need += steps[k]->conv->tile_bytes(1, steps[k]->conv->geometry().out_h);
          if (need <= budget) group.bands = false;  // whole images fit: slices of the batch
          while (group.bands && group.rows > 1) {
            int64_t bytes = 0;
            for (size_t k = i; k < j; ++k) {
              const auto& gk = steps[k]->conv->geometry();
              const int64_t rows = std::max<int64_t>(1, group.rows * gk.out_h / last.geometry().out_h + 2);
              bytes += steps[k]->conv->tile_bytes(1, std::min(rows, gk.out_h));
            }
            if (bytes <= budget) break;
            group.rows = (group.rows + 1) / 2;
          }
        }
        plan.groups.push_back(group);
      }
      i = j;
    }
  }
};

}  // namespace
}  // namespace detail

Engine::Engine(std::unique_ptr<Plan> plan) : plan_(std::move(plan)) {}
Engine::Engine(Engine&&) noexcept = default;
Engine& Engine::operator=(Engine&&) noexcept = default;
Engine::~Engine() = default;

Engine compile(Graph graph, const CompileOptions& options) {
  check<ValueError>(options.threads >= 0 && options.threads <= 1024, "compile: threads must be in [0, 1024], got {}",
                    options.threads);
  auto plan = std::make_unique<Engine::Plan>();
  plan->options = options;
  plan->batch = options.batch;
  plan->threads = options.threads > 0 ? options.threads : tbb::this_task_arena::max_concurrency();
  plan->arena = std::make_unique<tbb::task_arena>(plan->threads);
  autograd::NoGradGuard no_grad;
  detail::specialize(graph, options.batch, options.input_shapes);
  if (!graph.inputs.empty() && !graph.inputs[0].shape.empty()) plan->batch = graph.inputs[0].shape[0];
  detail::fold_batch_norm(graph);
  graph.infer_shapes();
  plan->inputs = graph.inputs;
  detail::Builder b{.g = graph, .o = options, .plan = *plan};
  for (const ValueInfo& out : graph.outputs) plan->outputs.emplace_back(out.name, b.id(out.name));
  plan->arena->execute([&] {
    b.build_steps();
    b.link_blocked_layouts();
    b.link_feature_major();
    for (const ValueInfo& in : graph.inputs) plan->input_ids.push_back(b.id(in.name));
    b.fill_buffers();
    if (options.mode == Mode::columns) {
      b.build_groups();
      b.number_groups();
      if (options.measure) b.keep_faster_groups();
      b.own_group_buffers();
    }
  });
  return Engine(std::move(plan));
}

}  // namespace neurite::engine
