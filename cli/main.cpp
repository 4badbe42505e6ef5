// The `neurite` command. Every error becomes one line on stderr and exit code 1.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "cli/commands.h"
#include "neurite/error.h"
#include "neurite/parallel.h"

namespace neurite::cli {

void set_threads(int threads) {
  check<ValueError>(threads >= 0, "--threads is {}, expected 0 (all cores) or more", threads);
  neurite::set_num_threads(threads);
}

kernels::KernelPolicy kernel_policy(bool deterministic) {
  kernels::KernelPolicy policy = kernels::policy_from_environment();
  if (deterministic) policy.autotune = false;
  return policy;
}

}  // namespace neurite::cli

int main(int argc, char** argv) {
  // oneDNN's OpenMP threads spin after each call and take the cores from
  // oneTBB's workers (sparse kernels, elementwise ops): a 90 %-sparse mlp step
  // ran 1.6x slower with them spinning, dense steps were unchanged. libgomp
  // reads its wait policy when it loads, so set it and start again.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);  // on failure, carry on as we are
  }
  neurite::keep_freed_memory();
  CLI::App app{"Neurite: train, prune and serve neural networks on CPUs"};
  app.set_version_flag("--version", "neurite 0.1.0");
  app.require_subcommand(0, 1);
  neurite::cli::add_train(app);
  neurite::cli::add_eval(app);
  neurite::cli::add_analyze(app);
  neurite::cli::add_info(app);
  neurite::cli::add_prune(app);
  neurite::cli::add_quantize(app);
  neurite::cli::add_recipe(app);
  neurite::cli::add_bench_train(app);
  neurite::cli::add_export(app);
  neurite::cli::add_infer(app);
  neurite::cli::add_bench(app);
  try {
    app.parse(argc, argv);
    if (app.get_subcommands().empty()) std::cout << app.help();
  } catch (const CLI::ParseError& e) {
    // CLI11 prints help and version itself; a real parse error is one line.
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << "neurite: " << e.what() << "\n";
    return 2;
  } catch (const neurite::Error& e) {
    std::cerr << "neurite: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "neurite: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
