#include "neurite/recipes/recipe.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "neurite/error.h"
#include "recipes/modifiers/field_reader.h"
#include "recipes/modifiers/registry.h"
#include "recipes/variables.h"

namespace neurite::recipes {

using detail::FieldReader;
using detail::line_of;
using detail::ModifierType;
using detail::Variables;

namespace {

std::string read_file(const std::string& path) {
  check<IoError>(std::filesystem::is_regular_file(path), "{}: no such recipe", path);
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A fence of a Markdown recipe card: a line of '---' or '+++' (spaces around allowed).
bool is_fence(const std::string& line) {
  const size_t first = line.find_first_not_of(" \t\r");
  if (first == std::string::npos || (line.compare(first, 3, "---") != 0 && line.compare(first, 3, "+++") != 0)) return false;
  return line.find_first_not_of(line[first] == '-' ? "- \t\r" : "+ \t\r", first) == std::string::npos;
}

// A Markdown recipe card (a .md file, or text that opens with a fence) keeps
// its YAML in the first block between two fences, wherever it starts, as
// SparseML reads cards (a title, a comment or a license may come first; the
// Markdown after is documentation). The YAML keeps its line numbers: every
// other line becomes blank. Other files are YAML as they are.
std::string yaml_part(const std::string& text, const std::string& file) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  size_t first_text = 0;
  while (first_text < lines.size() && lines[first_text].find_first_not_of(" \t\r") == std::string::npos) ++first_text;
  const bool markdown = file.ends_with(".md") || (first_text < lines.size() && is_fence(lines[first_text]));
  if (!markdown) return text;
  size_t open = 0;
  while (open < lines.size() && !is_fence(lines[open])) ++open;
  check<FormatError>(open < lines.size(), "{}: a Markdown recipe card needs its YAML between two '---' lines", file);
  std::string out;
  bool inside = false, done = false;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i == open) {
      inside = true;
    } else if (inside && !done && is_fence(lines[i])) {
      done = true;
    } else if (inside && !done) {
      out += lines[i];
    }
    out += "\n";
  }
  return out;
}

bool is_modifier_list_key(const std::string& key) { return key.find("modifiers") != std::string::npos; }

// A later stage's epochs count from the end of the stages before it.
constexpr double kMaxEpochs = 100000;

Window placed(Window w, double offset) {
  if (offset > 0) {
    if (w.start_epoch >= 0) w.start_epoch += offset;
    else if (w.start_epoch == -1) w.start_epoch = offset;
    if (w.end_epoch >= 0) w.end_epoch += offset;
  }
  return w;
}

// A scope's variable from its YAML value: a scalar as written, a list of
// scalars as its flow text ("[1, 4]", which eval(NAME) hands to fields such as
// mask_type); false for anything else.
bool set_variable(Variables& vars, const std::string& name, const YAML::Node& value) {
  if (value.IsScalar()) {
    vars.set(name, value.as<std::string>(), line_of(value));
    return true;
  }
  if (!value.IsSequence() || is_modifier_list_key(name)) return false;
  std::vector<std::string> items;
  for (const auto& item : value) {
    if (!item.IsScalar()) return false;
    items.push_back(item.as<std::string>());
  }
  vars.set(name, fmt::format("[{}]", fmt::join(items, ", ")), line_of(value));
  return true;
}

// SparseML's overrides reach modifier fields too: `name` replaces the field
// of that name in every modifier of `scope`. Whether any was replaced.
bool override_fields(YAML::Node scope, const std::string& name, const std::string& value) {
  bool replaced = false;
  for (auto kv : scope) {
    if (!is_modifier_list_key(kv.first.as<std::string>()) || !kv.second.IsSequence()) continue;
    for (auto item : kv.second)
      if (item.IsMap() && item[name]) {
        item[name] = value;
        replaced = true;
      }
  }
  return replaced;
}

// Reads the modifier lists of one scope (the file or a stage).
void read_scope(const YAML::Node& scope, const Variables& vars, const std::string& file, double offset,
                std::vector<std::shared_ptr<const Modifier>>& out) {
  for (const auto& kv : scope) {
    const std::string key = kv.first.as<std::string>();
    if (!is_modifier_list_key(key)) continue;
    check<FormatError>(kv.second.IsSequence(), "{}:{}: '{}' must be a list of modifiers", file, line_of(kv.first), key);
    for (const auto& item : kv.second) {
      std::string tag = item.Tag();
      if (!tag.empty() && tag[0] == '!') tag.erase(0, 1);
      const std::string where = fmt::format("{}:{}", file, line_of(item));
      check<ValueError>(!tag.empty() && tag != "?",
                        "{}: a modifier must be tagged with its class, e.g. - !GMPruningModifier", where);
      const ModifierType& type = detail::modifier_type(tag, where);
      const FieldReader fields(item, type.fields, type.ignored, vars, file, tag, where);
      std::unique_ptr<Modifier> m = type.parse(fields);
      m->type = tag;
      m->where = where;
      // A later stage starts at an epoch; its steps are not known until the run's steps per epoch are.
      check<ValueError>(offset == 0 || (!fields.window().start_step && !fields.window().end_step),
                        "{}: start_step and end_step are not supported in a stage after the first (its epochs count "
                        "from the stages before it): use start_epoch and end_epoch",
                        where);
      m->window = placed(fields.window(), offset);
      // A run of this length is planned and stepped through: a damaged or
      // mistyped number (1e12) would hang both.
      check<ValueError>(m->window.start_epoch <= kMaxEpochs && m->window.end_epoch <= kMaxEpochs,
                        "{}: {} epochs [{}, {}): a recipe may reach epoch {} at most", where, tag, m->window.start_epoch,
                        m->window.end_epoch, kMaxEpochs);
      out.push_back(std::move(m));
    }
  }
}

}  // namespace

Recipe Recipe::load(const std::string& path, const std::map<std::string, std::string>& overrides) {
  return parse(read_file(path), path, overrides);
}

namespace {

Recipe parse_root(const YAML::Node& root, const std::string& text, const std::string& file,
                  const std::map<std::string, std::string>& overrides) {
  check<FormatError>(root.IsMap(), "{}: a recipe must be a YAML mapping of variables and modifier lists", file);
  Variables globals(file);
  std::vector<std::pair<std::string, YAML::Node>> stages;
  bool has_list = false;
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    if (set_variable(globals, key, kv.second)) continue;
    if (is_modifier_list_key(key)) has_list = true;
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
  // An override also sets every modifier field of its name (SparseML's rule), variable or not.
  for (const auto& [name, value] : overrides) {
    bool replaced = override_fields(root, name, value);
    for (auto& [stage, node] : stages) replaced = override_fields(node, name, value) || replaced;
    if (replaced) used.insert(name);
  }
  Recipe r{file, text, {}};
  read_scope(root, globals, file, 0, r.modifiers);
  // Stages start where the top-level modifiers end (0 when none of them has an end).
  double offset = r.epochs().value_or(0);
  for (const auto& [name, node] : stages) {
    Variables vars = globals;
    for (const auto& kv : node) set_variable(vars, kv.first.as<std::string>(), kv.second);
    apply_overrides(vars);
    std::vector<std::shared_ptr<const Modifier>> stage_modifiers;
    read_scope(node, vars, file, offset, stage_modifiers);
    double end = offset;
    for (const auto& m : stage_modifiers) end = std::max({end, m->window.end_epoch, m->window.start_epoch});
    offset = end;
    r.modifiers.insert(r.modifiers.end(), stage_modifiers.begin(), stage_modifiers.end());
  }
  check<ValueError>(has_list || !stages.empty(), "{}: no modifiers found", file);
  for (const auto& [name, value] : overrides)
    check<ValueError>(used.count(name) > 0, "--recipe-var {}: {} has no variable or modifier field '{}'", name, file,
                      name);
  return r;
}

}  // namespace

Recipe Recipe::parse(const std::string& text, const std::string& file,
                     const std::map<std::string, std::string>& overrides) {
  try {
    return parse_root(YAML::Load(yaml_part(text, file)), text, file, overrides);
  } catch (const YAML::ParserException& e) {
    throw FormatError(fmt::format("{}:{}: malformed YAML: {}", file, e.mark.line + 1, e.msg));
  } catch (const YAML::Exception& e) {  // a key or value of another YAML kind than the recipe needs there
    throw FormatError(fmt::format("{}:{}: {}", file, e.mark.line + 1, e.msg));
  }
}

// As SparseML's max_epochs: the latest whole epoch any modifier reaches (its
// end rounded up, or its start rounded down), EpochRangeModifier's included.
std::optional<double> Recipe::epochs() const {
  std::optional<double> latest;
  for (const auto& m : modifiers) {
    if (m->window.start_epoch >= 0) latest = std::max(latest.value_or(0), std::floor(m->window.start_epoch));
    if (m->window.end_epoch >= 0) latest = std::max(latest.value_or(0), std::ceil(m->window.end_epoch));
  }
  // Modifiers that all start at 0 and never end (quantisation-aware training alone) set no length.
  if (latest == 0.0) return std::nullopt;
  return latest;
}

bool Recipe::sets_learning_rate() const {
  return std::any_of(modifiers.begin(), modifiers.end(), [](const auto& m) { return m->sets_learning_rate(); });
}

}  // namespace neurite::recipes
