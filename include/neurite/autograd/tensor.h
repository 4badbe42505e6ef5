// neurite/autograd/tensor.h — an n-dimensional array of float32 or int64.
//
//   using namespace neurite::autograd;
//   Tensor x = Tensor::randn({2, 3}, /*seed=*/1);
//   Tensor y = x.transpose(0, 1).reshape({3, 2});
//   float v = y.at<float>({0, 1});
//
// A Tensor is always contiguous and row-major; its storage is 64-byte aligned
// and shared between copies of the handle (copying a Tensor never copies data;
// `clone` does). `reshape` shares storage; `permute`, `transpose`, `slice`,
// `concat` and `index_select` return new contiguous tensors.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

namespace neurite::autograd {

// Tensors hold float32 or int64; int8 and uint8 hold quantised values (ONNX
// QuantizeLinear's and the INT8 kernels' operands), with no ops of their own.
enum class Dtype { f32, i64, i8, u8 };

using Shape = std::vector<int64_t>;

std::string to_string(const Shape& shape);  // "[2,3,4]"
// A shape as an argument of check(): formatted as to_string does, but only
// when the check fails (hot paths such as Tensor::empty and at() check every call).
struct ShapeArg {
  const Shape& shape;
};
std::string to_string(Dtype dtype);         // "float32", "int64", "int8", "uint8"
int64_t numel(const Shape& shape);
size_t element_size(Dtype dtype);
// The bytes of a tensor of `shape` that a file claims, checked before
// anything is allocated: FormatError naming `what` for a negative extent, a
// size that overflows, or more than `limit` bytes (what the file holds, or
// memory_bytes()).
int64_t checked_bytes(const Shape& shape, size_t item_bytes, int64_t limit, const std::string& what);
// This machine's physical memory: no file may claim a tensor larger.
int64_t memory_bytes();

// Normalises a possibly negative dimension index; throws ShapeError naming
// `op` when it is outside [-rank, rank).
int64_t normalize_dim(int64_t dim, int64_t rank, const char* op);

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor: defined() is false

  // Factories. Shapes must have no negative extents (ShapeError).
  static Tensor empty(const Shape& shape, Dtype dtype = Dtype::f32);  // uninitialised
  static Tensor zeros(const Shape& shape, Dtype dtype = Dtype::f32);
  static Tensor ones(const Shape& shape, Dtype dtype = Dtype::f32);
  static Tensor full(const Shape& shape, float value);
  static Tensor scalar(float value);  // shape []
  // [start, end) in steps of `step` (non-zero), float32 or int64.
  static Tensor arange(double start, double end, double step = 1, Dtype dtype = Dtype::f32);
  // Seeded random tensors: the same seed gives the same values on every machine.
  static Tensor randn(const Shape& shape, uint64_t seed, float mean = 0, float stddev = 1);
  static Tensor rand(const Shape& shape, uint64_t seed, float low = 0, float high = 1);
  static Tensor randint(const Shape& shape, uint64_t seed, int64_t low, int64_t high);
  // Copies `values` (numel(shape) of them, else ShapeError).
  static Tensor from_data(const Shape& shape, const std::vector<float>& values);
  static Tensor from_data(const Shape& shape, const std::vector<int64_t>& values);

  bool defined() const { return storage_ != nullptr; }
  // True when no other Tensor (view or copy) shares this one's storage.
  bool owns_storage() const { return storage_.use_count() == 1; }
  const Shape& shape() const { return shape_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t size(int64_t dim) const;  // negative counts from the end
  int64_t numel() const { return numel_; }
  Dtype dtype() const { return dtype_; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * element_size(dtype_); }

  // Typed access; throws DtypeError when T does not match dtype().
  template <typename T> T* data();
  // The raw bytes, whatever the dtype (file I/O, bit-exact comparisons).
  std::byte* bytes() { return storage_.get(); }
  const std::byte* bytes() const { return storage_.get(); }
  template <typename T> const T* data() const;
  template <typename T> T& at(std::initializer_list<int64_t> index);
  template <typename T> T at(std::initializer_list<int64_t> index) const;
  float item() const;  // the value of a one-element tensor, as float

  // Views and copies. Throw ShapeError on shapes that do not fit.
  Tensor reshape(Shape shape) const;  // one extent may be -1; shares storage
  Tensor permute(const std::vector<int64_t>& order) const;
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;  // Python rules
  // Rows [start, start + length) of dimension 0 as a view that shares storage
  // (writes go to this tensor); ShapeError outside [0, size(0)].
  Tensor narrow(int64_t start, int64_t length) const;
  Tensor index_select(int64_t dim, const Tensor& index) const;  // index: int64, 1-D
  static Tensor concat(const std::vector<Tensor>& parts, int64_t dim);
  Tensor clone() const;
  Tensor to(Dtype dtype) const;  // converts (a copy even for the same dtype)

  void fill_(float value);
  void copy_from_(const Tensor& other);  // same shape and dtype, else error
  bool shares_storage(const Tensor& other) const { return storage_ == other.storage_; }

  std::string str() const;  // shape, dtype and (elided) values

 private:
  Tensor(const Shape& shape, Dtype dtype, std::shared_ptr<std::byte> storage);
  void check_dtype(Dtype want) const;

  std::shared_ptr<std::byte> storage_;
  Shape shape_;
  int64_t numel_ = 0;
  Dtype dtype_ = Dtype::f32;
};

std::ostream& operator<<(std::ostream& out, const Tensor& t);

template <> float* Tensor::data<float>();
template <> const float* Tensor::data<float>() const;
template <> int64_t* Tensor::data<int64_t>();
template <> const int64_t* Tensor::data<int64_t>() const;

namespace detail {
int64_t flat_index(const Shape& shape, std::initializer_list<int64_t> index);
}

template <typename T>
T& Tensor::at(std::initializer_list<int64_t> index) {
  return data<T>()[detail::flat_index(shape_, index)];
}
template <typename T>
T Tensor::at(std::initializer_list<int64_t> index) const {
  return data<T>()[detail::flat_index(shape_, index)];
}

// Reads and writes NumPy .npy files (float32 or int64, C order, little endian).
// Throws IoError for files that cannot be opened and FormatError, naming the
// file, for anything that is not such an array.
Tensor load_npy(const std::string& path);
void save_npy(const std::string& path, const Tensor& t);

}  // namespace neurite::autograd

template <>
struct fmt::formatter<neurite::autograd::ShapeArg> : fmt::formatter<std::string> {
  auto format(const neurite::autograd::ShapeArg& a, fmt::format_context& ctx) const {
    return fmt::formatter<std::string>::format(neurite::autograd::to_string(a.shape), ctx);
  }
};
