#include "engine/graph_index.h"

namespace neurite::engine::detail {

GraphIndex::GraphIndex(const Graph& graph) {
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    for (const std::string& in : graph.nodes[i].inputs)
      if (!in.empty()) ++readers_[in], consumers_[in].push_back(i);
    for (const std::string& out : graph.nodes[i].outputs)
      if (!out.empty()) producer_[out] = i;
  }
  for (const ValueInfo& v : graph.outputs) ++readers_[v.name];
}

int GraphIndex::readers(const std::string& value) const {
  auto it = readers_.find(value);
  return it == readers_.end() ? 0 : it->second;
}

const std::vector<size_t>& GraphIndex::consumers(const std::string& value) const {
  static const std::vector<size_t> none;
  auto it = consumers_.find(value);
  return it == consumers_.end() ? none : it->second;
}

std::optional<size_t> GraphIndex::producer(const std::string& value) const {
  auto it = producer_.find(value);
  return it == producer_.end() ? std::nullopt : std::optional<size_t>(it->second);
}

std::optional<size_t> GraphIndex::sole_consumer(const std::string& value) const {
  const auto& c = consumers(value);
  if (readers(value) != 1 || c.size() != 1) return std::nullopt;
  return c[0];
}

}  // namespace neurite::engine::detail
