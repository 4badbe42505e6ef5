// Optimizers chosen by name ("sgd", "adam", "adamw"), each with the learning
// rate and weight decay it starts from, so a program configured by text (the
// command line, a config file) builds the same optimizer as `neurite train`.
//
//   const optim::Hyperparameters hp = optim::default_hyperparameters("adamw");  // lr 1e-3, wd 0.05
//   auto opt = optim::make_optimizer("adamw", {{.params = model->parameters(), .lr = hp.lr,
//                                               .weight_decay = hp.weight_decay}});
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "neurite/optim/optimizer.h"

namespace neurite::optim {

struct Hyperparameters {
  double lr = 0, weight_decay = 0;
};

// True for "sgd", "adam" and "adamw".
bool is_optimizer_name(const std::string& name);
// sgd: lr 0.05, weight decay 5e-4; adam: 1e-3, 0; adamw: 1e-3, 0.05.
// Throws ValueError for another name.
Hyperparameters default_hyperparameters(const std::string& name);
// The optimizer `name` over `groups`; `momentum` applies to sgd only.
// Throws ValueError for another name.
std::unique_ptr<Optimizer> make_optimizer(const std::string& name, std::vector<ParamGroup> groups,
                                          double momentum = 0.9);

}  // namespace neurite::optim
