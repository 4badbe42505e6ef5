// Error-message checks: f must throw E, and its message must contain every part.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace neurite::testing {

template <typename E, typename F>
void expect_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one mentioning " << parts.front();
  } catch (const E& e) {
    for (const auto& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << " lacks " << p;
  }
}

}  // namespace neurite::testing
