// neurite/error.h — the error types every Neurite library throws, and
// the one `check` helper that throws them.
//
//   check<ShapeError>(a.dim() == 2, "matmul: a must be 2-D, got {}", to_string(a.shape()));
//
// Messages say where, what was given and what was expected. Only the CLI turns
// an Error into a line on stderr and an exit code; the library never exits.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace neurite {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class ShapeError : public Error { public: using Error::Error; };   // tensor shapes do not fit
class ValueError : public Error { public: using Error::Error; };   // an argument is out of range
class DtypeError : public Error { public: using Error::Error; };   // wrong element type
class IoError : public Error { public: using Error::Error; };      // a file cannot be read or written
class FormatError : public Error { public: using Error::Error; };  // a file's contents are malformed
class StateError : public Error { public: using Error::Error; };   // a call at the wrong time

// Throws E with the formatted message when `ok` is false.
template <typename E = ValueError, typename... Args>
inline void check(bool ok, fmt::format_string<Args...> format, Args&&... args) {
  if (!ok) throw E(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace neurite
