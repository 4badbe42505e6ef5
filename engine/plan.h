// The compiled plan: steps over numbered value buffers, and the column
// groups that run several steps over one tile. engine/compile.cpp builds it,
// engine/engine.cpp runs it.
#pragma once

#include <mutex>

#include <tbb/task_arena.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/kernels.h"
#include "neurite/engine/engine.h"

namespace neurite::engine::detail {

using Values = std::vector<Tensor>;

class Step {
 public:
  virtual ~Step() = default;
  // Over whole tensors; `threads` > 1 lets the step split its work.
  virtual void run(Values& v, int threads) = 0;
  // Rows [b0, b1) of the batch of every batch-major input and output.
  virtual void run_slice(Values& v, int64_t b0, int64_t b1, int threads) = 0;
  // Output rows [r0, r1) of images [b0, b1): steps with `bands` only.
  virtual void run_band(Values&, int64_t, int64_t, int64_t, int64_t) {}

  StepInfo info;
  std::vector<int> inputs, outputs;  // value ids
  bool sliceable = false;            // run_slice is valid
  bool bands = false;                // run_band is valid: a convolution over NCHW rows
  const PackedConv* conv = nullptr;  // for bands: the geometry
  int band_input = -1;               // for bands: the value whose rows it reads
  int residual = -1;                 // a value read at the output's rows, or -1
};

// Consecutive steps run tile by tile: batch slices of `slice` items, or per
// image bands of `rows` output rows of the last step streamed through all.
struct Group {
  size_t first, last;  // steps [first, last)
  bool bands = false;
  int64_t slice = 1, rows = 0;
};

}  // namespace neurite::engine::detail

namespace neurite::engine {

struct Engine::Plan {
  CompileOptions options;
  int threads = 1;
  int64_t batch = 1;
  std::vector<ValueInfo> inputs;
  std::vector<std::pair<std::string, int>> outputs;  // graph outputs: name, value id
  std::vector<int> input_ids;
  std::vector<int64_t> input_bounds;  // int64 inputs: random ids for benchmarks stay below this
  // Compile's set of buffers, one per value id; after compile, the first
  // spare set. `constant` marks the ids every set shares (weights, shapes),
  // `layout` the shape and type of the others.
  detail::Values values;
  std::vector<bool> constant;
  std::vector<std::pair<Shape, autograd::Dtype>> layout;
  std::vector<std::unique_ptr<detail::Step>> steps;
  std::vector<detail::Group> groups;  // columns mode; steps outside every group run alone
  std::unique_ptr<tbb::task_arena> arena;
  bool profiling = false;
  std::vector<ProfileEntry> profile;  // groups, then steps
  std::mutex profile_mutex;
  // Sets of buffers not in use. A call takes one, or makes one when all are
  // taken, and gives it back: calls from several threads run at once, each on
  // its own buffers (the steps' scratch is per thread).
  std::vector<detail::Values> spare;
  std::mutex spare_mutex;
};

}  // namespace neurite::engine

namespace neurite::engine::detail {
// Runs a column group tile by tile over the buffers `v` (engine/engine.cpp).
void run_group(const Engine::Plan& plan, const Group& group, Values& v);
}  // namespace neurite::engine::detail
