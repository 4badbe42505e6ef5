// Linking the layouts steps hand each other, after lowering.
#pragma once

#include "engine/plan.h"

namespace neurite::engine::detail {

// Chains of oneDNN convolutions pass their outputs channel-blocked; an
// output anything else reads (or a graph output) is also written plain.
void link_blocked_layouts(Engine::Plan& plan);
// A sparse linear layer whose output only the next sparse linear layer
// reads (a ReLU between them is fused) hands it over feature-major.
void link_feature_major(Engine::Plan& plan);

}  // namespace neurite::engine::detail
