// Elementwise kernels: parallel maps over contiguous float arrays and one
// broadcasting binary kernel. Pure functions over raw pointers; the caller
// checks shapes.
#pragma once

#include <tbb/parallel_for.h>

#include <cstdint>
#include <vector>

#include "neurite/autograd/tensor.h"

namespace neurite::autograd::detail {

// Elements per task: below this, threading costs more than it saves.
constexpr int64_t kElementGrain = 32768;

// Calls body(begin, end) over [0, n) in parallel chunks.
template <typename Body>
void parallel_range(int64_t n, int64_t grain, Body&& body) {
  if (n <= grain) {
    if (n > 0) body(int64_t{0}, n);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, grain),
                    [&](const tbb::blocked_range<int64_t>& r) { body(r.begin(), r.end()); });
}

// y[i] = f(x[i])
template <typename F>
void map(const float* x, float* y, int64_t n, F f) {
  parallel_range(n, kElementGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = f(x[i]);
  });
}

// y[i] = f(a[i], b[i])
template <typename F>
void map2(const float* a, const float* b, float* y, int64_t n, F f) {
  parallel_range(n, kElementGrain, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) y[i] = f(a[i], b[i]);
  });
}

// y[i] = f(a[i], b[i], c[i])
template <typename F>
void map3(const float* a, const float* b, const float* c, float* y, int64_t n, F f) {
  parallel_range(n, kElementGrain, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) y[i] = f(a[i], b[i], c[i]);
  });
}

// y += alpha * x
inline void axpy(float alpha, const float* x, float* y, int64_t n) {
  parallel_range(n, kElementGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] += alpha * x[i];
  });
}

// The loop nest of a broadcast: adjacent dimensions that broadcast alike are
// merged, so [N,C,H,W] + [1,C,1,1] runs as [N, C, H*W] with strides for each operand.
struct BroadcastLoop {
  Shape shape;
  std::vector<int64_t> stride_a, stride_b;
};

inline BroadcastLoop make_broadcast_loop(const Shape& a, const Shape& b, const Shape& out) {
  const auto rank = out.size();
  auto strides_for = [&](const Shape& s) {
    std::vector<int64_t> st(rank, 0);
    int64_t stride = 1;
    for (size_t i = 0; i < s.size(); ++i) {
      const size_t d = s.size() - 1 - i;  // dimension of s, aligned to the right of out
      st[rank - 1 - i] = s[d] == 1 ? 0 : stride;
      stride *= s[d];
    }
    return st;
  };
  const auto sa = strides_for(a), sb = strides_for(b);
  BroadcastLoop loop;
  for (size_t d = 0; d < rank; ++d) {
    if (out[d] == 1) continue;  // a size-1 dimension changes nothing
    if (!loop.shape.empty()) {
      int64_t& n = loop.shape.back();
      const bool merge_a = loop.stride_a.back() == sa[d] * out[d];
      const bool merge_b = loop.stride_b.back() == sb[d] * out[d];
      if (merge_a && merge_b) {
        n *= out[d];
        loop.stride_a.back() = sa[d];
        loop.stride_b.back() = sb[d];
        continue;
      }
    }
    loop.shape.push_back(out[d]);
    loop.stride_a.push_back(sa[d]);
    loop.stride_b.push_back(sb[d]);
  }
  if (loop.shape.empty()) {
    loop.shape = {1};
    loop.stride_a = {0};
    loop.stride_b = {0};
  }
  return loop;
}

// y (shape out) = f(a broadcast, b broadcast)
template <typename F>
void broadcast_binary(const float* a, const Shape& shape_a, const float* b, const Shape& shape_b, float* y,
                      const Shape& out, F f) {
  const BroadcastLoop loop = make_broadcast_loop(shape_a, shape_b, out);
  const auto rank = static_cast<int64_t>(loop.shape.size());
  const int64_t inner = loop.shape.back();
  const int64_t ia = loop.stride_a.back(), ib = loop.stride_b.back();
  const int64_t rows = numel(loop.shape) / inner;
  parallel_range(rows, std::max<int64_t>(1, kElementGrain / inner), [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      int64_t oa = 0, ob = 0, rest = row;
      for (int64_t k = rank - 2; k >= 0; --k) {
        const int64_t i = rest % loop.shape[k];
        rest /= loop.shape[k];
        oa += i * loop.stride_a[k];
        ob += i * loop.stride_b[k];
      }
      const float* pa = a + oa;
      const float* pb = b + ob;
      float* py = y + row * inner;
      if (ia == 1 && ib == 1) {
        for (int64_t i = 0; i < inner; ++i) py[i] = f(pa[i], pb[i]);
      } else if (ia == 1) {
        const float vb = pb[0];
        for (int64_t i = 0; i < inner; ++i) py[i] = f(pa[i], vb);
      } else if (ib == 1) {
        const float va = pa[0];
        for (int64_t i = 0; i < inner; ++i) py[i] = f(va, pb[i]);
      } else {
        const float v = f(pa[0], pb[0]);
        for (int64_t i = 0; i < inner; ++i) py[i] = v;
      }
    }
  });
}

}  // namespace neurite::autograd::detail
