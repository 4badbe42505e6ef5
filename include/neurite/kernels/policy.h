// neurite/kernels/policy.h — how Neurite picks its kernels, as a value that
// a Module, a Trainer and engine::compile take. Nothing else decides: the
// library reads no environment variable and keeps no process-wide mode.
//
//   model.set_kernel_policy({.sparse = kernels::SparseKernels::never});     // dense masked kernels
//   engine::compile(graph, {.batch = 64, .kernels = {.autotune = false}});    // the same plan every run
//   auto policy = kernels::policy_from_environment();                       // what the CLI does
#pragma once

#include <optional>
#include <string>

namespace neurite::kernels {

// The instruction set of the vector kernels; each has the same plain-loop twin.
enum class Isa { reference, avx2, avx512 };
bool isa_supported(Isa isa);
const char* isa_name(Isa isa);  // "reference", "avx2", "avx512"
Isa best_isa();                 // the best this CPU supports

// When a pruned layer trains on its sparse form: `automatic` picks per layer
// (by timing both when autotuning, else by density), `always` and `never` force it.
enum class SparseKernels { automatic, always, never };

struct KernelPolicy {
  SparseKernels sparse = SparseKernels::automatic;
  std::optional<Isa> isa;  // unset: best_isa()
  // Time the candidate kernels on this CPU and keep the fastest. Off
  // (deterministic): choices follow from shapes and densities alone, so two
  // runs pick the same kernels and round the same way.
  bool autotune = true;

  Isa resolved_isa() const { return isa.value_or(best_isa()); }
};

// The command line's defaults: NEURITE_SPARSE_KERNELS (auto, always, never),
// NEURITE_ISA (reference, avx2, avx512) and NEURITE_DETERMINISTIC (1: no
// autotuning). ValueError naming the variable for a value it does not know,
// or an ISA this CPU lacks.
KernelPolicy policy_from_environment();

}  // namespace neurite::kernels
