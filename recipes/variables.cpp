#include "recipes/variables.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <regex>

#include "neurite/error.h"
#include "recipes/expression.h"

namespace neurite::recipes::detail {

double Variables::number(const std::string& name, std::vector<std::string>& resolving) const {
  auto it = raw_.find(name);
  check<ValueError>(it != raw_.end(), "{}: unresolved variable '{}'", file_, name);
  check<ValueError>(std::find(resolving.begin(), resolving.end(), name) == resolving.end(),
                    "{}:{}: variable '{}' refers to itself", file_, it->second.second, name);
  resolving.push_back(name);
  const double v = resolve(it->second.first, it->second.second, name, resolving);
  resolving.pop_back();
  return v;
}

namespace {

// A decimal literal as YAML and Python write them ("0.9", "-1", "1e-4", ".5"):
// not hex, inf or nan, which std::stod also reads.
bool is_decimal(const std::string& raw) {
  static const std::regex kDecimal(R"([+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)");
  return std::regex_match(raw, kDecimal);
}

}  // namespace

double Variables::resolve(const std::string& raw, int line, const std::string& field,
                          std::vector<std::string>& resolving) const {
  const double v = resolve_unchecked(raw, line, field, resolving);
  check<ValueError>(std::isfinite(v), "{}:{}: {} is {}, expected a finite number", file_, line, field, v);
  return v;
}

double Variables::resolve_unchecked(const std::string& raw, int line, const std::string& field,
                                    std::vector<std::string>& resolving) const {
  if (is_decimal(raw)) return std::stod(raw);
  if (raw.rfind("eval(", 0) == 0 && raw.back() == ')') {
    const std::string expr = raw.substr(5, raw.size() - 6);
    try {
      return evaluate(expr, [&](const std::string& name) { return number(name, resolving); });
    } catch (const ValueError& e) {
      throw ValueError(fmt::format("{}:{}: {}: {}", file_, line, field, e.what()));
    }
  }
  if (has(raw)) return number(raw, resolving);
  throw ValueError(
      fmt::format("{}:{}: {} is '{}', expected a number, eval(...) or a variable", file_, line, field, raw));
}

std::string Variables::text(const std::string& raw, int line, const std::string& field) const {
  if (raw.rfind("eval(", 0) != 0 || raw.back() != ')') return raw;
  std::string expr = raw.substr(5, raw.size() - 6);
  expr.erase(0, expr.find_first_not_of(" \t"));
  expr.erase(expr.find_last_not_of(" \t") + 1);
  if (expr.size() >= 2 && (expr.front() == '\'' || expr.front() == '"') && expr.back() == expr.front())
    return expr.substr(1, expr.size() - 2);
  if (auto it = raw_.find(expr); it != raw_.end()) {
    check<ValueError>(it->second.first != raw, "{}:{}: {}: variable '{}' refers to itself", file_, line, field, expr);
    return text(it->second.first, it->second.second, field);
  }
  return fmt::format("{}", resolve(raw, line, field));
}

}  // namespace neurite::recipes::detail
