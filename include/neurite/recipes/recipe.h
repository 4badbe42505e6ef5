// Recipes in SparseML's YAML format: variables, eval() expressions, stages and
// modifiers, read into typed modifiers (modifier.h) whose errors name the
// file, the line and the field.
//
//   recipes::Recipe r = recipes::Recipe::load("gmp90.yaml", {{"num_epochs", "6"}});
//   for (const auto& m : r.modifiers)
//     fmt::print("{} [{}, {})\n", m->type, m->window.start_epoch, m->window.end_epoch);
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "neurite/recipes/modifier.h"

namespace neurite::recipes {

struct Recipe {
  std::string file, text;
  std::vector<std::shared_ptr<const Modifier>> modifiers;  // in the file's order, stage by stage

  // Throws IoError for a missing file, FormatError for malformed YAML and
  // ValueError for an unknown modifier or field, an out-of-range value, an
  // unresolved variable or a bad eval(); each names file:line and the field.
  // `overrides` replace top-level (and stage) variables: the CLI's --recipe-var.
  static Recipe load(const std::string& path, const std::map<std::string, std::string>& overrides = {});
  static Recipe parse(const std::string& text, const std::string& file,
                      const std::map<std::string, std::string>& overrides = {});

  // The run's length in whole epochs, as SparseML's max_epochs: the latest
  // end (rounded up) or start (rounded down) of any modifier, EpochRange's
  // included; nullopt when none has one, or when that is 0.
  std::optional<double> epochs() const;
  bool sets_learning_rate() const;
};

}  // namespace neurite::recipes
