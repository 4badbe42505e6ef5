#include "recipes/variables.h"

#include <fmt/format.h>

#include <algorithm>

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

double Variables::resolve(const std::string& raw, int line, const std::string& field,
                          std::vector<std::string>& resolving) const {
  try {
    size_t used = 0;
    const double v = std::stod(raw, &used);
    if (used == raw.size()) return v;
  } catch (const std::exception&) {
  }
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
