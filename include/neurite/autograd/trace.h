// neurite/autograd/trace.h — records the ops a forward pass runs, so that the
// pass can become a graph (engine::trace turns the records into Graph nodes).
//
//   autograd::TraceRecorder recorder;
//   {
//     autograd::TraceGuard guard(recorder);        // this thread records from here
//     model.forward(x);
//   }
//   for (const autograd::OpRecord& r : recorder.records) ...  // "conv2d" {x, weight, bias} stride_h=1 ...
//
// An op built from others (attention, transpose, flatten) appears as those
// others. An op that made a Variable without naming itself (a loss, a sparse
// kernel, training-mode dropout) appears with op "", so that a consumer
// refuses the pass instead of taking its result for a constant. Values are
// the recorded tensors themselves (storage and shape); the recorder keeps them
// alive, so no two values share memory by reuse.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "neurite/autograd/tensor.h"
#include "neurite/autograd/variable.h"

namespace neurite::autograd {

using TraceArg = std::variant<int64_t, double, std::vector<int64_t>>;

struct OpRecord {
  std::string op;              // the op's name in ops.h: "conv2d", "add", "reshape", ...; "" when untraced
  std::vector<Tensor> inputs;  // in the op's argument order; undefined for an optional input left out
  Tensor output;
  std::map<std::string, TraceArg> args;  // the op's other arguments (dims as the op was given them)
};

struct TraceRecorder {
  std::vector<OpRecord> records;
};

// Records the ops this thread runs into `recorder` while it lives.
class TraceGuard {
 public:
  explicit TraceGuard(TraceRecorder& recorder);
  ~TraceGuard();
  TraceGuard(const TraceGuard&) = delete;
  TraceGuard& operator=(const TraceGuard&) = delete;

 private:
  TraceRecorder* previous_;
};

namespace detail {

// Every op result is made by Variable(data, inputs, backward), which calls
// this: while a recorder listens, each result gets a record with op "".
void record_op_result(const std::vector<Variable>& inputs, const Tensor& output);

}  // namespace detail

// Names the record of the op that just made `y`, with the op's other arguments
// and any inputs it takes as plain tensors (embedding's indices), and returns y:
//   return traced(Variable(y, {x}, backward), "softmax", {{"dim", dim}});
// Free when no recorder listens but for building `args`.
Variable traced(Variable y, const char* op, std::map<std::string, TraceArg> args = {},
                std::vector<Tensor> tensor_inputs = {});

}  // namespace neurite::autograd
