// neurite/engine/onnx.h — ONNX files in and out of the graph IR.
//
//   engine::save_onnx(graph, "model.onnx");            // opset 17, dynamic batch as dim_param "batch"
//   engine::Graph g = engine::load_onnx("model.onnx");  // FormatError naming the file and what is wrong
//
// Nodes, attributes and initializers map one to one (the IR uses ONNX's op
// and attribute names); protobuf stays inside engine/onnx.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "neurite/engine/graph.h"

namespace neurite::engine {

struct OnnxExportOptions {
  int64_t opset = 17;
  std::string graph_name = "neurite";
};

// The serialised ModelProto.
std::string to_onnx(const Graph& graph, const OnnxExportOptions& options = {});
// Writes to_onnx(graph) to path atomically (a temporary file, then rename).
void save_onnx(const Graph& graph, const std::string& path, const OnnxExportOptions& options = {});

// Parses a serialised ModelProto; `source` names it in errors. An op outside
// the IR's table is an error listing every such op with its node names.
Graph from_onnx(const std::string& bytes, const std::string& source);
Graph load_onnx(const std::string& path);
// A serialised TensorProto (ONNX's test data: input_0.pb); bool becomes int64 0/1.
Tensor load_onnx_tensor(const std::string& path);

// What `neurite info` reports of an ONNX file, whether or not every op is supported.
struct OnnxSummary {
  int64_t opset = 0, nodes = 0, supported_nodes = 0;
  std::vector<std::string> unsupported;  // "OpType (node name)" for each node outside the IR
  std::map<std::string, Tensor> initializers;
  std::vector<ValueInfo> inputs, outputs;
  // The prunable weights: float initializers of rank >= 2 that a Conv or Gemm
  // reads as its weight or a MatMul multiplies by (what __ALL_PRUNABLE__
  // selects in a trained model).
  std::set<std::string> weights;
};
OnnxSummary summarize_onnx(const std::string& path);

}  // namespace neurite::engine
