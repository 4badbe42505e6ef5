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
  detail::Values values;
  std::vector<std::unique_ptr<detail::Step>> steps;
  std::vector<detail::Group> groups;  // columns mode; steps outside every group run alone
  std::unique_ptr<tbb::task_arena> arena;
  bool profiling = false;
  std::vector<ProfileEntry> profile;
  // Runs take turns: the value table and the steps' scratch belong to the
  // plan, so calls from several threads are correct, one at a time.
  std::mutex run_mutex;
};

}  // namespace neurite::engine

namespace neurite::engine::detail {
// Runs a column group tile by tile (engine/engine.cpp).
void run_group(Engine::Plan& plan, const Group& group);
}  // namespace neurite::engine::detail
