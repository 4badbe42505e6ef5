// Reads one modifier's YAML mapping for its type's parser: numbers through
// the recipe's variables, booleans, selectors and the window, each checked,
// with errors that name file:line and the field.
#pragma once

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <initializer_list>
#include <set>
#include <string>
#include <vector>

#include "neurite/error.h"
#include "neurite/recipes/modifier.h"
#include "recipes/variables.h"

namespace neurite::recipes::detail {

using FieldSet = std::set<std::string>;
FieldSet join(std::initializer_list<FieldSet> parts);
// The fields of a window, and of an updating modifier's frequency.
inline const FieldSet kWindowFields = {"start_epoch", "end_epoch", "start_step", "end_step"};
inline const FieldSet kUpdateFields = {"update_frequency", "update_frequency_steps"};

int line_of(const YAML::Node& node);

class FieldReader {
 public:
  // Checks the mapping's keys against `fields`, then reads and checks the window.
  // `ignored`: fields SparseML writes when it saves a recipe and then ignores
  // (SetLearningRateModifier's end_epoch), accepted at any value and unread.
  FieldReader(const YAML::Node& node, const FieldSet& fields, const FieldSet& ignored, const Variables& vars,
              const std::string& file, const std::string& type, const std::string& where);

  const std::string& type() const { return type_; }
  const std::string& file() const { return file_; }
  const std::string& where() const { return where_; }
  const Window& window() const { return window_; }  // as written, before stage offsets

  bool has(const std::string& key) const { return node_.IsMap() && node_[key] && ignored_.count(key) == 0; }
  YAML::Node node(const std::string& key) const { return node_[key]; }  // mappings and lists, read by their parser
  std::string at(const std::string& key) const;  // "file:line" of the field, else of the modifier

  double number(const std::string& key) const;
  double number_or(const std::string& key, double fallback) const { return has(key) ? number(key) : fallback; }
  double number(const YAML::Node& scalar, const std::string& field) const;  // an item of a list or mapping
  double non_negative(const std::string& key) const;  // required
  double sparsity(double value, const std::string& key) const;  // checks [0, 1)
  // Required; in (0, 1], or [0, 1] when zero_allowed, as SparseML checks rates.
  double learning_rate(const std::string& key, bool zero_allowed = false) const;
  std::string text(const std::string& key) const;
  std::string text_or(const std::string& key, const std::string& fallback) const {
    return has(key) ? text(key) : fallback;
  }
  bool boolean_or(const std::string& key, bool fallback) const;
  std::vector<std::string> selectors(const std::string& key) const;  // required; a name or a list
  // param_groups: indices of optimizer groups (empty when absent or null: every group).
  std::vector<int64_t> param_groups() const;

  void require(const std::string& key) const;  // "... needs the field 'key'"
  void require_start() const;                  // start_epoch or start_step
  void require_end() const;                    // end_epoch or end_step

  // Runs `parse`, adding the field's file:line to a ValueError it throws.
  template <typename Parse>
  auto located(const std::string& key, Parse&& parse) const {
    try {
      return parse();
    } catch (const ValueError& e) {
      throw ValueError(fmt::format("{}: {}", at(key), e.what()));
    }
  }

 private:
  int64_t integer(const std::string& key, int64_t minimum) const;
  bool legacy_field(const std::string& key) const;
  void read_window();

  YAML::Node node_;  // a handle: read only through const methods, which never insert keys
  FieldSet ignored_;
  const Variables& vars_;
  std::string file_, type_, where_;
  Window window_;
};

}  // namespace neurite::recipes::detail
