#include "neurite/optim/by_name.h"

#include <map>

#include "neurite/error.h"

namespace neurite::optim {

namespace {
const std::map<std::string, Hyperparameters>& defaults() {
  static const std::map<std::string, Hyperparameters> table = {
      {"sgd", {.lr = 0.05, .weight_decay = 5e-4}},
      {"adam", {.lr = 1e-3, .weight_decay = 0.0}},
      {"adamw", {.lr = 1e-3, .weight_decay = 0.05}},
  };
  return table;
}

void check_name(const std::string& name) {
  check<ValueError>(is_optimizer_name(name), "optimizer '{}' is unknown, expected sgd, adam or adamw", name);
}
}  // namespace

bool is_optimizer_name(const std::string& name) { return defaults().count(name) > 0; }

Hyperparameters default_hyperparameters(const std::string& name) {
  check_name(name);
  return defaults().at(name);
}

std::unique_ptr<Optimizer> make_optimizer(const std::string& name, std::vector<ParamGroup> groups, double momentum) {
  check_name(name);
  if (name == "sgd") return std::make_unique<Sgd>(std::move(groups), SgdOptions{.momentum = momentum});
  if (name == "adam") return std::make_unique<Adam>(std::move(groups));
  return std::make_unique<AdamW>(std::move(groups));
}

}  // namespace neurite::optim
