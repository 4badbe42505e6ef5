// Nothing lost: a run killed at any moment resumes to the weights an
// uninterrupted run ends with, a full disk during a checkpoint write leaves
// the previous checkpoint intact and the run resumable.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <thread>

#include "neurite/train/checkpoint.h"
#include "support/temp_dir.h"
#include "tests/cli/cli_support.h"

namespace {

using namespace neurite::testing;
using Clock = std::chrono::steady_clock;

// `command` as a process of its own (sh execs it: the pid is the command's), its output into `log`.
pid_t spawn(const std::string& command, const std::string& log = "/dev/null") {
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + command + " > " + log + " 2>&1").c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

// Every tensor of the model and the optimizer, bit for bit.
void expect_same_state(const neurite::train::Checkpoint& a, const neurite::train::Checkpoint& b) {
  EXPECT_EQ(a.epoch, b.epoch);
  EXPECT_EQ(a.step, b.step);
  EXPECT_EQ(a.rng_state, b.rng_state);
  for (const auto* maps : {&a.state, &a.optimizer_state}) {
    const auto& other = maps == &a.state ? b.state : b.optimizer_state;
    ASSERT_EQ(maps->size(), other.size());
    for (const auto& [name, t] : *maps) {
      const auto it = other.find(name);
      ASSERT_NE(it, other.end()) << name;
      ASSERT_EQ(t.nbytes(), it->second.nbytes()) << name;
      EXPECT_EQ(std::memcmp(t.bytes(), it->second.bytes(), t.nbytes()), 0) << name << " differs";
    }
  }
}

// The run of `args` uninterrupted, into dir/whole, as the reference; its milliseconds.
int64_t uninterrupted_run(const fs::path& dir, const std::string& args) {
  const auto t0 = Clock::now();
  EXPECT_EQ(neurite_cli(args + " --out " + (dir / "whole").string()).code, 0);
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
}

// SIGKILL at 24 moments: half after a random delay, half the moment a
// checkpoint's temporary appears (mid-write). After each kill the checkpoint
// on disk loads (never torn); each restart resumes (or, killed before its
// first checkpoint, starts again); the end is bit for bit the uninterrupted run's.
TEST(Safety, KilledAtRandomMomentsTheRunResumesToTheSameWeights) {
  const fs::path dir = temp_dir("safety_kill");
  const std::string data = write_bands(dir, 48, 71);
  const std::string args = "train mlp --data h5:" + data + " --batch-size 16 --epochs 40 --threads 1";
  const int64_t whole_ms = uninterrupted_run(dir, args);
  const fs::path run = dir / "killed", ckpt = run / "checkpoint.h5", temporary = run / "checkpoint.h5.tmp";
  std::mt19937 random(2026);
  int kills = 0, mid_write = 0;
  bool finished = false;
  while (kills < 24 && !finished) {
    const bool begun = fs::exists(run / "args.json");
    fs::remove(temporary);  // a temporary left by the last kill: the next one seen is a new write's
    const pid_t pid = spawn(std::string(NEURITE_CLI) + " " + (begun ? "train --resume " + run.string() : args + " --out " + run.string()));
    const bool at_write = kills % 2 == 1;
    const auto deadline = Clock::now() + std::chrono::milliseconds(
        at_write ? 10000 : std::uniform_int_distribution<int>(30, static_cast<int>(whole_ms / 4))(random));
    int status = 0;
    while (Clock::now() < deadline && !(at_write && fs::exists(temporary)) && waitpid(pid, &status, WNOHANG) == 0)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    if (waitpid(pid, &status, WNOHANG) == pid) {  // ended by itself: the run is complete
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
      finished = true;
      break;
    }
    mid_write += at_write && fs::exists(temporary);
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ++kills;
    if (fs::exists(ckpt)) {
      EXPECT_NO_THROW(neurite::train::load_checkpoint(ckpt.string())) << "after kill " << kills;
    }
  }
  EXPECT_GE(kills, 20);
  EXPECT_GE(mid_write, 5) << "kills during a checkpoint write";
  if (!finished) {
    ASSERT_EQ(neurite_cli("train --resume " + run.string()).code, 0);
  }
  expect_same_state(neurite::train::load_checkpoint((dir / "whole" / "checkpoint.h5").string()),
                    neurite::train::load_checkpoint(ckpt.string()));
}

// SIGINT or SIGTERM at random moments: the run finishes its step, writes a
// checkpoint of that moment (mid-epoch included), exits 130 or 143 saying how
// to go on, and resumed each time ends bit for bit as an uninterrupted run.
TEST(Safety, InterruptedBySignalsTheRunCheckpointsAndResumesToTheSameWeights) {
  const fs::path dir = temp_dir("safety_signal");
  const std::string data = write_bands(dir, 480, 72);
  const std::string args = "train mlp --data h5:" + data + " --batch-size 16 --epochs 6 --threads 1";
  const int64_t whole_ms = uninterrupted_run(dir, args);
  const fs::path run = dir / "interrupted", log = dir / "log";
  std::mt19937 random(7);
  int interruptions = 0, mid_epoch = 0;
  for (int k = 0; k < 8; ++k) {
    const bool begun = fs::exists(run / "checkpoint.h5");
    const int signal = k % 2 == 0 ? SIGINT : SIGTERM;
    fs::remove(log);  // the last run's lines must not pass for this one's
    const pid_t pid = spawn(std::string(NEURITE_CLI) + " " +
                            (begun ? "train --resume " + run.string() : args + " --out " + run.string()),
                            log.string());
    // Past start-up (which ends with the 'train:' line), then a random moment of the run.
    const auto started = Clock::now();
    auto said = [&] { std::ifstream in(log); return std::string(std::istreambuf_iterator<char>(in), {}); };
    while (said().find("train: ") == std::string::npos && Clock::now() - started < std::chrono::seconds(30))
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(5, static_cast<int>(whole_ms / 6))(random)));
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) break;  // done before the signal
    ASSERT_EQ(kill(pid, signal), 0);
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) break;  // the signal came as the run ended
    ASSERT_TRUE(WIFEXITED(status)) << "ended by signal " << WTERMSIG(status) << ": " << said();
    EXPECT_EQ(WEXITSTATUS(status), 128 + signal) << said();
    EXPECT_NE(said().find("go on with: neurite train --resume " + run.string()), std::string::npos) << said();
    ++interruptions;
    mid_epoch += neurite::train::load_checkpoint((run / "checkpoint.h5").string()).batch > 0;
  }
  EXPECT_GE(interruptions, 4);
  EXPECT_GE(mid_epoch, 1) << "no interruption fell within an epoch";
  ASSERT_EQ(neurite_cli("train --resume " + run.string()).code, 0);
  expect_same_state(neurite::train::load_checkpoint((dir / "whole" / "checkpoint.h5").string()),
                    neurite::train::load_checkpoint((run / "checkpoint.h5").string()));
}

std::string file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// --resume of a folder whose files were damaged (a byte flipped, cut in half,
// not JSON): one line naming the file and what is wrong, exit 1, and every
// file as it was: the run's last checkpoint is never overwritten.
TEST(Safety, ADamagedRunFolderIsRefusedByNameAndLeftAsItWas) {
  const fs::path dir = temp_dir("safety_damaged");
  const std::string data = write_bands(dir, 48, 73);
  const fs::path run = dir / "run", ckpt = run / "checkpoint.h5", args = run / "args.json";
  ASSERT_EQ(neurite_cli("train mlp --data h5:" + data + " --epochs 1 --threads 1 --out " + run.string()).code, 0);
  const std::string good_ckpt = file_bytes(ckpt), good_args = file_bytes(args);
  struct Damage {
    fs::path file;
    std::string bytes, message;
  };
  std::string flipped = good_ckpt;
  flipped[flipped.size() / 2] ^= 0x40;
  const std::vector<Damage> damages = {
      {ckpt, flipped, "damaged checkpoint: its header says"},
      {ckpt, good_ckpt.substr(0, good_ckpt.size() / 2), "damaged checkpoint"},
      {ckpt, good_ckpt.substr(0, 300), "truncated checkpoint: 300 bytes"},
      {ckpt, "", "not a Neurite checkpoint"},
      {args, good_args.substr(0, good_args.size() / 2), "args.json is not a JSON object of the run's options"},
      {args, "{\"epochs\": \"many\"}", "args.json has 'epochs': \"many\", not a value of --epochs"},
  };
  for (const Damage& d : damages) {
    std::ofstream(d.file, std::ios::binary | std::ios::trunc) << d.bytes;
    const Result r = neurite_cli("train --resume " + run.string());
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find(d.message), std::string::npos) << d.message << " not in: " << r.out;
    EXPECT_EQ(file_bytes(d.file), d.bytes) << d.file << " was rewritten";
    std::ofstream(ckpt, std::ios::binary | std::ios::trunc) << good_ckpt;
    std::ofstream(args, std::ios::binary | std::ios::trunc) << good_args;
  }
  EXPECT_EQ(neurite_cli("train --resume " + run.string() + " --epochs 2").code, 0);
}

TEST(Safety, AFullDiskLeavesThePreviousCheckpointIntact) {
  const fs::path dir = temp_dir("safety_full");
  const std::string data = write_bands(dir, 48, 63);
  const fs::path run = dir / "run";
  ASSERT_EQ(neurite_cli("train mlp --data h5:" + data + " --epochs 1 --threads 1 --out " + run.string()).code, 0);
  const auto before = neurite::train::load_checkpoint((run / "checkpoint.h5").string());
  // Files may grow to 2 MB (the checkpoint is 15 MB): every larger write fails with EFBIG, as on a full disk.
  const Result r = run_command("sh -c 'trap \"\" XFSZ; ulimit -f 2048; exec " + std::string(NEURITE_CLI) +
                               " train --resume " + run.string() + " --epochs 2' 2>&1");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("checkpoint.h5: not written"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("the previous file, if any, is unchanged"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(run / "checkpoint.h5.tmp"));
  const auto after = neurite::train::load_checkpoint((run / "checkpoint.h5").string());
  EXPECT_EQ(after.epoch, before.epoch);
  EXPECT_EQ(after.step, before.step);
  // With room again, the run goes on from that checkpoint.
  EXPECT_EQ(neurite_cli("train --resume " + run.string() + " --epochs 2").code, 0);
}

}  // namespace
