#include "recipes/modifiers/modifier_run.h"

#include <fmt/format.h>

#include <algorithm>

#include "neurite/error.h"
#include "neurite/pruning/pruning.h"

namespace neurite::recipes::detail {

void ClockedRun::before_step(double epoch) {
  if (!clock_.due(epoch)) return;
  const bool first = !started_;
  started_ = true;
  update(epoch, first);
}

void ClockedRun::skip_step(double epoch) {
  if (clock_.due(epoch) && !started_) {
    started_ = true;
    resume_started();
  }
}

NamedParameters select_parameters(const layers::Module& model, const std::vector<std::string>& selectors,
                                  const Modifier& modifier, bool strict) {
  std::vector<std::string> names;
  try {
    if (strict) names = pruning::select(model, selectors);
    else
      for (const auto& selector : selectors) try {
          for (auto& n : pruning::select(model, {selector})) names.push_back(n);
        } catch (const ValueError&) {
        }
  } catch (const ValueError& e) {
    throw ValueError(fmt::format("{}: {}: {}", modifier.where, modifier.type, e.what()));
  }
  NamedParameters out;
  for (const auto& [name, p] : model.named_parameters())
    if (std::ranges::find(names, name) != names.end()) out.emplace_back(name, p);
  return out;
}

std::vector<optim::ParamGroup*> chosen_groups(optim::Optimizer& optimizer, const std::vector<int64_t>& indices,
                                              const Modifier& modifier) {
  auto& groups = optimizer.param_groups();
  std::vector<optim::ParamGroup*> out;
  if (indices.empty())
    for (auto& g : groups) out.push_back(&g);
  for (int64_t i : indices) {
    check<ValueError>(i >= 0 && i < static_cast<int64_t>(groups.size()),
                      "{}: {}: param_groups names group {}, the optimizer has {}", modifier.where, modifier.type, i,
                      groups.size());
    out.push_back(&groups[static_cast<size_t>(i)]);
  }
  return out;
}

}  // namespace neurite::recipes::detail
