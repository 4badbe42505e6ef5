// Who reads and who writes each value of a graph: the use-def facts that
// the passes and the lowering into steps share.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "neurite/engine/graph.h"

namespace neurite::engine::detail {

class GraphIndex {
 public:
  explicit GraphIndex(const Graph& graph);
  // Nodes that read `value`, each graph output counting as one more reader.
  int readers(const std::string& value) const;
  // The nodes (indices) that read `value`, in node order.
  const std::vector<size_t>& consumers(const std::string& value) const;
  // The node that writes `value`; nullopt for inputs and initializers.
  std::optional<size_t> producer(const std::string& value) const;
  // The node that alone reads `value` (not a graph output either).
  std::optional<size_t> sole_consumer(const std::string& value) const;

 private:
  std::map<std::string, int> readers_;
  std::map<std::string, std::vector<size_t>> consumers_;
  std::map<std::string, size_t> producer_;
};

}  // namespace neurite::engine::detail
