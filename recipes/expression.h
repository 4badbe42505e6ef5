// eval(EXPR) of recipes: arithmetic over numeric variables with + - * / //
// ** %, unary minus, parentheses and abs, float, int, min, max, round.
#pragma once

#include <functional>
#include <string>

namespace neurite::recipes::detail {

// Evaluates `text`; `variable(name)` returns a variable's value or throws.
// Throws ValueError naming the expression and what is wrong with it.
double evaluate(const std::string& text, const std::function<double(const std::string&)>& variable);

}  // namespace neurite::recipes::detail
