#include "recipes/expression.h"

#include <fmt/format.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "neurite/error.h"

namespace neurite::recipes::detail {

namespace {

// Python's float // and % (CPython's float_divmod): fmod is exact, then the
// remainder takes the divisor's sign. v - d * floor(v / d) rounds v / d first
// and gave 1 % 0.1 == -5.6e-17 (Python: 0.09999999999999995) and 1 // 0.1 == 10 (Python: 9).
struct DivMod {
  double div, mod;
};
DivMod python_divmod(double v, double d) {
  double mod = std::fmod(v, d), div = (v - mod) / d;
  if (mod != 0) {
    if ((d < 0) != (mod < 0)) {
      mod += d;
      div -= 1;
    }
  } else {
    mod = std::copysign(0.0, d);
  }
  if (div != 0) {
    const double floored = std::floor(div);
    div = div - floored > 0.5 ? floored + 1 : floored;
  } else {
    div = std::copysign(0.0, v / d);
  }
  return {div, mod};
}

// Recursive descent, Python's precedence: or-less arithmetic only.
//   sum     := product (('+' | '-') product)*
//   product := unary (('*' | '/' | '//' | '%') unary)*
//   unary   := '-' unary | '+' unary | power
//   power   := atom ('**' unary)?
//   atom    := number | name | name '(' args ')' | '(' sum ')'
class Parser {
 public:
  Parser(const std::string& text, const std::function<double(const std::string&)>& variable)
      : text_(text), variable_(variable) {}

  double parse() {
    const double v = sum();
    skip();
    if (pos_ != text_.size()) fail(fmt::format("unexpected '{}'", text_.substr(pos_)));
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw ValueError(fmt::format("eval({}): {}", text_, what));
  }
  void skip() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool take(const std::string& token) {
    skip();
    if (text_.compare(pos_, token.size(), token) != 0) return false;
    pos_ += token.size();
    return true;
  }
  double sum() {
    double v = product();
    for (;;) {
      if (take("+")) v += product();
      else if (take("-")) v -= product();
      else return v;
    }
  }
  double product() {
    double v = unary();
    for (;;) {
      skip();
      if (text_.compare(pos_, 2, "**") == 0) return v;  // handled by power
      if (take("//")) v = python_divmod(v, nonzero(unary())).div;
      else if (take("*")) v *= unary();
      else if (take("/")) v /= nonzero(unary());
      else if (take("%")) v = python_divmod(v, nonzero(unary())).mod;
      else return v;
    }
  }
  double nonzero(double d) const {
    if (d == 0) fail("division by zero");
    return d;
  }
  double unary() {
    if (take("-")) return -unary();
    if (take("+")) return unary();
    return power();
  }
  double power() {
    const double base = atom();
    if (take("**")) return std::pow(base, unary());
    return base;
  }
  double atom() {
    skip();
    if (take("(")) {
      const double v = sum();
      if (!take(")")) fail("missing ')'");
      return v;
    }
    if (pos_ < text_.size() && (std::isdigit(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '.')) {
      const char* start = text_.c_str() + pos_;
      char* end = nullptr;
      errno = 0;
      const double v = std::strtod(start, &end);
      if (end == start) fail("malformed number");
      if (errno == ERANGE && std::isinf(v)) fail("number out of range");
      pos_ += static_cast<size_t>(end - start);
      return v;
    }
    if (pos_ < text_.size() && (std::isalpha(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_')) {
      const size_t start = pos_;
      while (pos_ < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_')) ++pos_;
      const std::string name = text_.substr(start, pos_ - start);
      if (take("(")) return call(name);
      return variable_(name);
    }
    fail(pos_ < text_.size() ? fmt::format("unexpected '{}'", text_.substr(pos_)) : "unexpected end");
  }
  double call(const std::string& name) {
    std::vector<double> args;
    if (!take(")")) {
      do args.push_back(sum());
      while (take(","));
      if (!take(")")) fail(fmt::format("missing ')' after the arguments of {}", name));
    }
    auto need = [&](size_t n) {
      if (args.size() != n) fail(fmt::format("{}() takes {} argument(s), got {}", name, n, args.size()));
    };
    if (name == "abs") return need(1), std::abs(args[0]);
    if (name == "float") return need(1), args[0];
    if (name == "int") return need(1), std::trunc(args[0]);
    if (name == "round") return need(1), std::nearbyint(args[0]);  // half to even, as Python
    if (name == "min" || name == "max") {
      if (args.empty()) fail(fmt::format("{}() needs arguments", name));
      double v = args[0];
      for (double a : args) v = name == "min" ? std::min(v, a) : std::max(v, a);
      return v;
    }
    fail(fmt::format("unknown function '{}' (allowed: abs, float, int, min, max, round)", name));
  }

  const std::string& text_;
  const std::function<double(const std::string&)>& variable_;
  size_t pos_ = 0;
};

}  // namespace

double evaluate(const std::string& text, const std::function<double(const std::string&)>& variable) {
  return Parser(text, variable).parse();
}

}  // namespace neurite::recipes::detail
