// engine::compile, in stages: graph passes (engine/passes.cpp), lowering
// into fused steps with packed weights (engine/lowering.cpp), layout linking
// (engine/layouts.cpp), and the grouping of steps into tensor columns
// (engine/columns.cpp).

#include <fmt/format.h>
#include <tbb/task_arena.h>

#include "engine/columns.h"
#include "engine/graph_index.h"
#include "engine/layouts.h"
#include "engine/lowering.h"
#include "engine/passes.h"
#include "neurite/autograd/ops.h"
#include "neurite/error.h"

namespace neurite::engine {

std::string to_string(Mode mode) { return mode == Mode::columns ? "columns" : "layers"; }

Mode parse_mode(std::string_view name) {
  if (name == "columns") return Mode::columns;
  if (name == "layers") return Mode::layers;
  throw ValueError(fmt::format("mode '{}': expected columns or layers", name));
}

namespace detail {
namespace {

// Random inputs (ids below every table an int64 input indexes), and one
// run layer by layer, so that every buffer holds values.
void fill_buffers(Engine::Plan& plan, const Graph& g, const Lowering& l) {
  Values& v = plan.values;
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const ValueInfo& in = g.inputs[i];
    int64_t bound = 100;
    for (const Node& n : g.nodes)
      if (n.op == OpKind::gather && n.inputs[1] == in.name)
        if (const Tensor* table = g.constant(n.inputs[0])) bound = std::min(bound, table->size(n.integer("axis", 0)));
    v[l.ids.at(in.name)] = in.type == DataType::float32 ? Tensor::randn(in.shape, 7 + i)
                                                        : Tensor::randint(in.shape, 7 + i, 0, bound);
    plan.input_bounds.push_back(bound);
  }
  for (auto& s : plan.steps) s->run(v, plan.threads);
}

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
  auto quantized_weights = detail::quantized_weights(graph);  // before folding makes them floats
  detail::specialize(graph, options.batch, options.input_shapes);
  if (!graph.inputs.empty() && !graph.inputs[0].shape.empty()) plan->batch = graph.inputs[0].shape[0];
  detail::fold_channel_affine(graph, &quantized_weights);
  detail::fold_batch_norm(graph, &quantized_weights);
  detail::fuse_patterns(graph);
  graph.infer_shapes();
  plan->inputs = graph.inputs;
  const detail::GraphIndex index(graph);
  detail::Lowering lowering(graph, index, options, *plan);
  lowering.quantized_weights = std::move(quantized_weights);
  for (const ValueInfo& out : graph.outputs) plan->outputs.emplace_back(out.name, lowering.id(out.name));
  plan->arena->execute([&] {
    lowering.build_steps();
    detail::link_blocked_layouts(*plan);
    detail::link_feature_major(*plan);
    for (const ValueInfo& in : graph.inputs) plan->input_ids.push_back(lowering.id(in.name));
    detail::fill_buffers(*plan, graph, lowering);
    if (options.mode == Mode::columns) {
      plan->groups = detail::plan_columns(*plan, detail::tile_budget(options));
      detail::number_groups(*plan);
      if (options.kernels.autotune) detail::keep_faster_groups(*plan);
      detail::own_group_buffers(*plan, graph);
    }
  });
  for (const detail::Group& g : plan->groups)
    plan->profile.push_back({.name = fmt::format("group {} ({} steps, {})", &g - plan->groups.data(), g.last - g.first,
                                                 g.bands ? fmt::format("bands of {} rows", g.rows)
                                                         : fmt::format("slices of {}", g.slice))});
  for (const auto& s : plan->steps) plan->profile.push_back({.name = s->info.name + " [" + s->info.kernel + "]"});
  for (size_t i = 0; i < plan->values.size(); ++i)
    plan->layout.emplace_back(plan->values[i].shape(), plan->values[i].dtype());
  // Compile's buffers serve the first call; constants stay in `values` for the sets made later.
  plan->spare.push_back(plan->values);
  for (size_t i = 0; i < plan->values.size(); ++i)
    if (!plan->constant[i]) plan->values[i] = Tensor();
  return Engine(std::move(plan));
}

}  // namespace neurite::engine
