// The tensor-column planner. Planning is pure (shapes and the tile budget
// in, groups out) so it is tested without timing; keep_faster_groups then
// times each group against its steps run one by one.
#pragma once

#include <vector>

#include "engine/plan.h"

namespace neurite::engine::detail {

// Bytes a column tile's working set may take: CompileOptions::tile_bytes, else the L2 cache.
int64_t tile_budget(const CompileOptions& o);
// Maximal runs of two or more sliceable steps. A run of band convolutions
// whose images overflow the budget streams bands of rows (sized so that
// every step's band with its halo fits); other runs take batch slices that fit.
std::vector<Group> plan_columns(const Engine::Plan& plan, int64_t budget);
// Keeps the groups that measure faster than their steps layer by layer, each
// at the fastest of its planned tile and a half, quarter and eighth of it
// (the plan ignores scratch buffers and weights, which share L2 with the tile).
void keep_faster_groups(Engine::Plan& plan);
// Sets each step's StepInfo::group.
void number_groups(Engine::Plan& plan);
// A node run over whole tensors may leave its output sharing storage with
// its input (Reshape returns a view); in a group it writes slices of its
// output, so it gets a buffer of its own.
void own_group_buffers(Engine::Plan& plan, const Graph& g);

}  // namespace neurite::engine::detail
