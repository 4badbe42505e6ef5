// NumPy .npy reading (format versions 1, 2 and 3) and writing (version 1).
#include <cstring>
#include <fstream>
#include <cctype>

#include "neurite/error.h"
#include "neurite/autograd/tensor.h"

namespace neurite::autograd {

Tensor load_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  check<IoError>(in.good(), "{}: cannot open file", path);
  char magic[8] = {};
  in.read(magic, 8);
  check<FormatError>(in.gcount() == 8 && std::memcmp(magic, "\x93NUMPY", 6) == 0, "{}: not a .npy file", path);
  const int major = static_cast<unsigned char>(magic[6]);
  check<FormatError>(major == 1 || major == 2 || major == 3, "{}: unsupported .npy version {}", path, major);
  uint32_t header_len = 0;
  unsigned char len_bytes[4] = {};
  in.read(reinterpret_cast<char*>(len_bytes), major == 1 ? 2 : 4);
  for (int i = (major == 1 ? 1 : 3); i >= 0; --i) header_len = header_len * 256 + len_bytes[i];
  check<FormatError>(in.good() && header_len < (1u << 20), "{}: truncated .npy header", path);
  std::string header(header_len, '\0');
  in.read(header.data(), header_len);
  check<FormatError>(in.gcount() == header_len, "{}: truncated .npy header", path);

  // The header is a Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
  auto value_of = [&](const std::string& key) {
    const size_t at = header.find("'" + key + "'");
    check<FormatError>(at != std::string::npos, "{}: .npy header has no '{}'", path, key);
    const size_t colon = header.find(':', at);
    const size_t start = colon == std::string::npos ? colon : header.find_first_not_of(' ', colon + 1);
    check<FormatError>(start != std::string::npos, "{}: malformed .npy header: '{}' has no value", path, key);
    return header.substr(start);
  };
  const std::string descr_text = value_of("descr");
  const size_t close = descr_text.find('\'', 1);
  check<FormatError>(descr_text[0] == '\'' && close != std::string::npos, "{}: malformed .npy header: 'descr' is not a quoted string",
                     path);
  const std::string descr = descr_text.substr(1, close - 1);
  Dtype dtype;
  if (descr == "<f4") dtype = Dtype::f32;
  else if (descr == "<i8") dtype = Dtype::i64;
  else throw FormatError(fmt::format("{}: dtype '{}' is not supported, expected float32 ('<f4') or int64 ('<i8')", path, descr));
  check<FormatError>(value_of("fortran_order").rfind("False", 0) == 0, "{}: only C-ordered arrays are supported", path);
  const std::string dims = value_of("shape");
  check<FormatError>(!dims.empty() && dims[0] == '(' && dims.find(')') != std::string::npos, "{}: malformed shape in .npy header", path);
  Shape shape;
  for (size_t i = 1; dims[i] != ')'; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(dims[i]))) continue;
    int64_t extent = 0;
    for (; std::isdigit(static_cast<unsigned char>(dims[i])); ++i) {
      check<FormatError>(extent < (int64_t{1} << 56), "{}: a size in the .npy shape is too large", path);
      extent = extent * 10 + (dims[i] - '0');
    }
    shape.push_back(extent);
    --i;
  }
  // The claimed size against the bytes the file holds, before allocating it.
  const auto data_start = static_cast<int64_t>(in.tellg());
  in.seekg(0, std::ios::end);
  const int64_t available = static_cast<int64_t>(in.tellg()) - data_start;
  in.seekg(data_start);
  checked_bytes(shape, element_size(dtype), available, path + ": .npy data");

  Tensor t = Tensor::empty(shape, dtype);
  in.read(reinterpret_cast<char*>(dtype == Dtype::f32 ? static_cast<void*>(t.data<float>()) : t.data<int64_t>()),
          static_cast<std::streamsize>(t.nbytes()));
  check<FormatError>(static_cast<size_t>(in.gcount()) == t.nbytes(), "{}: truncated data: expected {} bytes for {} {}",
                     path, t.nbytes(), to_string(dtype), to_string(shape));
  return t;
}

void save_npy(const std::string& path, const Tensor& t) {
  std::string shape;
  for (int64_t e : t.shape()) shape += std::to_string(e) + ",";
  if (t.dim() > 1) shape.pop_back();
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}",
                                   t.dtype() == Dtype::f32 ? "<f4" : "<i8", shape);
  header.append(63 - (10 + header.size()) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  check<IoError>(out.good(), "{}: cannot open file for writing", path);
  out.write("\x93NUMPY\x01\x00", 8);
  const auto len = static_cast<uint16_t>(header.size());
  const char len_bytes[2] = {static_cast<char>(len & 0xFF), static_cast<char>(len >> 8)};
  out.write(len_bytes, 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  const void* data = t.dtype() == Dtype::f32 ? static_cast<const void*>(t.data<float>()) : t.data<int64_t>();
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(t.nbytes()));
  check<IoError>(out.good(), "{}: write failed", path);
}

}  // namespace neurite::autograd
