// The tensor-column planner: which consecutive steps run together over a
// tile, and how large the tile is.
#include "engine/columns.h"

#include <algorithm>

#include "engine/steps.h"
#include "neurite/kernels/autotune.h"
#include "neurite/kernels/cache.h"

namespace neurite::engine::detail {

namespace {
int64_t per_item(const Tensor& t) { return t.dim() == 0 || t.size(0) == 0 ? 0 : t.numel() / t.size(0); }
}  // namespace

int64_t tile_budget(const CompileOptions& o) { return o.tile_bytes > 0 ? o.tile_bytes : kernels::l2_cache_bytes(); }

std::vector<Group> plan_columns(const Engine::Plan& plan, int64_t budget) {
  std::vector<Group> groups;
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
      groups.push_back(group);
    }
    i = j;
  }
  return groups;
}

// On random inputs: tiles that fit in cache did not pay for themselves
// everywhere (a 2 MiB transformer batch, or a batch of 64 MLP rows that fits
// in L2 already).
void keep_faster_groups(Engine::Plan& plan) {
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
      const double t = kernels::fastest_run_seconds([&] { run_group(plan, g, plan.values); });
      if (t < columns) columns = t, best = g;
    }
    const double layers = kernels::fastest_run_seconds([&] {
      for (size_t k = group.first; k < group.last; ++k) plan.steps[k]->run(plan.values, plan.threads);
    });
    if (columns < layers) kept.push_back(best);
  }
  plan.groups = std::move(kept);
  number_groups(plan);
}

void number_groups(Engine::Plan& plan) {
  for (auto& s : plan.steps) s->info.group = -1;
  for (size_t i = 0; i < plan.groups.size(); ++i)
    for (size_t k = plan.groups[i].first; k < plan.groups[i].last; ++k) plan.steps[k]->info.group = static_cast<int>(i);
}

void own_group_buffers(Engine::Plan& plan, const Graph& g) {
  for (auto& s : plan.steps) {
    auto* node = dynamic_cast<NodeStep*>(s.get());
    if (node == nullptr || s->info.group < 0) continue;
    for (size_t k = 0; k < node->outputs.size(); ++k) {
      if (node->outputs[k] < 0) continue;
      const ValueInfo& info = g.values.at(node->node.outputs[k]);
      plan.values[node->outputs[k]] =
          Tensor::zeros(info.shape, storage_of(info.type));
    }
  }
}

}  // namespace neurite::engine::detail
