#include "neurite/autograd/tensor.h"

#include <unistd.h>

#include <fmt/format.h>

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <ostream>
#include <sstream>

#include "neurite/autograd/random.h"
#include "autograd/strided.h"
#include "neurite/error.h"

namespace neurite::autograd {

std::string to_string(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ",")); }

std::string to_string(Dtype dtype) {
  switch (dtype) {
    case Dtype::f32: return "float32";
    case Dtype::i64: return "int64";
    case Dtype::i8: return "int8";
    case Dtype::u8: return "uint8";
  }
  return "?";
}

int64_t numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t e : shape) n *= e;
  return n;
}

int64_t checked_bytes(const Shape& shape, size_t item_bytes, int64_t limit, const std::string& what) {
  int64_t bytes = static_cast<int64_t>(item_bytes);
  bool overflow = false;
  for (int64_t e : shape) {
    check<FormatError>(e >= 0, "{}: shape {} has a negative size", what, to_string(shape));
    overflow = overflow || __builtin_mul_overflow(bytes, e, &bytes);
  }
  check<FormatError>(!overflow, "{}: shape {} is too large to hold", what, to_string(shape));
  check<FormatError>(bytes <= limit, "{}: shape {} needs {} bytes, more than the {} there are", what, to_string(shape),
                     bytes, limit);
  return bytes;
}

int64_t memory_bytes() {
  static const int64_t bytes = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE);
  return bytes;
}

size_t element_size(Dtype dtype) {
  switch (dtype) {
    case Dtype::f32: return 4;
    case Dtype::i64: return 8;
    case Dtype::i8:
    case Dtype::u8: return 1;
  }
  return 0;
}

int64_t normalize_dim(int64_t dim, int64_t rank, const char* op) {
  check<ShapeError>(dim >= -rank && dim < std::max<int64_t>(rank, 1),
                    "{}: dimension {} is out of range for a tensor of rank {}", op, dim, rank);
  return dim < 0 ? dim + rank : dim;
}

namespace detail {
int64_t flat_index(const Shape& shape, std::initializer_list<int64_t> index) {
  check<ShapeError>(index.size() == shape.size(), "at: {} indices for a tensor of shape {}",
                    index.size(), ShapeArg{shape});
  int64_t flat = 0;
  size_t d = 0;
  for (int64_t i : index) {
    check<ShapeError>(i >= 0 && i < shape[d], "at: index {} is out of range for dimension {} of shape {}",
                      i, d, ShapeArg{shape});
    flat = flat * shape[d++] + i;
  }
  return flat;
}
}  // namespace detail

namespace {

// 64-byte aligned storage from malloc, aligned by hand: glibc's aligned
// allocation (operator new with an alignment) left its freed blocks unused
// by the next one of the same size, so every step grew the heap and
// page-faulted all of its activations afresh (8 MiB: 13 ms instead of 0.3).
std::shared_ptr<std::byte> allocate(size_t bytes) {
  constexpr size_t kAlign = 64;
  void* block = std::malloc(std::max<size_t>(bytes, 1) + kAlign);
  if (block == nullptr) throw std::bad_alloc();
  const auto at = (reinterpret_cast<uintptr_t>(block) + kAlign - 1) / kAlign * kAlign;
  return std::shared_ptr<std::byte>(reinterpret_cast<std::byte*>(at), [block](std::byte*) { std::free(block); });
}

void check_shape(const Shape& shape, const char* op) {
  for (int64_t e : shape)
    check<ShapeError>(e >= 0, "{}: shape {} has a negative extent", op, ShapeArg{shape});
}

// Calls f with a pointer type matching the tensor's dtype.
template <typename F>
void with_element_type(Dtype dtype, F&& f) {
  switch (dtype) {
    case Dtype::f32: return f(float{});
    case Dtype::i64: return f(int64_t{});
    case Dtype::i8: return f(int8_t{});
    case Dtype::u8: return f(uint8_t{});
  }
}

}  // namespace

Tensor::Tensor(const Shape& shape, Dtype dtype, std::shared_ptr<std::byte> storage)
    : storage_(std::move(storage)), shape_(shape), numel_(autograd::numel(shape)), dtype_(dtype) {}

Tensor Tensor::empty(const Shape& shape, Dtype dtype) {
  check_shape(shape, "empty");
  const int64_t bytes = checked_bytes(shape, element_size(dtype), std::numeric_limits<int64_t>::max(), "Tensor::empty");
  return Tensor(shape, dtype, allocate(static_cast<size_t>(bytes)));
}

Tensor Tensor::zeros(const Shape& shape, Dtype dtype) {
  Tensor t = empty(shape, dtype);
  std::memset(t.storage_.get(), 0, t.nbytes());
  return t;
}

Tensor Tensor::ones(const Shape& shape, Dtype dtype) {
  Tensor t = empty(shape, dtype);
  t.fill_(1.0f);
  return t;
}

Tensor Tensor::full(const Shape& shape, float value) {
  Tensor t = empty(shape);
  t.fill_(value);
  return t;
}

Tensor Tensor::scalar(float value) { return full({}, value); }

Tensor Tensor::arange(double start, double end, double step, Dtype dtype) {
  check(step != 0, "arange: step must not be zero");
  const auto n = static_cast<int64_t>(std::max(0.0, std::ceil((end - start) / step)));
  Tensor t = empty({n}, dtype);
  with_element_type(dtype, [&](auto zero) {
    using T = decltype(zero);
    T* p = t.data<T>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(start + static_cast<double>(i) * step);
  });
  return t;
}

Tensor Tensor::randn(const Shape& shape, uint64_t seed, float mean, float stddev) {
  Tensor t = empty(shape);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = mean + stddev * detail::normal01(seed, i);
  return t;
}

Tensor Tensor::rand(const Shape& shape, uint64_t seed, float low, float high) {
  Tensor t = empty(shape);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = low + (high - low) * detail::uniform01(seed, i);
  return t;
}

Tensor Tensor::randint(const Shape& shape, uint64_t seed, int64_t low, int64_t high) {
  check(high > low, "randint: high ({}) must be greater than low ({})", high, low);
  Tensor t = empty(shape, Dtype::i64);
  int64_t* p = t.data<int64_t>();
  const auto range = static_cast<uint64_t>(high - low);
  for (int64_t i = 0; i < t.numel(); ++i)
    p[i] = low + static_cast<int64_t>(detail::random_bits(seed, i) % range);
  return t;
}

Tensor Tensor::from_data(const Shape& shape, const std::vector<float>& values) {
  check<ShapeError>(static_cast<int64_t>(values.size()) == autograd::numel(shape),
                    "from_data: {} values for shape {}", values.size(), ShapeArg{shape});
  Tensor t = empty(shape);
  std::copy(values.begin(), values.end(), t.data<float>());
  return t;
}

Tensor Tensor::from_data(const Shape& shape, const std::vector<int64_t>& values) {
  check<ShapeError>(static_cast<int64_t>(values.size()) == autograd::numel(shape),
                    "from_data: {} values for shape {}", values.size(), ShapeArg{shape});
  Tensor t = empty(shape, Dtype::i64);
  std::copy(values.begin(), values.end(), t.data<int64_t>());
  return t;
}

int64_t Tensor::size(int64_t d) const { return shape_[normalize_dim(d, dim(), "size")]; }

void Tensor::check_dtype(Dtype want) const {
  check<StateError>(defined(), "tensor is undefined");
  if (dtype_ != want)  // formats only on failure: data<T>() runs in inner loops
    throw DtypeError(fmt::format("expected a {} tensor, got {} of shape {}", to_string(want), to_string(dtype_),
                                 to_string(shape_)));
}

template <> float* Tensor::data<float>() { check_dtype(Dtype::f32); return reinterpret_cast<float*>(storage_.get()); }
template <> const float* Tensor::data<float>() const { check_dtype(Dtype::f32); return reinterpret_cast<const float*>(storage_.get()); }
template <> int64_t* Tensor::data<int64_t>() { check_dtype(Dtype::i64); return reinterpret_cast<int64_t*>(storage_.get()); }
template <> const int64_t* Tensor::data<int64_t>() const { check_dtype(Dtype::i64); return reinterpret_cast<const int64_t*>(storage_.get()); }
template <> int8_t* Tensor::data<int8_t>() { check_dtype(Dtype::i8); return reinterpret_cast<int8_t*>(storage_.get()); }
template <> const int8_t* Tensor::data<int8_t>() const { check_dtype(Dtype::i8); return reinterpret_cast<const int8_t*>(storage_.get()); }
template <> uint8_t* Tensor::data<uint8_t>() { check_dtype(Dtype::u8); return reinterpret_cast<uint8_t*>(storage_.get()); }
template <> const uint8_t* Tensor::data<uint8_t>() const { check_dtype(Dtype::u8); return reinterpret_cast<const uint8_t*>(storage_.get()); }

float Tensor::item() const {
  check<ShapeError>(numel_ == 1, "item: tensor of shape {} has {} elements, expected 1", ShapeArg{shape_}, numel_);
  float v = 0;
  with_element_type(dtype_, [&](auto zero) { v = static_cast<float>(data<decltype(zero)>()[0]); });
  return v;
}

Tensor Tensor::reshape(Shape shape) const {
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      check<ShapeError>(infer < 0, "reshape: more than one -1 in {}", ShapeArg{shape});
      infer = static_cast<int64_t>(i);
    } else {
      check<ShapeError>(shape[i] >= 0, "reshape: negative extent in {}", ShapeArg{shape});
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    check<ShapeError>(known > 0 && numel_ % known == 0, "reshape: cannot reshape {} into {}",
                      ShapeArg{shape_}, ShapeArg{shape});
    shape[infer] = numel_ / known;
  }
  check<ShapeError>(autograd::numel(shape) == numel_, "reshape: cannot reshape {} ({} elements) into {}",
                    ShapeArg{shape_}, numel_, ShapeArg{shape});
  return Tensor(shape, dtype_, storage_);
}

Tensor Tensor::permute(const std::vector<int64_t>& order) const {
  check<ShapeError>(static_cast<int64_t>(order.size()) == dim(), "permute: order of {} dimensions for shape {}",
                    order.size(), ShapeArg{shape_});
  std::vector<bool> seen(order.size(), false);
  const auto strides = detail::contiguous_strides(shape_);
  Shape out_shape(order.size());
  std::vector<int64_t> src_strides(order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    const int64_t d = normalize_dim(order[i], dim(), "permute");
    check<ShapeError>(!seen[d], "permute: dimension {} appears twice", d);
    seen[d] = true;
    out_shape[i] = shape_[d];
    src_strides[i] = strides[d];
  }
  Tensor out = empty(out_shape, dtype_);
  with_element_type(dtype_, [&](auto zero) {
    using T = decltype(zero);
    detail::copy_strided(data<T>(), out_shape, src_strides, out.data<T>());
  });
  return out;
}

Tensor Tensor::transpose(int64_t dim0, int64_t dim1) const {
  std::vector<int64_t> order(shape_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  std::swap(order[normalize_dim(dim0, dim(), "transpose")], order[normalize_dim(dim1, dim(), "transpose")]);
  return permute(order);
}

Tensor Tensor::narrow(int64_t start, int64_t length) const {
  check<ShapeError>(dim() >= 1 && start >= 0 && length >= 0 && start + length <= shape_[0],
                    "narrow: rows [{}, {}) of a tensor {}", start, start + length, to_string(shape_));
  Shape s = shape_;
  s[0] = length;
  const size_t row_bytes = shape_[0] == 0 ? 0 : nbytes() / static_cast<size_t>(shape_[0]);
  return Tensor(s, dtype_, std::shared_ptr<std::byte>(storage_, storage_.get() + static_cast<size_t>(start) * row_bytes));
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  d = normalize_dim(d, dim(), "slice");
  check(step > 0, "slice: step must be positive, got {}", step);
  const int64_t n = shape_[d];
  auto clampi = [n](int64_t i) { return std::clamp<int64_t>(i < 0 ? i + n : i, 0, n); };
  start = clampi(start);
  end = clampi(end);
  Shape out_shape = shape_;
  out_shape[d] = end > start ? (end - start + step - 1) / step : 0;
  auto strides = detail::contiguous_strides(shape_);
  const int64_t offset = start * strides[d];
  strides[d] *= step;
  Tensor out = empty(out_shape, dtype_);
  with_element_type(dtype_, [&](auto zero) {
    using T = decltype(zero);
    detail::copy_strided(data<T>() + offset, out_shape, strides, out.data<T>());
  });
  return out;
}

Tensor Tensor::index_select(int64_t d, const Tensor& index) const {
  d = normalize_dim(d, dim(), "index_select");
  check<ShapeError>(index.dim() == 1, "index_select: index must be 1-D, got {}", ShapeArg{index.shape()});
  const int64_t* idx = index.data<int64_t>();
  const int64_t n = shape_[d];
  for (int64_t i = 0; i < index.numel(); ++i)
    check<ShapeError>(idx[i] >= 0 && idx[i] < n, "index_select: index {} is out of range for dimension {} of size {}",
                      idx[i], d, n);
  Shape out_shape = shape_;
  out_shape[d] = index.numel();
  Tensor out = empty(out_shape, dtype_);
  const int64_t outer = autograd::numel(Shape(shape_.begin(), shape_.begin() + d));
  const int64_t inner_bytes =
      autograd::numel(Shape(shape_.begin() + d + 1, shape_.end())) * static_cast<int64_t>(element_size(dtype_));
  const std::byte* src = storage_.get();
  std::byte* dst = out.storage_.get();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < index.numel(); ++i)
      std::memcpy(dst + (o * index.numel() + i) * inner_bytes, src + (o * n + idx[i]) * inner_bytes, inner_bytes);
  return out;
}

Tensor Tensor::concat(const std::vector<Tensor>& parts, int64_t d) {
  check<ShapeError>(!parts.empty(), "concat: no tensors given");
  const Tensor& first = parts.front();
  d = normalize_dim(d, first.dim(), "concat");
  Shape out_shape = first.shape_;
  out_shape[d] = 0;
  for (const Tensor& p : parts) {
    check<DtypeError>(p.dtype_ == first.dtype_, "concat: mixed dtypes {} and {}", to_string(first.dtype_),
                      to_string(p.dtype_));
    bool fits = p.dim() == first.dim();
    for (int64_t i = 0; fits && i < first.dim(); ++i) fits = i == d || p.shape_[i] == first.shape_[i];
    check<ShapeError>(fits, "concat: shape {} does not fit shape {} along dimension {}", ShapeArg{p.shape_},
                      ShapeArg{first.shape_}, d);
    out_shape[d] += p.shape_[d];
  }
  Tensor out = empty(out_shape, first.dtype_);
  const int64_t outer = autograd::numel(Shape(out_shape.begin(), out_shape.begin() + d));
  const auto esize = static_cast<int64_t>(element_size(first.dtype_));
  const int64_t out_row = autograd::numel(Shape(out_shape.begin() + d, out_shape.end())) * esize;
  int64_t column = 0;
  for (const Tensor& p : parts) {
    const int64_t row = autograd::numel(Shape(p.shape_.begin() + d, p.shape_.end())) * esize;
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(out.storage_.get() + o * out_row + column, p.storage_.get() + o * row, row);
    column += row;
  }
  return out;
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape_, dtype_);
  std::memcpy(out.storage_.get(), storage_.get(), nbytes());
  return out;
}

Tensor Tensor::to(Dtype dtype) const {
  if (dtype == dtype_) return clone();
  Tensor out = empty(shape_, dtype);
  with_element_type(dtype_, [&](auto from) {
    with_element_type(dtype, [&](auto to) {
      using To = decltype(to);
      std::transform(data<decltype(from)>(), data<decltype(from)>() + numel_, out.data<To>(),
                     [](auto v) { return static_cast<To>(v); });
    });
  });
  return out;
}

void Tensor::fill_(float value) {
  with_element_type(dtype_, [&](auto zero) {
    using T = decltype(zero);
    std::fill_n(data<T>(), numel_, static_cast<T>(value));
  });
}

void Tensor::copy_from_(const Tensor& other) {
  check<ShapeError>(other.shape_ == shape_ && other.dtype_ == dtype_, "copy_from_: got {} {}, expected {} {}",
                    to_string(other.dtype_), ShapeArg{other.shape_}, to_string(dtype_), ShapeArg{shape_});
  std::memcpy(storage_.get(), other.storage_.get(), nbytes());
}

std::string Tensor::str() const {
  if (!defined()) return "Tensor(undefined)";
  std::ostringstream out;
  out << "Tensor(" << to_string(dtype_) << " " << to_string(shape_) << ") [";
  constexpr int64_t kShown = 8;
  for (int64_t i = 0; i < std::min(numel_, kShown); ++i) {
    if (i) out << ", ";
    with_element_type(dtype_, [&](auto zero) { out << +data<decltype(zero)>()[i]; });
  }
  if (numel_ > kShown) out << ", ... (" << numel_ << " values)";
  out << "]";
  return out.str();
}

std::ostream& operator<<(std::ostream& out, const Tensor& t) { return out << t.str(); }

}  // namespace neurite::autograd
