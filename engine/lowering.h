// Lowering a graph into the plan's steps. Each op kind has an entry in one
// table (engine/lowering.cpp): the function that lowers a node of that kind
// into a fused kernel step (or declines, leaving the node to the reference
// executor), and the rule that says whether such a node runs the same on any
// slice of the batch. The lowering functions share a Lowering: the graph,
// its use-def index, the plan and the value ids, and the fusion bookkeeping.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/graph_index.h"
#include "engine/plan.h"
#include "engine/qdq.h"
#include "engine/views.h"

namespace neurite::engine::detail {

struct Lowering {
  Graph& g;
  const GraphIndex& index;
  const CompileOptions& options;
  Engine::Plan& plan;
  std::map<std::string, int> ids;
  std::set<std::string> constants;   // initializer names
  std::vector<bool> done;            // nodes lowered, or fused into an earlier step
  std::set<std::string> ready;       // values computed by the steps so far, inputs and constants
  std::map<std::string, BatchedViews> batched_views;  // by the product's output: layout ops folded in
  // Attention, by its second product's output, whose node lowers it (all
  // it reads is computed by then): the two products and what lies between
  // (engine/lowering.cpp, build_steps).
  struct Attention {
    std::string scores_node, scores_value;  // the first product
    BatchedViews scores;   // Q times Kᵀ
    float scale = 1;       // a constant the scores were multiplied by
    std::string mask;      // a tensor added to the scaled scores, broadcast; "" for none
    BatchedViews values;   // Softmax's output times V
  };
  std::map<std::string, Attention> attention;
  // Constant weights in 8-bit form, by the name of the floats they fold to (engine/qdq.h).
  std::map<std::string, QuantizedWeight> quantized_weights;

  Lowering(Graph& graph, const GraphIndex& index, const CompileOptions& options, Engine::Plan& plan);
  // The buffer id of a value, allocating its buffer (or taking its constant) on first use.
  int id(const std::string& name);
  // The only consumer of `value`, when it has one, of kind `op`, not yet lowered, and `value` is no graph output.
  const Node* sole_consumer(const std::string& value, OpKind op) const;
  void consume(const Node* n) { done[static_cast<size_t>(n - g.nodes.data())] = true; }
  // Fuses an Add of a ready tensor of the same shape (the residual) and a
  // Relu or a Clip as ReLU6 after a kernel's output `out`; returns the final output's name.
  std::string fuse_tail(std::string out, Fused& fused, int& residual);
  // Clip(x, 0, 6) as ReLU6, Clip(x, 0) as ReLU; other bounds: none.
  std::optional<Activation> clip_activation(const Node& clip) const;
  // Plans every batched product of two activations as strided views, and
  // attention (a product, [scale, mask,] Softmax, a product) as one: marks the
  // layout ops and nodes they take in done (batched_views, attention).
  void plan_products(const std::vector<size_t>& order);
  // Runs every node in topological order through its lowering.
  void build_steps();
};

// Lowerings of the op kinds with kernels of their own; each returns null
// when the node's shapes or attributes are outside what its kernel runs.
std::unique_ptr<Step> lower_conv(Lowering& l, const Node& n);      // engine/lower_layers.cpp
std::unique_ptr<Step> lower_linear(Lowering& l, const Node& n);    // Gemm, MatMul with a constant weight
std::unique_ptr<Step> lower_rows(Lowering& l, const Node& n);      // engine/lower_rows.cpp
std::unique_ptr<Step> lower_batched_matmul(Lowering& l, const Node& n);
// A MatMul of two activations as views of the buffers its layout ops read
// (engine/views.h); nullopt when it is no batched product the step runs.
std::optional<BatchedViews> plan_batched_matmul(const Lowering& l, const Node& n);
std::unique_ptr<Step> lower_pool(Lowering& l, const Node& n);
std::unique_ptr<Step> lower_gather(Lowering& l, const Node& n);  // rows of a constant table
std::unique_ptr<Step> lower_concat(Lowering& l, const Node& n);
std::unique_ptr<Step> lower_copy(Lowering& l, const Node& n);
std::unique_ptr<Step> lower_elementwise(Lowering& l, const Node& n);  // engine/lower_elementwise.cpp
// A QuantizeLinear whose sole consumer is a DequantizeLinear on the same
// grids: one float pass of both, or, when a Gemm or MatMul with an int8
// weight takes the result, that product on the INT8 kernels
// (engine/lower_elementwise.cpp).
std::unique_ptr<Step> lower_fake_quantize(Lowering& l, const Node& n);
// Gemm or MatMul `n` of x quantised on `grid` (its DequantizeLinear's output
// is n's input 0) on the INT8 kernels; null when n's weight has no int8 form
// or the CPU has no VNNI (float is then as fast).
std::unique_ptr<Step> lower_int8_linear(Lowering& l, const Node& n, const std::string& x, const kernels::QuantGrid& grid);
// The same for a Conv of one group (engine/lower_layers.cpp).
std::unique_ptr<Step> lower_int8_conv(Lowering& l, const Node& n, const std::string& x, const kernels::QuantGrid& grid);

// "+bias+add+relu": what a step fused, for its kernel name.
std::string fused_name(const Fused& f);

}  // namespace neurite::engine::detail
