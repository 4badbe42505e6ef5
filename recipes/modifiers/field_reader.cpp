#include "recipes/modifiers/field_reader.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>

namespace neurite::recipes::detail {

FieldSet join(std::initializer_list<FieldSet> parts) {
  FieldSet out;
  for (const auto& p : parts) out.insert(p.begin(), p.end());
  return out;
}

int line_of(const YAML::Node& node) { return node.Mark().line + 1; }

FieldReader::FieldReader(const YAML::Node& node, const FieldSet& fields, const FieldSet& ignored,
                         const Variables& vars, const std::string& file, const std::string& type,
                         const std::string& where)
    : node_(node), ignored_(ignored), vars_(vars), file_(file), type_(type), where_(where) {
  if (node_.IsMap())
    for (const auto& kv : node_) {
      const std::string key = kv.first.as<std::string>();
      if (ignored_.count(key) != 0 || (fields.count(key) == 0 && legacy_field(key))) continue;
      check<ValueError>(fields.count(key) > 0, "{}:{}: {} has no field '{}' (its fields: {})", file_,
                        line_of(kv.first), type_, key, fmt::join(fields, ", "));
    }
  else
    check<ValueError>(node_.IsNull(), "{}: {} must be a mapping of fields", where_, type_);
  read_window();
}

// Fields that SparseML 0.x recipes carry and later versions dropped, with the
// value that meant what the modifier does now: accepted at that value, so
// old published recipes run, and refused by name at any other.
bool FieldReader::legacy_field(const std::string& key) const {
  struct OldField {
    std::string default_value;
    std::set<std::string> types;  // the modifiers that had it
  };
  static const std::set<std::string> kPruning = {"GMPruningModifier", "MagnitudePruningModifier",
                                                 "GlobalMagnitudePruningModifier", "StructuredPruningModifier"};
  static const std::map<std::string, OldField> kOldDefaults = {
      {"phased", {"false", kPruning}},        // phased pruning (on/off cycles)
      {"score_type", {"magnitude", kPruning}},  // movement or other scores
      {"constant_logging",  // logging every step
       {"false", {"SetLearningRateModifier", "LearningRateModifier", "SetWeightDecayModifier"}}},
  };
  auto it = kOldDefaults.find(key);
  if (it == kOldDefaults.end() || it->second.types.count(type_) == 0) return false;
  std::string value = text(key);
  std::transform(value.begin(), value.end(), value.begin(), [](unsigned char c) { return std::tolower(c); });
  check<ValueError>(value == it->second.default_value,
                    "{}: {} has {}: '{}', a field of SparseML 0.x that Neurite accepts only at its old default '{}'",
                    at(key), type_, key, text(key), it->second.default_value);
  return true;
}

void FieldReader::read_window() {
  Window& w = window_;
  w.start_epoch = number_or("start_epoch", -1);
  w.end_epoch = number_or("end_epoch", -1);
  w.update_frequency = number_or("update_frequency", -1);
  if (has("start_step")) w.start_step = integer("start_step", 0);
  if (has("end_step")) w.end_step = integer("end_step", -1);
  if (has("update_frequency_steps")) w.update_frequency_steps = integer("update_frequency_steps", 1);
  if (w.end_epoch != -1)
    check<ValueError>(w.end_epoch >= std::max(w.start_epoch, 0.0), "{}: end_epoch {} is before start_epoch {}",
                      at("end_epoch"), w.end_epoch, w.start_epoch);
  if (w.end_step && *w.end_step != -1)
    check<ValueError>(*w.end_step >= w.start_step.value_or(0), "{}: end_step {} is before start_step {}",
                      at("end_step"), *w.end_step, w.start_step.value_or(0));
  check<ValueError>(w.update_frequency == -1 || w.update_frequency > 0,
                    "{}: update_frequency is {}, expected > 0 or -1 (every step)", at("update_frequency"),
                    w.update_frequency);
  check<ValueError>(w.start_epoch >= -1, "{}: start_epoch is {}, expected >= 0 or -1", at("start_epoch"),
                    w.start_epoch);
}

std::string FieldReader::at(const std::string& key) const {
  return fmt::format("{}:{}", file_, has(key) ? line_of(node_[key]) : line_of(node_));
}

double FieldReader::number(const std::string& key) const {
  const YAML::Node v = node_[key];
  check<ValueError>(v.IsScalar(), "{}: {} must be a number", at(key), key);
  return number(v, key);
}

double FieldReader::number(const YAML::Node& scalar, const std::string& field) const {
  return vars_.resolve(scalar.as<std::string>(), line_of(scalar), field);
}

int64_t FieldReader::integer(const std::string& key, int64_t minimum) const {
  const double v = number(key);
  check<ValueError>(v == std::floor(v) && v >= static_cast<double>(minimum), "{}: {} is {}, expected an integer >= {}",
                    at(key), key, v, minimum);
  return static_cast<int64_t>(v);
}

double FieldReader::non_negative(const std::string& key) const {
  require(key);
  const double v = number(key);
  check<ValueError>(v >= 0, "{}: {} is {}, expected a value >= 0", at(key), key, v);
  return v;
}

std::vector<int64_t> FieldReader::param_groups() const {
  std::vector<int64_t> out;
  if (!has("param_groups") || node_["param_groups"].IsNull()) return out;
  const YAML::Node list = node_["param_groups"];
  check<ValueError>(list.IsSequence(), "{}: param_groups must be a list of optimizer group indices",
                    at("param_groups"));
  for (const auto& item : list) {
    const double v = number(item, "param_groups");
    check<ValueError>(v >= 0 && v == std::floor(v), "{}: param_groups has {}, expected group indices",
                      at("param_groups"), v);
    out.push_back(static_cast<int64_t>(v));
  }
  return out;
}

double FieldReader::learning_rate(const std::string& key, bool zero_allowed) const {
  require(key);
  const double v = number(key);
  check<ValueError>((zero_allowed ? v >= 0 : v > 0) && v <= 1, "{}: {} is {}, expected a learning rate in {}0, 1]",
                    at(key), key, v, zero_allowed ? "[" : "(");
  return v;
}

double FieldReader::sparsity(double value, const std::string& key) const {
  check<ValueError>(value >= 0 && value < 1, "{}: {} is {}, expected a value in [0, 1)", at(key), key, value);
  return value;
}

std::string FieldReader::text(const std::string& key) const {
  const YAML::Node v = node_[key];
  check<ValueError>(v.IsScalar(), "{}: {} must be a string", at(key), key);
  return vars_.text(v.as<std::string>(), line_of(v), key);
}

bool FieldReader::boolean_or(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  const std::string t = text(key);
  if (t == "true" || t == "True") return true;
  if (t == "false" || t == "False") return false;
  throw ValueError(fmt::format("{}: {} is '{}', expected true or false", at(key), key, t));
}

std::vector<std::string> FieldReader::selectors(const std::string& key) const {
  require(key);
  const YAML::Node v = node_[key];
  std::vector<std::string> out;
  if (v.IsScalar()) out.push_back(v.as<std::string>());
  else if (v.IsSequence())
    for (const auto& item : v) {
      check<ValueError>(item.IsScalar(), "{}: {} must list parameter names", at(key), key);
      out.push_back(item.as<std::string>());
    }
  check<ValueError>(!out.empty(), "{}: {} is empty", at(key), key);
  return out;
}

void FieldReader::require(const std::string& key) const {
  check<ValueError>(has(key), "{}: {} needs the field '{}'", where_, type_, key);
}

void FieldReader::require_start() const {
  check<ValueError>(window_.start_epoch >= 0 || window_.start_step, "{}: {} needs start_epoch (or start_step)",
                    where_, type_);
}

void FieldReader::require_end() const {
  check<ValueError>(window_.end_epoch >= 0 || window_.end_step, "{}: {} needs end_epoch (or end_step)", where_,
                    type_);
}

}  // namespace neurite::recipes::detail
