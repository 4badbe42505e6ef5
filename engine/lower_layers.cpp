// Lowering of the layers with weights: Conv into a packed or oneDNN
// convolution, Gemm / MatMul with a constant weight into a linear kernel,
// each with its bias, residual Add and Relu fused, its weight in the form
// the weight policy picks.
#include <fmt/format.h>

#include <cstring>
#include <optional>

#include "engine/columns.h"
#include "engine/lowering.h"
#include "engine/steps.h"
#include "engine/weight_policy.h"
#include "neurite/kernels/autotune.h"
#include "neurite/kernels/int8.h"
#include "neurite/kernels/layout.h"
#include "neurite/kernels/transpose.h"

namespace neurite::engine::detail {

namespace {
WeightPolicy weight_policy(const CompileOptions& o) { return {.forced = o.format, .autotune = o.kernels.autotune}; }
}  // namespace

namespace {

// Seconds per run of the float convolution `geo` (groups 1) with weight form
// `f`, timed on up to 8 images: the cost per image is what differs.
double float_conv_seconds(const ConvGeometry& geo, const float* pw, const Fused& fused, WeightFormat f, int threads,
                          kernels::Isa isa) {
  ConvGeometry part = geo;
  part.batch = std::min<int64_t>(geo.batch, std::max(8, threads));
  const Shape xp{part.batch, geo.channels, geo.height, geo.width}, yp{part.batch, geo.filters, geo.out_h, geo.out_w};
  Tensor x = Tensor::randn(xp, 1), y = Tensor::empty(yp), r = Tensor::randn(yp, 2);
  const float* res = fused.residual ? r.data<float>() : nullptr;
  if (f == WeightFormat::dense) {
    DenseConv k(part, 1, pw, fused, threads);
    std::vector<float> blocked(static_cast<size_t>(k.blocked_output_size()));
    const DenseConvBuffers io{.x = x.data<float>(), .residual = res, .y = y.data<float>(), .y_blocked = blocked.data()};
    return kernels::fastest_run_seconds([&] { k.run(io, 0, part.batch, threads); });
  }
  const int64_t rows = geo.filters, cols = geo.channels * geo.kh * geo.kw;
  PackedConv k(part, kernels::pack(pw, rows, cols, f), fused, isa);
  return kernels::fastest_run_seconds([&] { k.run(x.data<float>(), res, y.data<float>()); });
}

}  // namespace

std::unique_ptr<Step> lower_conv(Lowering& l, const Node& n) {
  const Graph& g = l.g;
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
  const ConvGeometry geo{.batch = xs[0], .channels = xs[1], .height = xs[2], .width = xs[3],
                         .filters = w->size(0), .kh = w->size(2), .kw = w->size(3), .sh = strides[0], .sw = strides[1],
                         .dh = dil[0], .dw = dil[1], .pad_top = pads[0], .pad_left = pads[1], .pad_bottom = pads[2],
                         .pad_right = pads[3], .out_h = ys[2], .out_w = ys[3]};
  auto step = std::make_unique<ConvStep>();
  Fused fused;
  if (b != nullptr) fused.bias.assign(b->data<float>(), b->data<float>() + b->numel());
  const std::string out = l.fuse_tail(n.outputs[0], fused, step->residual);
  step->inputs = {l.id(n.inputs[0])};
  step->outputs = {l.id(out)};
  const int64_t rows = geo.filters, cols = w->numel() / geo.filters;
  const float* pw = w->data<float>();
  const int threads = l.plan.threads;
  const kernels::Isa isa = l.options.kernels.resolved_isa();
  // The packed kernel runs groups 1 only.
  const WeightFormat format =
      groups != 1 ? WeightFormat::dense : choose_weight_format(pw, rows, cols, weight_policy(l.options), [&](WeightFormat f) {
        return float_conv_seconds(geo, pw, fused, f, threads, isa);
      });
  if (format == WeightFormat::dense) {
    step->dense = std::make_unique<DenseConv>(geo, groups, pw, fused, threads);
    step->sliceable = true;
  } else {
    step->packed = std::make_unique<PackedConv>(geo, kernels::pack(pw, rows, cols, format), fused, isa);
    step->sliceable = step->bands = true;
    step->conv = step->packed.get();
    step->band_input = step->inputs[0];
    const int64_t budget = tile_budget(l.options) / 2;
    while (step->tile_images < geo.batch && step->packed->tile_bytes(2 * step->tile_images, geo.out_h) <= budget)
      step->tile_images *= 2;
  }
  step->info = {.name = n.name,
                .kernel = fmt::format("{} {}x{}/{} {}{}", groups == 1 ? "conv" : "conv grouped", geo.kh, geo.kw, geo.sh,
                                      step->dense ? "dense(onednn)" : to_string(format), fused_name(fused)),
                .density = static_cast<double>(kernels::count_nonzero(pw, w->numel())) / static_cast<double>(w->numel())};
  return step;
}

namespace {

// Whether node n is a linear layer: Gemm or MatMul by a constant 2-D weight.
bool is_linear(const Graph& g, const Node& n) {
  if (n.op != OpKind::gemm && n.op != OpKind::matmul) return false;
  const Tensor* w = g.constant(n.inputs[1]);
  return w != nullptr && w->dim() == 2;
}

// Whether `value` comes from a linear layer through its bias and activation
// alone: where a sparse layer reading it could take it feature-major.
bool from_linear(const Lowering& l, std::string value) {
  for (int hops = 0; hops < 4; ++hops) {
    const auto p = l.index.producer(value);
    if (!p || l.index.readers(value) != 1) return false;
    const Node& n = l.g.nodes[*p];
    if (is_linear(l.g, n)) return true;
    if (n.op == OpKind::relu || n.op == OpKind::clip) {
      value = n.inputs[0];
    } else if (n.op == OpKind::add && (l.constants.count(n.inputs[0]) != 0) != (l.constants.count(n.inputs[1]) != 0)) {
      value = l.constants.count(n.inputs[0]) != 0 ? n.inputs[1] : n.inputs[0];  // a bias
    } else {
      return false;
    }
  }
  return false;
}

// Whether `value` is read by a linear layer alone.
bool into_linear(const Lowering& l, const std::string& value) {
  const auto c = l.index.sole_consumer(value);
  return c && is_linear(l.g, l.g.nodes[*c]) && l.g.nodes[*c].inputs[0] == value;
}

}  // namespace

// The bias of Gemm or MatMul n into fused.bias: Gemm's C times beta, or the
// constant vector a MatMul's sole Add adds (consumed). Returns the output the
// bias is in; nullopt for a C that is no vector of `features` (the reference
// executor's case).
std::optional<std::string> linear_bias(Lowering& l, const Node& n, int64_t features, Fused& fused) {
  const Graph& g = l.g;
  std::string out = n.outputs[0];
  if (n.op == OpKind::gemm) {
    const float beta = static_cast<float>(n.real("beta", 1.0));
    if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
      const Tensor* c = g.constant(n.inputs[2]);
      // A vector over the features: (N) or (1, N); an (M, 1) C of M == N values is per row.
      if (c == nullptr || c->dtype() != autograd::Dtype::f32 || c->numel() != features ||
          (c->dim() > 1 && c->size(-1) != features))
        return std::nullopt;
      for (int64_t i = 0; i < features; ++i) fused.bias.push_back(beta * c->data<float>()[i]);
    }
  } else if (const Node* add = l.sole_consumer(out, OpKind::add)) {  // MatMul + bias
    const std::string& other = add->inputs[0] == out ? add->inputs[1] : add->inputs[0];
    const Tensor* c = g.constant(other);
    if (c != nullptr && c->dtype() == autograd::Dtype::f32 && c->numel() == features && c->dim() == 1) {
      fused.bias.assign(c->data<float>(), c->data<float>() + features);
      l.consume(add);
      out = add->outputs[0];
    }
  }
  return out;
}

// Gemm(x, W) and MatMul(x, W) [+ bias] with constant W: W kept as (N, K).
std::unique_ptr<Step> lower_linear(Lowering& l, const Node& n) {
  const Graph& g = l.g;
  const Shape& xs = g.values.at(n.inputs[0]).shape;
  const Tensor* w = g.constant(n.inputs[1]);
  if (w == nullptr || w->dim() != 2 || w->dtype() != autograd::Dtype::f32 || xs.size() < 2) return nullptr;
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
  if (gemm && n.real("alpha", 1.0) != 1.0)
    for (int64_t i = 0; i < wt.numel(); ++i) wt.data<float>()[i] *= static_cast<float>(n.real("alpha", 1.0));
  Fused fused;
  const std::optional<std::string> biased = linear_bias(l, n, features, fused);
  if (!biased) return nullptr;
  auto step = std::make_unique<LinearStep>();
  const std::string out = l.fuse_tail(*biased, fused, step->residual);
  step->inputs = {l.id(n.inputs[0])};
  step->outputs = {l.id(out)};
  const int64_t m = autograd::numel(xs) / k;
  step->units = m;
  step->units_per_item = m / l.plan.batch;
  const float* pw = wt.data<float>();
  const int threads = l.plan.threads;
  const kernels::Isa isa = l.options.kernels.resolved_isa();
  // A sparse layer next to another keeps their activations feature-major
  // (engine/layouts.cpp), skipping two transposes: timed alone, it is timed
  // so, or a pair of sparse layers that wins in the model lost to dense.
  const bool fm_in = m > LinearKernel::kFewRows && from_linear(l, n.inputs[0]);
  const bool fm_out = m > LinearKernel::kFewRows && !fused.residual && into_linear(l, out);
  const WeightFormat format = choose_weight_format(pw, features, k, weight_policy(l.options), [&](WeightFormat f) {
    const int64_t rows = std::min<int64_t>(m, 1024);  // past a few chunks the cost per row is what differs
    LinearKernel kernel(k, features, pw, f, fused, isa);
    const bool sparse = f != WeightFormat::dense;
    kernel.set_feature_major(sparse && fm_in, sparse && fm_out, rows);
    const int64_t ld = kernels::feature_major_ld(rows);
    Tensor x = Tensor::randn({sparse && fm_in ? k * ld : rows * k}, 1);
    Tensor y = Tensor::empty({sparse && fm_out ? kernel.feature_major_rows() * ld : rows * features});
    Tensor r = Tensor::randn({rows, features}, 2);
    return kernels::fastest_run_seconds(
        [&] { kernel.run(x.data<float>(), fused.residual ? r.data<float>() : nullptr, y.data<float>(), 0, rows, threads); },
        /*cold=*/true);
  });
  step->kernel = std::make_unique<LinearKernel>(k, features, pw, format, fused, isa);
  step->sliceable = m % l.plan.batch == 0 && xs[0] == l.plan.batch;
  step->info = {.name = n.name,
                .kernel = fmt::format("linear {}x{} {}{}", k, features, to_string(format), fused_name(fused)),
                .density = step->kernel->density()};
  return step;
}

std::unique_ptr<Step> lower_int8_linear(Lowering& l, const Node& n, const std::string& x, const kernels::QuantGrid& grid) {
  const Graph& g = l.g;
  const Shape& xs = g.values.at(n.inputs[0]).shape;
  auto it = l.quantized_weights.find(n.inputs[1]);
  const Tensor* w = g.constant(n.inputs[1]);
  if (!kernels::has_vnni() || it == l.quantized_weights.end() || w == nullptr || xs.size() < 2 || w->dim() != 2) return nullptr;
  const QuantizedWeight& qw = it->second;
  // The floats the weight folded to are still its grid's (no pass rewrote them).
  if (w->nbytes() != qw.dequantized.nbytes() || std::memcmp(w->bytes(), qw.dequantized.bytes(), w->nbytes()) != 0)
    return nullptr;
  const bool gemm = n.op == OpKind::gemm;
  if (gemm && (n.integer("transA", 0) != 0 || n.real("alpha", 1.0) != 1.0 || xs.size() != 2)) return nullptr;
  const bool trans_b = gemm && n.integer("transB", 0) != 0;  // W (N, K); else (K, N)
  const int64_t k = xs.back(), features = trans_b ? w->size(0) : w->size(1);
  const int64_t feature_axis = trans_b ? 0 : 1, m = autograd::numel(xs) / k;
  if (m < kernels::kInt8MinItems || (k + 3) / 4 > kernels::kInt8MaxQuads) return nullptr;
  if (qw.grids.axis >= 0 && qw.grids.axis != feature_axis) return nullptr;  // grids along K: no per-feature scale
  for (const kernels::QuantGrid& wg : qw.grids.grids)
    if (wg.zero_point != 0) return nullptr;  // asymmetric weights: the product needs x's sums too
  std::vector<int8_t> wq(static_cast<size_t>(features * k));
  for (int64_t f = 0; f < features; ++f)
    for (int64_t c = 0; c < k; ++c) wq[f * k + c] = qw.q.data<int8_t>()[trans_b ? f * k + c : c * features + f];
  Fused fused;
  const std::optional<std::string> biased = linear_bias(l, n, features, fused);
  if (!biased) return nullptr;
  auto step = std::make_unique<Int8LinearStep>();
  const std::string out = l.fuse_tail(*biased, fused, step->residual);
  step->weight = kernels::pack_int8_groups(wq.data(), features, k);
  for (int64_t f = 0; f < features; ++f)
    step->scale.push_back(grid.scale * qw.grids.grids[qw.grids.axis < 0 ? 0 : f].scale);
  step->x_grid = grid;
  step->fused = std::move(fused);
  step->isa = l.options.kernels.resolved_isa();
  step->inputs = {l.id(x)};
  step->outputs = {l.id(out)};
  step->units = m;
  step->units_per_item = m / l.plan.batch;
  step->sliceable = m % l.plan.batch == 0 && xs[0] == l.plan.batch;
  l.consume(&n);
  step->info = {.name = n.name,
                .kernel = fmt::format("linear {}x{} int8 1x4{}", k, features, fused_name(step->fused)),
                .density = step->weight.density()};
  return step;
}

namespace {

// Whether the INT8 step `int8` (its tail not fused yet) beats what the float
// path would run instead, on up to 8 images: a fake-quantize pass over the
// input, then the float convolution in its fastest weight form. INT8 can lose
// on small images and few channels (quads padded from 1 channel to 4).
bool int8_conv_is_faster(const Lowering& l, const Node& n, const Int8ConvStep& int8, const Tensor& w,
                         const kernels::QuantGrid& grid) {
  const Shape& xs = l.g.values.at(n.inputs[0]).shape;
  const Shape& ys = l.g.values.at(n.outputs[0]).shape;
  const auto strides = n.integers("strides", {1, 1}), dil = n.integers("dilations", {1, 1});
  const auto pads = n.integers("pads", {0, 0, 0, 0});
  const int threads = l.plan.threads;
  const kernels::Isa isa = l.options.kernels.resolved_isa();
  ConvGeometry geo{.batch = std::min<int64_t>(xs[0], std::max(8, threads)), .channels = xs[1], .height = xs[2],
                   .width = xs[3], .filters = w.size(0), .kh = w.size(2), .kw = w.size(3), .sh = strides[0],
                   .sw = strides[1], .dh = dil[0], .dw = dil[1], .pad_top = pads[0], .pad_left = pads[1],
                   .pad_bottom = pads[2], .pad_right = pads[3], .out_h = ys[2], .out_w = ys[3]};
  const float* pw = w.data<float>();
  const WeightFormat format = choose_weight_format(pw, geo.filters, w.numel() / geo.filters, weight_policy(l.options),
                                                   [&](WeightFormat f) { return float_conv_seconds(geo, pw, int8.fused, f, threads, isa); });
  Tensor x = Tensor::randn({geo.batch, geo.channels, geo.height, geo.width}, 3);
  Tensor q = Tensor::empty(x.shape());
  const double float_seconds =
      float_conv_seconds(geo, pw, int8.fused, format, threads, isa) +
      kernels::fastest_run_seconds([&] { kernels::fake_quantize(grid, x.data<float>(), q.data<float>(), x.numel()); });
  Int8ConvStep timed = int8;
  timed.inputs = {0};
  timed.outputs = {1};
  timed.residual = -1;
  Values v{x, Tensor::empty({geo.batch, geo.filters, geo.out_h, geo.out_w})};
  return kernels::fastest_run_seconds([&] { timed.run_units(v, 0, geo.batch, threads); }) < float_seconds;
}

}  // namespace

std::unique_ptr<Step> lower_int8_conv(Lowering& l, const Node& n, const std::string& x, const kernels::QuantGrid& grid) {
  const Graph& g = l.g;
  const Shape& xs = g.values.at(n.inputs[0]).shape;
  auto it = l.quantized_weights.find(n.inputs[1]);
  const Tensor* w = g.constant(n.inputs[1]);
  const Tensor* b = n.inputs.size() > 2 && !n.inputs[2].empty() ? g.constant(n.inputs[2]) : nullptr;
  if (!kernels::has_vnni() || it == l.quantized_weights.end() || w == nullptr || w->dim() != 4 || xs.size() != 4 ||
      (n.inputs.size() > 2 && !n.inputs[2].empty() && b == nullptr))
    return nullptr;
  const QuantizedWeight& qw = it->second;
  if (w->nbytes() != qw.dequantized.nbytes() || std::memcmp(w->bytes(), qw.dequantized.bytes(), w->nbytes()) != 0)
    return nullptr;  // rewritten since (the floats are then what the layer computes)
  const auto strides = n.integers("strides", {1, 1});
  if (n.integer("group", 1) != 1 || strides.size() != 2 || strides[0] < 1 || strides[1] < 1 ||
      (n.has("auto_pad") && std::get<std::string>(n.attributes.at("auto_pad")) != "NOTSET") ||
      (qw.grids.axis >= 0 && qw.grids.axis != 0))
    return nullptr;
  for (const kernels::QuantGrid& wg : qw.grids.grids)
    if (wg.zero_point != 0) return nullptr;
  const int64_t features = w->size(0), channels = w->size(1), kh = w->size(2), kw = w->size(3);
  const auto pads = n.integers("pads", {0, 0, 0, 0}), dil = n.integers("dilations", {1, 1});
  if (channels != xs[1] || pads.size() != 4 || dil.size() != 2 || kh * kw * ((channels + 3) / 4) > kernels::kInt8MaxQuads ||
      (b != nullptr && (b->dtype() != autograd::Dtype::f32 || b->numel() != features)))
    return nullptr;
  auto step = std::make_unique<Int8ConvStep>();
  step->channels = channels, step->height = xs[2], step->width = xs[3];
  step->pad_top = pads[0], step->pad_left = pads[1];
  step->stride_h = strides[0], step->stride_w = strides[1];
  const int64_t padded_height = xs[2] + pads[0] + pads[2], padded_width = xs[3] + pads[1] + pads[3];
  step->out_h = (padded_height - (kh - 1) * dil[0] - 1) / strides[0] + 1;
  step->out_w = (padded_width - (kw - 1) * dil[1] - 1) / strides[1] + 1;
  if (step->out_h < 1 || step->out_w < 1) return nullptr;
  // A phase plane holds the padded pixels (r, c) with r % stride_h, c % stride_w fixed.
  const int64_t phase_height = (padded_height + strides[0] - 1) / strides[0];
  step->phase_width = (padded_width + strides[1] - 1) / strides[1];
  step->items = kernels::quad_ld(step->out_h * step->phase_width);
  const int64_t reach = ((kh - 1) * dil[0] / strides[0]) * step->phase_width + (kw - 1) * dil[1] / strides[1];
  step->plane = kernels::quad_ld(std::max(phase_height * step->phase_width, step->items + reach));
  // The weight as (F, taps, channels padded to quads): a quad is four channels at one tap.
  const int64_t quads = (channels + 3) / 4, taps = kh * kw, cols = taps * quads * 4;
  std::vector<int8_t> wq(static_cast<size_t>(features * cols), 0);
  for (int64_t f = 0; f < features; ++f)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t t = 0; t < taps; ++t)
        wq[f * cols + t * quads * 4 + c] = qw.q.data<int8_t>()[(f * channels + c) * taps + t];
  for (int64_t t = 0; t < taps; ++t) {
    const int64_t di = (t / kw) * dil[0], dj = (t % kw) * dil[1];
    const int64_t phase = (di % strides[0]) * strides[1] + dj % strides[1];
    for (int64_t q = 0; q < quads; ++q)
      step->quad_offset.push_back((phase * quads + q) * step->plane + (di / strides[0]) * step->phase_width + dj / strides[1]);
  }
  step->weight = kernels::pack_int8_groups(wq.data(), features, cols);
  for (int64_t f = 0; f < features; ++f) step->scale.push_back(grid.scale * qw.grids.grids[qw.grids.axis < 0 ? 0 : f].scale);
  if (b != nullptr) step->fused.bias.assign(b->data<float>(), b->data<float>() + features);
  step->x_grid = grid;
  step->isa = l.options.kernels.resolved_isa();
  if (l.options.kernels.autotune && !int8_conv_is_faster(l, n, *step, *w, grid)) return nullptr;
  const std::string out = l.fuse_tail(n.outputs[0], step->fused, step->residual);
  step->inputs = {l.id(x)};
  step->outputs = {l.id(out)};
  step->units = xs[0];
  step->units_per_item = 1;
  step->sliceable = xs[0] == l.plan.batch;
  l.consume(&n);
  step->info = {.name = n.name,
                .kernel = fmt::format("conv {}x{}/{} int8 1x4{}", kh, kw, strides[0], fused_name(step->fused)),
                .density = step->weight.density()};
  return step;
}

}  // namespace neurite::engine::detail
