#include "neurite/recipes/recipe.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "neurite/error.h"
#include "recipes/expression.h"

namespace neurite::recipes {

namespace {

const std::set<std::string> kPruningTypes = {"GMPruningModifier", "MagnitudePruningModifier",
                                             "GlobalMagnitudePruningModifier", "StructuredPruningModifier"};
const std::set<std::string> kLaterTypes = {"MovementPruningModifier", "ACDCPruningModifier", "OBSPruningModifier",
                                           "MFACPruningModifier", "QuantizationModifier", "DistillationModifier"};

const std::set<std::string> kWindow = {"start_epoch", "end_epoch", "start_step", "end_step"};
const std::set<std::string> kUpdates = {"update_frequency", "update_frequency_steps"};
const std::set<std::string> kGmp = {"init_sparsity", "final_sparsity", "params", "leave_enabled", "inter_func",
                                    "mask_type", "global_sparsity", "log_types"};

// The fields each modifier takes.
const std::map<std::string, std::set<std::string>>& fields_by_type() {
  static const std::map<std::string, std::set<std::string>> table = [] {
    auto join = [](std::initializer_list<std::set<std::string>> parts) {
      std::set<std::string> out;
      for (const auto& p : parts) out.insert(p.begin(), p.end());
      return out;
    };
    const auto gmp = join({kWindow, kUpdates, kGmp});
    return std::map<std::string, std::set<std::string>>{
        {"EpochRangeModifier", {"start_epoch", "end_epoch"}},
        {"SetLearningRateModifier", {"learning_rate", "start_epoch", "start_step", "log_types"}},
        {"LearningRateFunctionModifier",
         join({kWindow, {"lr_func", "init_lr", "final_lr", "cycle_epochs", "update_frequency", "log_types"}})},
        {"LearningRateModifier",
         join({kWindow, {"lr_class", "lr_kwargs", "init_lr", "update_frequency", "constant_logging", "log_types"}})},
        {"GMPruningModifier", gmp},
        {"MagnitudePruningModifier", gmp},
        {"GlobalMagnitudePruningModifier", gmp},
        {"StructuredPruningModifier", join({gmp, {"param_groups"}})},
        {"ConstantPruningModifier", join({kWindow, {"params", "update_frequency", "log_types"}})},
        {"SetWeightDecayModifier", {"weight_decay", "start_epoch", "start_step", "param_groups", "log_types"}},
        {"TrainableParamsModifier", join({kWindow, {"params", "trainable", "params_strict"}})},
    };
  }();
  return table;
}

std::string read_file(const std::string& path) {
  check<IoError>(std::filesystem::is_regular_file(path), "{}: no such recipe", path);
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Markdown recipes keep their YAML between the first two '---' lines; the
// YAML keeps its line numbers.
std::string yaml_part(const std::string& text) {
  std::istringstream in(text);
  std::string line, out;
  int fences = 0;
  bool markdown = false;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (number == 1 && line.rfind("---", 0) == 0 && line.find_first_not_of("- \t\r") == std::string::npos) {
      markdown = true;
      fences = 1;
      out += "\n";
      continue;
    }
    if (markdown && fences == 1 && line.rfind("---", 0) == 0 &&
        line.find_first_not_of("- \t\r") == std::string::npos) {
      fences = 2;
      out += "\n";
      continue;
    }
    out += (markdown && fences == 2) ? "\n" : line + "\n";
  }
  return markdown ? out : text;
}

// Variables of one scope: raw YAML scalars, resolved on use.
class Variables {
 public:
  Variables(std::string file) : file_(std::move(file)) {}
  void set(const std::string& name, const std::string& raw, int line) { raw_[name] = {raw, line}; }
  bool has(const std::string& name) const { return raw_.count(name) > 0; }
  const std::map<std::string, std::pair<std::string, int>>& all() const { return raw_; }

  double number(const std::string& name, std::vector<std::string>& resolving) const {
    auto it = raw_.find(name);
    check<ValueError>(it != raw_.end(), "{}: unresolved variable '{}'", file_, name);
    check<ValueError>(std::find(resolving.begin(), resolving.end(), name) == resolving.end(),
                      "{}:{}: variable '{}' refers to itself", file_, it->second.second, name);
    resolving.push_back(name);
    const double v = resolve(it->second.first, it->second.second, name, resolving);
    resolving.pop_back();
    return v;
  }

  // A scalar as a number: a literal, eval(EXPR) or a variable's name.
  double resolve(const std::string& raw, int line, const std::string& field, std::vector<std::string>& resolving) const {
    std::string t = raw;
    try {
      size_t used = 0;
      const double v = std::stod(t, &used);
      if (used == t.size()) return v;
    } catch (const std::exception&) {
    }
    if (t.rfind("eval(", 0) == 0 && t.back() == ')') {
      const std::string expr = t.substr(5, t.size() - 6);
      try {
        return detail::evaluate(expr, [&](const std::string& name) { return number(name, resolving); });
      } catch (const ValueError& e) {
        throw ValueError(fmt::format("{}:{}: {}: {}", file_, line, field, e.what()));
      }
    }
    if (has(t)) return number(t, resolving);
    throw ValueError(fmt::format("{}:{}: {} is '{}', expected a number, eval(...) or a variable", file_, line, field, raw));
  }

 private:
  std::string file_;
  std::map<std::string, std::pair<std::string, int>> raw_;
};

int line_of(const YAML::Node& n) { return n.Mark().line + 1; }

// Reads one modifier's fields into `m`, checking names and ranges.
class ModifierReader {
 public:
  ModifierReader(const YAML::Node& node, Modifier& m, const Variables& vars, const std::string& file)
      : node_(node), m_(m), vars_(vars), file_(file) {}

  void read() {
    const auto& allowed = fields_by_type().at(m_.type);
    if (node_.IsMap())
      for (const auto& kv : node_) {
        const std::string key = kv.first.as<std::string>();
        check<ValueError>(allowed.count(key) > 0, "{}:{}: {} has no field '{}' (its fields: {})", file_,
                          line_of(kv.first), m_.type, key, fmt::join(allowed, ", "));
      }
    else
      check<ValueError>(node_.IsNull(), "{}: {} must be a mapping of fields", m_.where, m_.type);
    m_.start_epoch = number_or("start_epoch", -1);
    m_.end_epoch = number_or("end_epoch", -1);
    m_.update_frequency = number_or("update_frequency", -1);
    if (has("start_step")) m_.start_step = integer("start_step", 0);
    if (has("end_step")) m_.end_step = integer("end_step", -1);
    if (has("update_frequency_steps")) m_.update_frequency_steps = integer("update_frequency_steps", 1);
    check_window();
    if (m_.is_pruning() || m_.is_constant_pruning()) read_pruning();
    if (m_.type == "SetLearningRateModifier") m_.learning_rate = non_negative("learning_rate", true);
    if (m_.type == "SetWeightDecayModifier") m_.weight_decay = non_negative("weight_decay", true);
    if (m_.type == "LearningRateFunctionModifier") {
      m_.lr_func = text_or("lr_func", "linear");
      check<ValueError>(m_.lr_func == "linear" || m_.lr_func == "cosine" || m_.lr_func == "cyclic_linear",
                        "{}: lr_func is '{}', expected linear, cosine or cyclic_linear", at("lr_func"), m_.lr_func);
      m_.init_lr = non_negative("init_lr", true);
      m_.final_lr = non_negative("final_lr", true);
      m_.cycle_epochs = number_or("cycle_epochs", 1.0);
      check<ValueError>(m_.end_epoch >= 0 || m_.end_step, "{}: {} needs end_epoch (or end_step)", m_.where, m_.type);
      check<ValueError>(m_.cycle_epochs > 0, "{}: cycle_epochs is {}, expected > 0", at("cycle_epochs"),
                        m_.cycle_epochs);
    }
    if (m_.type == "LearningRateModifier") read_lr_class();
    if (m_.type == "TrainableParamsModifier") {
      m_.params = selectors("params");
      m_.trainable = boolean_or("trainable", true, true);
      m_.params_strict = boolean_or("params_strict", true, false);
    }
  }

 private:
  bool has(const std::string& key) const { return node_.IsMap() && node_[key]; }
  std::string at(const std::string& key) const {
    return fmt::format("{}:{}", file_, has(key) ? line_of(node_[key]) : line_of(node_));
  }
  double number(const std::string& key) const {
    const YAML::Node v = node_[key];
    check<ValueError>(v.IsScalar(), "{}: {} must be a number", at(key), key);
    std::vector<std::string> resolving;
    return vars_.resolve(v.as<std::string>(), line_of(v), key, resolving);
  }
  double number_or(const std::string& key, double fallback) const { return has(key) ? number(key) : fallback; }
  int64_t integer(const std::string& key, int64_t minimum) const {
    const double v = number(key);
    check<ValueError>(v == std::floor(v) && v >= static_cast<double>(minimum), "{}: {} is {}, expected an integer >= {}",
                      at(key), key, v, minimum);
    return static_cast<int64_t>(v);
  }
  double non_negative(const std::string& key, bool required) const {
    check<ValueError>(!required || has(key), "{}: {} needs the field '{}'", m_.where, m_.type, key);
    const double v = number(key);
    check<ValueError>(v >= 0, "{}: {} is {}, expected a value >= 0", at(key), key, v);
    return v;
  }
  std::string text(const std::string& key) const {
    const YAML::Node v = node_[key];
    check<ValueError>(v.IsScalar(), "{}: {} must be a string", at(key), key);
    return v.as<std::string>();
  }
  std::string text_or(const std::string& key, const std::string& fallback) const {
    return has(key) ? text(key) : fallback;
  }
  bool boolean_or(const std::string& key, bool fallback, bool) const {
    if (!has(key)) return fallback;
    const std::string t = text(key);
    if (t == "true" || t == "True") return true;
    if (t == "false" || t == "False") return false;
    throw ValueError(fmt::format("{}: {} is '{}', expected true or false", at(key), key, t));
  }
  std::vector<std::string> selectors(const std::string& key) const {
    check<ValueError>(has(key), "{}: {} needs the field '{}'", m_.where, m_.type, key);
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
  double sparsity(double v, const std::string& key) const {
    check<ValueError>(v >= 0 && v < 1, "{}: {} is {}, expected a value in [0, 1)", at(key), key, v);
    return v;
  }

  void check_window() const {
    if (m_.end_epoch != -1)
      check<ValueError>(m_.end_epoch >= std::max(m_.start_epoch, 0.0), "{}: end_epoch {} is before start_epoch {}",
                        at("end_epoch"), m_.end_epoch, m_.start_epoch);
    if (m_.end_step && *m_.end_step != -1)
      check<ValueError>(*m_.end_step >= m_.start_step.value_or(0), "{}: end_step {} is before start_step {}",
                        at("end_step"), *m_.end_step, m_.start_step.value_or(0));
    check<ValueError>(m_.update_frequency == -1 || m_.update_frequency > 0,
                      "{}: update_frequency is {}, expected > 0 or -1 (every step)", at("update_frequency"),
                      m_.update_frequency);
    check<ValueError>(m_.start_epoch >= -1, "{}: start_epoch is {}, expected >= 0 or -1", at("start_epoch"),
                      m_.start_epoch);
  }

  void read_pruning() {
    if (m_.type == "StructuredPruningModifier" && has("param_groups") && !has("params")) {
      for (const auto& group : node_["param_groups"])
        for (const auto& name : group) m_.params.push_back(name.as<std::string>());
    } else {
      m_.params = selectors("params");
    }
    if (m_.is_constant_pruning()) return;
    check<ValueError>(has("final_sparsity"), "{}: {} needs the field 'final_sparsity'", m_.where, m_.type);
    if (has("init_sparsity") && node_["init_sparsity"].IsScalar() &&
        node_["init_sparsity"].as<std::string>() == "__FROM_PARAM__")
      m_.init_from_param = true;
    else
      m_.init_sparsity = sparsity(number_or("init_sparsity", 0.0), "init_sparsity");
    const YAML::Node fs = node_["final_sparsity"];
    if (fs.IsMap()) {  // {0.9: [names], 0.8: [names]}
      m_.params.clear();
      for (const auto& kv : fs) {
        std::vector<std::string> resolving;
        const double s = sparsity(vars_.resolve(kv.first.as<std::string>(), line_of(kv.first), "final_sparsity",
                                                resolving),
                                  "final_sparsity");
        std::vector<std::string> names;
        if (kv.second.IsScalar()) names.push_back(kv.second.as<std::string>());
        else
          for (const auto& n : kv.second) names.push_back(n.as<std::string>());
        for (const auto& n : names) {
          m_.final_sparsity_by_selector[n] = s;
          m_.params.push_back(n);
        }
        m_.final_sparsity = std::max(m_.final_sparsity, s);
      }
    } else {
      m_.final_sparsity = sparsity(number("final_sparsity"), "final_sparsity");
    }
    m_.leave_enabled = boolean_or("leave_enabled", true, true);
    m_.global_sparsity = m_.type == "GlobalMagnitudePruningModifier" || boolean_or("global_sparsity", false, true);
    if (has("inter_func")) {
      try {
        m_.inter_func = pruning::parse_interpolation(text("inter_func"));
      } catch (const ValueError& e) {
        throw ValueError(fmt::format("{}: {}", at("inter_func"), e.what()));
      }
    }
    std::string mask = m_.type == "StructuredPruningModifier" ? "filter" : "unstructured";
    if (has("mask_type")) {
      const YAML::Node v = node_["mask_type"];
      if (v.IsSequence()) {  // [r, c]
        check<ValueError>(v.size() == 2, "{}: mask_type as a list must be [rows, cols]", at("mask_type"));
        mask = fmt::format("[{},{}]", v[0].as<std::string>(), v[1].as<std::string>());
      } else {
        mask = text("mask_type");
      }
    }
    try {
      m_.mask_type = pruning::MaskType::parse(mask);
    } catch (const ValueError& e) {
      throw ValueError(fmt::format("{}: {}", at("mask_type"), e.what()));
    }
    check<ValueError>(m_.start_epoch >= 0 || m_.start_step, "{}: {} needs start_epoch (or start_step)", m_.where,
                      m_.type);
    check<ValueError>(m_.end_epoch >= 0 || m_.end_step, "{}: {} needs end_epoch (or end_step)", m_.where, m_.type);
  }

  void read_lr_class() {
    m_.lr_class = text_or("lr_class", "StepLR");
    const std::set<std::string> classes = {"StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingWarmRestarts"};
    check<ValueError>(classes.count(m_.lr_class) > 0, "{}: lr_class is '{}', expected one of: {}", at("lr_class"),
                      m_.lr_class, fmt::join(classes, ", "));
    m_.init_lr = non_negative("init_lr", true);
    if (has("lr_kwargs"))
      for (const auto& kv : node_["lr_kwargs"]) {
        const std::string key = kv.first.as<std::string>();
        std::vector<double> values;
        std::vector<std::string> resolving;
        if (kv.second.IsSequence())
          for (const auto& item : kv.second)
            values.push_back(vars_.resolve(item.as<std::string>(), line_of(item), key, resolving));
        else
          values.push_back(vars_.resolve(kv.second.as<std::string>(), line_of(kv.second), key, resolving));
        m_.lr_kwargs[key] = values;
      }
    auto need = [&](const char* key) {
      check<ValueError>(m_.lr_kwargs.count(key) > 0, "{}: {} needs lr_kwargs.{}", m_.where, m_.lr_class, key);
    };
    if (m_.lr_class == "StepLR") need("step_size");
    if (m_.lr_class == "MultiStepLR") need("milestones");
    if (m_.lr_class == "ExponentialLR") need("gamma");
    if (m_.lr_class == "CosineAnnealingWarmRestarts") need("T_0");
  }

  const YAML::Node& node_;
  Modifier& m_;
  const Variables& vars_;
  const std::string& file_;
};

bool is_modifier_list_key(const std::string& key) { return key.find("modifiers") != std::string::npos; }

// Reads the modifier lists of one scope (the file or a stage).
void read_scope(const YAML::Node& scope, const Variables& vars, const std::string& file, double offset,
                std::vector<Modifier>& out) {
  for (const auto& kv : scope) {
    const std::string key = kv.first.as<std::string>();
    if (!is_modifier_list_key(key)) continue;
    check<FormatError>(kv.second.IsSequence(), "{}:{}: '{}' must be a list of modifiers", file, line_of(kv.first), key);
    for (const auto& item : kv.second) {
      Modifier m;
      m.type = item.Tag();
      if (!m.type.empty() && m.type[0] == '!') m.type.erase(0, 1);
      m.where = fmt::format("{}:{}", file, line_of(item));
      check<ValueError>(!m.type.empty() && m.type != "?",
                        "{}: a modifier must be tagged with its class, e.g. - !GMPruningModifier", m.where);
      check<ValueError>(kLaterTypes.count(m.type) == 0,
                        "{}: {} is not supported yet (OBS/MFAC, Movement, ACDC, Quantization and Distillation "
                        "modifiers come in a later release)",
                        m.where, m.type);
      check<ValueError>(fields_by_type().count(m.type) > 0, "{}: unknown modifier '{}'", m.where, m.type);
      ModifierReader(item, m, vars, file).read();
      if (offset > 0) {  // a later stage: its epochs count from the end of the stages before it
        if (m.start_epoch >= 0) m.start_epoch += offset;
        else if (m.start_epoch == -1) m.start_epoch = offset;
        if (m.end_epoch >= 0) m.end_epoch += offset;
      }
      out.push_back(std::move(m));
    }
  }
}

}  // namespace

bool Modifier::is_pruning() const { return kPruningTypes.count(type) > 0; }

bool Modifier::sets_learning_rate() const {
  return type == "SetLearningRateModifier" || type == "LearningRateFunctionModifier" || type == "LearningRateModifier";
}

Recipe Recipe::load(const std::string& path, const std::map<std::string, std::string>& overrides) {
  return parse(read_file(path), path, overrides);
}

Recipe Recipe::parse(const std::string& text, const std::string& file,
                     const std::map<std::string, std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_part(text));
  } catch (const YAML::Exception& e) {
    throw FormatError(fmt::format("{}:{}: malformed YAML: {}", file, e.mark.line + 1, e.msg));
  }
  check<FormatError>(root.IsMap(), "{}: a recipe must be a YAML mapping of variables and modifier lists", file);
  Variables globals(file);
  std::vector<std::pair<std::string, YAML::Node>> stages;
  bool has_list = false;
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    if (kv.second.IsScalar()) globals.set(key, kv.second.as<std::string>(), line_of(kv.second));
    else if (is_modifier_list_key(key)) has_list = true;
    else if (kv.second.IsMap()) {
      bool stage = false;
      for (const auto& inner : kv.second) stage = stage || is_modifier_list_key(inner.first.as<std::string>());
      if (stage) stages.emplace_back(key, kv.second);
    }
  }
  std::set<std::string> used;
  auto apply_overrides = [&](Variables& vars) {
    for (const auto& [name, value] : overrides)
      if (vars.has(name)) {
        vars.set(name, value, 0);
        used.insert(name);
      }
  };
  apply_overrides(globals);
  Recipe r{file, text, {}};
  read_scope(root, globals, file, 0, r.modifiers);
  double offset = r.modifiers.empty() ? 0 : *r.epochs();
  for (const auto& [name, node] : stages) {
    Variables vars = globals;
    for (const auto& kv : node)
      if (kv.second.IsScalar()) vars.set(kv.first.as<std::string>(), kv.second.as<std::string>(), line_of(kv.second));
    apply_overrides(vars);
    std::vector<Modifier> stage_modifiers;
    read_scope(node, vars, file, offset, stage_modifiers);
    double end = offset;
    for (const auto& m : stage_modifiers) end = std::max({end, m.end_epoch, m.start_epoch});
    offset = end;
    r.modifiers.insert(r.modifiers.end(), stage_modifiers.begin(), stage_modifiers.end());
  }
  check<ValueError>(has_list || !stages.empty(), "{}: no modifiers found", file);
  for (const auto& [name, value] : overrides)
    check<ValueError>(used.count(name) > 0, "--recipe-var {}: {} has no variable '{}'", name, file, name);
  return r;
}

std::optional<double> Recipe::epochs() const {
  std::optional<double> latest;
  for (const auto& m : modifiers)
    if (m.type == "EpochRangeModifier") return m.end_epoch;
  for (const auto& m : modifiers) {
    const double end = std::max(m.end_epoch, m.start_epoch);
    if (end >= 0) latest = std::max(latest.value_or(0), end);
  }
  return latest;
}

bool Recipe::sets_learning_rate() const {
  return std::any_of(modifiers.begin(), modifiers.end(), [](const Modifier& m) { return m.sets_learning_rate(); });
}

}  // namespace neurite::recipes
