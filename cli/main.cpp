// The `neurite` command. Every error becomes one line on stderr and exit code 1.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <iostream>

#include "neurite/autograd/error.h"
#include "neurite/autograd/parallel.h"

int main(int argc, char** argv) {
  CLI::App app{"Neurite: train, prune and serve neural networks on CPUs"};
  app.set_version_flag("--version", "neurite 0.1.0");
  app.require_subcommand(0, 1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (app.get_subcommands().empty()) {
      std::cout << app.help();
      return 0;
    }
  } catch (const neurite::Error& e) {
    std::cerr << "neurite: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
