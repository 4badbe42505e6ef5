// Lowering of the ops with kernels of their own and no weights: row kernels
// (softmax, layer norm, trailing means), batched products of activations,
// pooling, and copies (Transpose, Slice).
#include <fmt/format.h>

#include <algorithm>

#include "engine/lowering.h"
#include "engine/steps.h"
#include "engine/views.h"

namespace neurite::engine::detail {

std::unique_ptr<Step> lower_rows(Lowering& l, const Node& n) {
  const Graph& g = l.g;
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
    const int64_t first = axes.front(), last = axes.back() + 1;  // consecutive axes [first, last)
    if (last - first != static_cast<int64_t>(axes.size()) || first == 0) return nullptr;
    int64_t outer = 1, reduced = 1, inner = 1;
    for (int64_t a = 0; a < rank; ++a)
      (a < first ? outer : a < last ? reduced : inner) *= x.shape[static_cast<size_t>(a)];
    if (reduced == 0) return nullptr;
    if (last < rank) {  // a mean over middle axes: sums of whole inner rows
      auto mean = std::make_unique<MeanAxesStep>();
      mean->reduced = reduced, mean->inner = inner;
      mean->units = outer;
      mean->sliceable = x.shape[0] == l.plan.batch;
      mean->units_per_item = mean->sliceable ? outer / l.plan.batch : outer;
      mean->inputs = {l.id(n.inputs[0])};
      mean->outputs = {l.id(n.outputs[0])};
      mean->info = {.name = n.name, .kernel = "mean over axes"};
      return mean;
    }
    step->n = reduced;
    step->kind = RowStep::Kind::mean;
  } else if (axis != -1 && axis != rank - 1) {
    return nullptr;
  }
  if (n.op == OpKind::softmax) step->kind = RowStep::Kind::softmax;
  if (n.op == OpKind::layer_norm) {
    step->kind = RowStep::Kind::layer_norm;
    for (size_t k = 1; k < n.outputs.size(); ++k)
      if (!n.outputs[k].empty() && l.index.readers(n.outputs[k]) > 0) return nullptr;  // Mean / InvStdDev read
    const Tensor* scale = g.constant(n.inputs[1]);
    const Tensor* bias = n.inputs.size() > 2 && !n.inputs[2].empty() ? g.constant(n.inputs[2]) : nullptr;
    if (scale == nullptr || scale->numel() != step->n || (n.inputs.size() > 2 && !n.inputs[2].empty() && !bias))
      return nullptr;
    step->scale.assign(scale->data<float>(), scale->data<float>() + step->n);
    step->bias = bias ? std::vector<float>(bias->data<float>(), bias->data<float>() + step->n)
                      : std::vector<float>(static_cast<size_t>(step->n), 0.0f);
    step->epsilon = static_cast<float>(n.real("epsilon", 1e-5));
  }
  step->inputs = {l.id(n.inputs[0])};
  step->outputs = {l.id(n.outputs[0])};
  const int64_t rows = autograd::numel(x.shape) / step->n;
  step->sliceable = x.shape[0] == l.plan.batch && rank >= 2;
  step->units = rows;
  step->units_per_item = rows / l.plan.batch;
  const char* names[] = {"softmax rows", "layer_norm rows", "mean rows"};
  step->info = {.name = n.name, .kernel = names[static_cast<int>(step->kind)]};
  return step;
}

namespace {

// A view as a gemm operand of `rows` x `cols`: unit column stride (ld: the row
// stride) or unit row stride (transposed; ld: the column stride). false when neither.
bool as_operand(const StridedView& v, bool& transposed, int64_t& ld) {
  const size_t r = v.dims.size();
  const int64_t rows = v.size(r - 2), cols = v.size(r - 1);
  const auto row_stride = v.stride(r - 2), col_stride = v.stride(r - 1);
  if (!row_stride || !col_stride) return false;
  if (*col_stride == 1 || cols == 1) {
    transposed = false;
    ld = rows == 1 ? std::max<int64_t>(cols, 1) : *row_stride;
    return ld >= cols;
  }
  if (*row_stride == 1 || rows == 1) {
    transposed = true;
    ld = cols == 1 ? std::max<int64_t>(rows, 1) : *col_stride;
    return ld >= rows;
  }
  return false;
}

// Each matrix's offset in a view's buffer, matrices in row-major order of the batch dimensions.
std::vector<int64_t> matrix_offsets(const StridedView& v) {
  std::vector<Axis> axes;  // of the batch dimensions, outer first
  for (size_t d = 0; d + 2 < v.dims.size(); ++d) axes.insert(axes.end(), v.dims[d].begin(), v.dims[d].end());
  int64_t count = 1;
  for (const Axis& a : axes) count *= a.size;
  std::vector<int64_t> at(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    int64_t rest = i, offset = v.offset;
    for (size_t k = axes.size(); k-- > 0;) {
      offset += (rest % axes[k].size) * axes[k].stride;
      rest /= axes[k].size;
    }
    at[static_cast<size_t>(i)] = offset;
  }
  return at;
}

}  // namespace

std::optional<BatchedViews> plan_batched_matmul(const Lowering& l, const Node& n) {
  const Graph& g = l.g;
  if (n.op != OpKind::matmul || l.constants.count(n.inputs[1])) return std::nullopt;
  const ValueInfo &a = g.values.at(n.inputs[0]), &b = g.values.at(n.inputs[1]);
  const size_t rank = a.shape.size();
  if (a.type != DataType::float32 || b.type != DataType::float32 || rank < 3 || b.shape.size() != rank)
    return std::nullopt;
  for (size_t d = 0; d + 2 < rank; ++d)
    if (a.shape[d] != b.shape[d]) return std::nullopt;  // broadcasting batches: the reference's case
  BatchedViews views{.a = read_view(l, n.inputs[0]), .b = read_view(l, n.inputs[1]), .c = {}};
  bool transposed = false;
  int64_t ld = 0;
  if (!as_operand(views.a, transposed, ld)) views.a = read_view_of_itself(l, n.inputs[0]);
  if (!as_operand(views.b, transposed, ld)) views.b = read_view_of_itself(l, n.inputs[1]);
  const auto c = write_view(l, n.outputs[0]);
  bool c_transposed = false;
  views.c = c && as_operand(*c, c_transposed, ld) && !c_transposed ? *c : read_view_of_itself(l, n.outputs[0]);
  return views;
}

namespace {

// The product of planned views; `name` the node it lowers. Its value ids
// are the caller's to bind: attention has no buffer for its scores.
std::unique_ptr<BatchedMatMulStep> batched_step(Lowering& l, const BatchedViews& v, const std::string& name) {
  const size_t rank = v.a.dims.size();
  auto step = std::make_unique<BatchedMatMulStep>();
  step->shape = {.m = v.a.size(rank - 2), .n = v.b.size(rank - 1), .k = v.a.size(rank - 1)};
  bool c_transposed = false;
  as_operand(v.a, step->shape.trans_a, step->lda);
  as_operand(v.b, step->shape.trans_b, step->ldb);
  as_operand(v.c, c_transposed, step->ldc);
  step->alpha = v.a.scale * v.b.scale;
  step->a_at = matrix_offsets(v.a);
  step->b_at = matrix_offsets(v.b);
  step->c_at = matrix_offsets(v.c);
  step->units = static_cast<int64_t>(step->a_at.size());
  const bool plain = v.a.nodes.empty() && v.b.nodes.empty() && v.c.nodes.empty();
  step->sliceable = plain && v.a.size(0) == l.plan.batch && step->units % l.plan.batch == 0;
  step->units_per_item = step->sliceable ? step->units / l.plan.batch : step->units;
  const size_t folded = v.a.nodes.size() + v.b.nodes.size() + v.c.nodes.size();
  step->info = {.name = name, .kernel = fmt::format("batched matmul {}x{}x{}{}", step->shape.m, step->shape.k,
                                                     step->shape.n, folded ? fmt::format(" ({} layout ops folded)", folded) : "")};
  return step;
}

std::unique_ptr<Step> lower_attention(Lowering& l, const Lowering::Attention& at) {
  auto step = std::make_unique<AttentionStep>();
  step->scores = std::move(*batched_step(l, at.scores, at.scores_node));
  step->scores.inputs = {l.id(at.scores.a.base), l.id(at.scores.b.base)};
  step->scores.alpha *= at.scale;
  step->values = std::move(*batched_step(l, at.values, at.scores_node));
  step->values.inputs = {-1, l.id(at.values.b.base)};
  step->values.outputs = {l.id(at.values.c.base)};
  step->units = step->scores.units;
  step->inputs = {step->scores.inputs[0], step->scores.inputs[1], step->values.inputs[1]};
  if (!at.mask.empty()) {  // broadcast over the scores (B..., m, n): size-1 dimensions repeat
    const Shape& scores_shape = l.g.values.at(at.scores_value).shape;
    const Shape& mask_shape = l.g.values.at(at.mask).shape;
    StridedView mv = read_view_of_itself(l, at.mask);
    mv.dims.insert(mv.dims.begin(), scores_shape.size() - mask_shape.size(), std::vector<Axis>{});
    for (size_t d = 0; d + 2 < scores_shape.size(); ++d)  // a repeated batch dimension: one axis of stride 0
      if (mv.size(d) == 1 && scores_shape[d] != 1) mv.dims[d] = {{scores_shape[d], 0}};
    step->mask = l.id(at.mask);
    step->mask_at = matrix_offsets(mv);
    step->mask_row_stride = mv.size(scores_shape.size() - 2) == 1 ? 0 : scores_shape.back();
    step->inputs.push_back(step->mask);
  }
  step->sliceable = step->scores.sliceable && step->values.sliceable && at.mask.empty();
  step->units_per_item = step->sliceable ? step->values.units_per_item : step->units;
  step->outputs = step->values.outputs;
  const size_t folded = at.scores.a.nodes.size() + at.scores.b.nodes.size() + at.values.b.nodes.size() +
                        at.values.c.nodes.size();
  step->info = {.name = at.scores_node,
                .kernel = fmt::format("attention {}x{}x{}x{}{}{}", step->scores.shape.m, step->scores.shape.k,
                                      step->scores.shape.n, step->values.shape.n, at.mask.empty() ? "" : " +mask",
                                      folded ? fmt::format(" ({} layout ops folded)", folded) : "")};
  return step;
}

}  // namespace

std::unique_ptr<Step> lower_batched_matmul(Lowering& l, const Node& n) {
  if (const auto found = l.attention.find(n.outputs[0]); found != l.attention.end())
    return lower_attention(l, found->second);
  const auto found = l.batched_views.find(n.outputs[0]);
  const std::optional<BatchedViews> planned =
      found != l.batched_views.end() ? std::optional<BatchedViews>(found->second) : plan_batched_matmul(l, n);
  if (!planned) return nullptr;
  auto step = batched_step(l, *planned, n.name);
  step->inputs = {l.id(planned->a.base), l.id(planned->b.base)};
  step->outputs = {l.id(planned->c.base)};
  return step;
}

std::unique_ptr<Step> lower_gather(Lowering& l, const Node& n) {
  const Graph& g = l.g;
  const Tensor* table = g.constant(n.inputs[0]);
  const ValueInfo& index = g.values.at(n.inputs[1]);
  if (table == nullptr || table->dtype() != autograd::Dtype::f32 || table->dim() < 1 || n.integer("axis", 0) != 0 ||
      index.type != DataType::int64 || l.constants.count(n.inputs[1]))
    return nullptr;
  auto step = std::make_unique<GatherRowsStep>();
  step->rows = table->size(0);
  step->row = table->numel() / std::max<int64_t>(1, step->rows);
  step->units = autograd::numel(index.shape);
  step->sliceable = !index.shape.empty() && index.shape[0] == l.plan.batch;
  step->units_per_item = step->sliceable ? step->units / l.plan.batch : step->units;
  step->inputs = {l.id(n.inputs[0]), l.id(n.inputs[1])};
  step->outputs = {l.id(n.outputs[0])};
  step->info = {.name = n.name, .kernel = fmt::format("gather rows of {}", step->row)};
  return step;
}

std::unique_ptr<Step> lower_concat(Lowering& l, const Node& n) {
  const Graph& g = l.g;
  const Shape& ys = g.values.at(n.outputs[0]).shape;
  const auto rank = static_cast<int64_t>(ys.size());
  int64_t axis = n.integer("axis", 0);
  axis = axis < 0 ? axis + rank : axis;
  if (rank == 0 || axis < 0 || axis >= rank || g.values.at(n.outputs[0]).type != DataType::float32) return nullptr;
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= ys[static_cast<size_t>(d)];
  for (int64_t d = axis + 1; d < rank; ++d) inner *= ys[static_cast<size_t>(d)];
  auto step = std::make_unique<ConcatStep>();
  for (const std::string& in : n.inputs) {
    const ValueInfo& info = g.values.at(in);
    if (info.type != DataType::float32 || info.shape.size() != ys.size()) return nullptr;
    step->runs.push_back(info.shape[static_cast<size_t>(axis)] * inner);
    step->inputs.push_back(l.id(in));
  }
  step->outputs = {l.id(n.outputs[0])};
  step->units = outer;
  // A slice of the batch is a slice of the units when the axis is not the batch's and every input is batch-major.
  step->sliceable = axis > 0 && ys[0] == l.plan.batch &&
                    std::all_of(n.inputs.begin(), n.inputs.end(), [&](const std::string& in) {
                      return g.values.at(in).shape[0] == l.plan.batch && l.constants.count(in) == 0;
                    });
  step->units_per_item = step->sliceable ? outer / l.plan.batch : outer;
  step->info = {.name = n.name, .kernel = fmt::format("copy concat of {}", n.inputs.size())};
  return step;
}

std::unique_ptr<Step> lower_pool(Lowering& l, const Node& n) {
  const Graph& g = l.g;
  const ValueInfo& x = g.values.at(n.inputs[0]);
  const Shape& ys = g.values.at(n.outputs[0]).shape;
  if (x.type != DataType::float32 || x.shape.size() != 4 || n.outputs.size() != 1) return nullptr;
  // The kernel clips windows to the input: right for the windows ceil_mode adds
  // but when an average counts its pads (then PyTorch counts the pads, not the
  // cells past them); the reference executor runs that case.
  const bool include_pad = n.integer("count_include_pad", 0) != 0;
  if ((n.integer("ceil_mode", 0) != 0 && n.op == OpKind::average_pool && include_pad) ||
      n.integers("dilations", {1, 1}) != std::vector<int64_t>{1, 1})
    return nullptr;
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
  step->include_pad = include_pad;
  step->inputs = {l.id(n.inputs[0])};
  step->outputs = {l.id(n.outputs[0])};
  step->sliceable = x.shape[0] == l.plan.batch;
  step->info = {.name = n.name, .kernel = fmt::format("{} {}x{}/{}", step->is_max ? "max pool" : "average pool",
                                                       kernel[0], kernel[1], strides[0])};
  return step;
}

std::unique_ptr<Step> lower_copy(Lowering& l, const Node& n) {
  const Graph& g = l.g;
  const ValueInfo& x = g.values.at(n.inputs[0]);
  const Shape& ys = g.values.at(n.outputs[0]).shape;
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  if (x.type != DataType::float32 || rank < 2 || static_cast<int64_t>(ys.size()) != rank) return nullptr;
  auto step = std::make_unique<CopyStep>();
  step->in_shape = x.shape;
  step->out_shape = ys;
  step->units = ys[0];
  std::vector<int64_t> in_stride(static_cast<size_t>(rank), 1);
  for (size_t d = in_stride.size() - 1; d-- > 0;) in_stride[d] = in_stride[d + 1] * x.shape[d + 1];
  bool batch_kept = true;  // the first axis stays the batch's
  if (n.op == OpKind::transpose) {
    const std::vector<int64_t> perm = n.integers("perm");
    if (static_cast<int64_t>(perm.size()) != rank) return nullptr;
    for (int64_t p : perm) step->strides.push_back(in_stride[static_cast<size_t>(p)]);
    batch_kept = perm[0] == 0;
  } else {  // Slice with constant starts, axes and positive steps
    const auto sliced = constant_slice(g, n, x.shape);
    if (!sliced) return nullptr;
    step->strides = in_stride;
    for (const SlicedAxis& s : *sliced) {
      step->offset += s.start * in_stride[s.axis];
      step->strides[s.axis] *= s.step;
      batch_kept = batch_kept && s.axis != 0;
    }
    if (sliced->size() == 1 && sliced->front().step == 1)  // whole runs
      step->axis = static_cast<int64_t>(sliced->front().axis), step->start = sliced->front().start;
  }
  step->inputs = {l.id(n.inputs[0])};
  step->outputs = {l.id(n.outputs[0])};
  step->sliceable = x.shape[0] == l.plan.batch && ys[0] == l.plan.batch && batch_kept;
  step->info = {.name = n.name, .kernel = n.op == OpKind::transpose ? "copy transpose" : "copy slice"};
  return step;
}

}  // namespace neurite::engine::detail
