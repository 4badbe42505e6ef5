// A recipe's variables of one scope (the file or a stage): raw YAML scalars,
// resolved to numbers on use so that variables may refer to variables and
// --recipe-var overrides reach every use.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace neurite::recipes::detail {

class Variables {
 public:
  explicit Variables(std::string file) : file_(std::move(file)) {}
  void set(const std::string& name, const std::string& raw, int line) { raw_[name] = {raw, line}; }
  bool has(const std::string& name) const { return raw_.count(name) > 0; }

  // A scalar as a number: a literal, eval(EXPR) or a variable's name. Throws
  // ValueError naming file:line and `field`. `resolving` holds the variables
  // being resolved, to catch one that refers to itself.
  double resolve(const std::string& raw, int line, const std::string& field,
                 std::vector<std::string>& resolving) const;
  double resolve(const std::string& raw, int line, const std::string& field) const {
    std::vector<std::string> resolving;
    return resolve(raw, line, field, resolving);
  }

  // A scalar as text: eval(NAME) gives variable NAME's value (itself
  // resolved, so a variable may hold eval(...) of another), eval('text') the
  // text, eval(EXPR) of numbers the number written out; anything else is
  // the text as written. SparseML's tutorial recipes write
  // `inter_func: eval(inter_func)` with `inter_func: cubic` at the top.
  std::string text(const std::string& raw, int line, const std::string& field) const;

 private:
  double number(const std::string& name, std::vector<std::string>& resolving) const;
  double resolve_unchecked(const std::string& raw, int line, const std::string& field,
                           std::vector<std::string>& resolving) const;

  std::string file_;
  std::map<std::string, std::pair<std::string, int>> raw_;  // name: (raw scalar, line)
};

}  // namespace neurite::recipes::detail
