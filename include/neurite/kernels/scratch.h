// neurite/kernels/scratch.h — per-thread scratch buffers that start on a
// cache line.
//
//   thread_local kernels::ScratchFloats t_planes;
//   float* planes = kernels::scratch(t_planes, size);  // grown as needed, kept
//
// The sparse kernels' 64-byte loads of feature-major rows (multiples of 16
// floats apart) then never straddle two lines: straddling made the CSR
// product 1.2-1.5x slower.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace neurite::kernels {

template <typename T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <typename U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64})); }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t{64}); }
  bool operator==(const CacheLineAllocator&) const { return true; }
};
template <typename T>
using Scratch = std::vector<T, CacheLineAllocator<T>>;
using ScratchFloats = Scratch<float>;

// At least `size` elements of `buffer`, which grows as needed and keeps its size.
template <typename T>
T* scratch(Scratch<T>& buffer, int64_t size) {
  if (static_cast<int64_t>(buffer.size()) < size) buffer.resize(static_cast<size_t>(size));
  return buffer.data();
}

}  // namespace neurite::kernels
