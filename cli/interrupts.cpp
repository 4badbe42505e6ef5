// SIGINT and SIGTERM, taken synchronously: blocked in every thread (threads
// inherit the mask of the one that makes them) and waited for by one watcher
// thread. No thread is ever interrupted by them, so no code of ours or of a
// library runs a handler at an arbitrary point: the watcher sets a flag the
// trainer reads between steps, or ends the process as the signal would.
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <thread>

#include "cli/commands.h"

namespace neurite::cli {

namespace {

std::atomic<bool> g_requested{false};
std::atomic<int> g_scopes{0}, g_signal{0};

sigset_t interrupt_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

// Ends the process as the signal's default action does (its status says so).
[[noreturn]] void die_of(int signal) {
  std::signal(signal, SIG_DFL);
  const sigset_t set = interrupt_signals();
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  raise(signal);
  _exit(128 + signal);
}

void watch() {
  const sigset_t set = interrupt_signals();
  for (;;) {
    int signal = 0;
    if (sigwait(&set, &signal) != 0) continue;
    if (g_scopes.load() == 0 || g_requested.load()) die_of(signal);  // nothing to stop gently, or asked twice
    g_signal.store(signal);
    g_requested.store(true);
    static const char message[] = "\nneurite: stopping after this step to write a checkpoint (again to stop at once)\n";
    [[maybe_unused]] const auto written = write(STDERR_FILENO, message, sizeof message - 1);
  }
}

}  // namespace

void watch_interrupts() {
  const sigset_t set = interrupt_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread(watch).detach();
}

InterruptScope::InterruptScope() { ++g_scopes; }
InterruptScope::~InterruptScope() { --g_scopes; }
const std::atomic<bool>& InterruptScope::requested() const { return g_requested; }
int InterruptScope::signal() const { return g_signal.load(); }

}  // namespace neurite::cli
