// The `neurite` command. Every error becomes one line on stderr; the exit code
// is 0 when the command did its work, 1 when it failed (bad input, a file
// missing or damaged), 2 for a usage error (an unknown command or option, a
// required argument missing), which names the nearest valid spelling.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "neurite/dist/dist.h"
#include "neurite/error.h"
#include "neurite/parallel.h"
#include "neurite/version.h"

namespace neurite::cli {

void set_threads(int threads) {
  check<ValueError>(threads >= 0, "--threads is {}, expected 0 (all cores) or more", threads);
  neurite::set_num_threads(threads);
}

void add_model_argument(CLI::App* cmd, std::string& target, const std::string& help, const std::string& alias) {
  if (alias == "--model") {
    cmd->add_option("MODEL,--model", target, help)->required();
    return;
  }
  cmd->add_option("MODEL", target, help);
  const std::string name = cmd->get_name();
  cmd->add_option_function<std::string>(
         alias,
         [&target, alias, name](const std::string& value) {
           fmt::print(stderr, "note: {} is deprecated and goes in the next release: write neurite {} {} ...\n",
                      alias, name, value);
           target = value;
         },
         "Same as MODEL (deprecated)")
      ->group("Deprecated");
  cmd->parse_complete_callback([&target, cmd] {
    if (target.empty()) throw CLI::RequiredError(cmd->get_name() + ": MODEL");
  });
}

kernels::KernelPolicy kernel_policy(bool deterministic) {
  kernels::KernelPolicy policy = kernels::policy_from_environment();
  if (deterministic) policy.autotune = false;
  return policy;
}

namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  std::iota(row.begin(), row.end(), size_t{0});
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// The candidate nearest to `word`, if it is near enough to be a typo of it.
std::string nearest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates)
    if (const size_t d = edit_distance(word, c); d < best_distance) best = c, best_distance = d;
  return best;
}

// The usage error for the first unknown command or option in argv, with the
// nearest valid spelling ("unknown option --epoch; did you mean --epochs?"),
// or "" when argv has none (another usage error).
std::string unknown_word(CLI::App& app, int argc, char** argv) {
  CLI::App* command = nullptr;
  for (int i = 1; i < argc && command == nullptr; ++i) {
    const std::string word = argv[i];
    if (word.starts_with("-")) continue;
    try {
      command = app.get_subcommand(word);
    } catch (const CLI::OptionNotFound&) {
      std::vector<std::string> names;
      for (const CLI::App* s : app.get_subcommands({})) names.push_back(s->get_name());
      const std::string guess = nearest(word, names);
      return fmt::format("unknown command '{}'{}", word, guess.empty() ? "" : fmt::format("; did you mean '{}'?", guess));
    }
  }
  if (command == nullptr) return "";
  for (int i = 1; i < argc; ++i) {
    const std::string word = std::string(argv[i]).substr(0, std::string(argv[i]).find('='));
    if (!word.starts_with("--") || command->get_option_no_throw(word) != nullptr) continue;
    std::vector<std::string> names;
    for (const CLI::Option* o : command->get_options())
      for (const std::string& n : o->get_lnames()) names.push_back("--" + n);
    const std::string guess = nearest(word, names);
    return fmt::format("{}: unknown option {}{}", command->get_name(), word,
                       guess.empty() ? "" : fmt::format("; did you mean {}?", guess));
  }
  return "";
}

}  // namespace

}  // namespace neurite::cli

int main(int argc, char** argv) {
  // OpenMP's threads wait passively (they took the cores from oneTBB's
  // workers: a 90 %-sparse mlp step ran 1.6x slower), and freed memory stays
  // in the heap (neurite/parallel.h).
  neurite::init(argv);
  neurite::cli::watch_interrupts();
  CLI::App app{"Neurite: train, prune and serve neural networks on CPUs"};
  app.set_version_flag("--version", fmt::format("neurite {}", neurite::kVersion));
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
    const std::string unknown = neurite::cli::unknown_word(app, argc, argv);
    std::cerr << "neurite: " << (unknown.empty() ? e.what() : unknown) << "\n";
    return 2;
  } catch (const neurite::cli::Exit& e) {
    if (!e.message.empty()) std::cerr << e.message << "\n";
    return e.code;
  } catch (const std::exception& e) {
    // Under mpirun an error on one rank ends them all, naming the rank: the
    // others would otherwise wait for it forever.
    if (neurite::dist::Communicator::launched_by_mpi()) neurite::dist::Communicator::world()->abort(e.what(), 1);
    std::cerr << "neurite: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
