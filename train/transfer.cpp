#include "neurite/train/transfer.h"

#include "neurite/error.h"

namespace neurite::train {

InitReport init_from_checkpoint(layers::Module& model, const Checkpoint& base, const std::string& where) {
  const layers::StateDict own = model.state_dict();
  layers::StateDict matched;
  InitReport report{.model_tensors = static_cast<int64_t>(own.size())};
  for (const auto& [name, t] : base.state) {
    auto it = own.find(name);
    if (it == own.end()) continue;
    if (it->second.shape() != t.shape()) {
      report.reinitialised.push_back({name, t.shape(), it->second.shape()});
      continue;
    }
    matched.emplace(name, t);
    report.loaded.push_back(name);
  }
  check<ValueError>(!matched.empty(), "{}: no parameter name matches the model ({} in the checkpoint)", where,
                    base.model);
  model.load_state_dict(matched, /*strict=*/false);
  for (const auto& [name, p] : model.named_parameters())
    if (auto m = base.masks.find(name); m != base.masks.end() && matched.count(name)) p->set_mask(m->second.clone());
  return report;
}

InitReport init_from_checkpoint(layers::Module& model, const std::string& path) {
  return init_from_checkpoint(model, load_checkpoint(path), path);
}

}  // namespace neurite::train
