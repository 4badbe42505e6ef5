// `mpirun -np 2 neurite train ...` as a user runs it: the same run as one
// process, a resume on another number of ranks, a rank killed mid-run (the
// other stops, naming it; the run resumes), and bad input on one rank only.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "support/temp_dir.h"
#include "tests/cli/cli_support.h"

namespace {

using namespace neurite::testing;
using Clock = std::chrono::steady_clock;

nlohmann::json summary_of(const fs::path& run) { return nlohmann::json::parse(std::ifstream(run / "summary.json")); }

int64_t lines_of(const fs::path& file) {
  std::ifstream in(file);
  int64_t n = 0;
  for (std::string line; std::getline(in, line);) n += !line.empty();
  return n;
}

TEST(Distributed, TwoRanksTrainAsOneAndResumeOnOne) {
  const fs::path dir = temp_dir("cli_dist");
  const std::string data = write_bands(dir, 144, 31), val = write_bands(dir, 48, 32);
  // The mlp: no dropout, whose draws differ when each rank draws for its share (as in PyTorch's DDP).
  const std::string common = "train mlp --data h5:" + data + " --val-data h5:" + val + " --batch-size 24 --threads 1 --schedule constant ";
  Result r = neurite_cli(common + "--epochs 3 --out " + (dir / "one").string());
  ASSERT_EQ(r.code, 0) << r.out;
  r = neurite_mpirun(2, common + "--epochs 3 --out " + (dir / "two").string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("2 ranks sharing each batch"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("train: mlp", r.out.find("train: mlp") + 1), std::string::npos) << "rank 1 printed too:\n" << r.out;
  const auto one = summary_of(dir / "one"), two = summary_of(dir / "two");
  EXPECT_NEAR(two["val_loss"].get<double>(), one["val_loss"].get<double>(), 1e-5);
  EXPECT_NEAR(two["train_loss"].get<double>(), one["train_loss"].get<double>(), 1e-5);
  EXPECT_EQ(two["steps"], one["steps"]);

  // Two epochs on two ranks, the third on one: the same run, within float summation order
  // (a constant learning rate: a cosine schedule would follow the first run's length).
  r = neurite_mpirun(2, common + "--epochs 2 --out " + (dir / "moved").string());
  ASSERT_EQ(r.code, 0) << r.out;
  r = neurite_cli("train --resume " + (dir / "moved").string() + " --epochs 3");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("trained on 2 ranks so far, goes on on 1"), std::string::npos) << r.out;
  EXPECT_NEAR(summary_of(dir / "moved")["val_loss"].get<double>(), one["val_loss"].get<double>(), 1e-5);
  EXPECT_EQ(lines_of(dir / "moved" / "metrics.jsonl"), 3);
  EXPECT_EQ(r.out.find("resume: data"), std::string::npos) << r.out;
  // Other data on resume goes on, and says so.
  r = neurite_mpirun(2, "train --resume " + (dir / "two").string() + " --epochs 4 --data h5:" + val);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("resume: data is h5:" + val + ", the run's was h5:" + data), std::string::npos) << r.out;
}

// The PID of rank `rank` of the neurite processes writing into `run`.
int rank_pid(const std::string& run, int rank) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string pid = entry.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream cmdline(entry.path() / "cmdline"), environ(entry.path() / "environ");
    std::stringstream c, e;
    c << cmdline.rdbuf();
    e << environ.rdbuf();
    std::string env = e.str();
    std::replace(env.begin(), env.end(), '\0', '\n');
    if (c.str().find(run) != std::string::npos && c.str().find("mpirun") == std::string::npos &&
        ("\n" + env).find("\nOMPI_COMM_WORLD_RANK=" + std::to_string(rank) + "\n") != std::string::npos)
      return std::stoi(pid);
  }
  return -1;
}

TEST(Distributed, AKilledRankStopsTheOtherNamingItAndTheRunResumes) {
  const fs::path dir = temp_dir("cli_dist_kill");
  const std::string data = write_bands(dir, 960, 41), val = write_bands(dir, 48, 42);
  const fs::path run = dir / "run";
  const std::string command =
      "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun --oversubscribe --bind-to none -np 2 " +
      std::string(NEURITE_CLI) + " train cnn --data h5:" + data + " --val-data h5:" + val +
      " --batch-size 24 --threads 1 --epochs 40 --out " + run.string();
  const fs::path log = dir / "log", code = dir / "code";
  ASSERT_EQ(std::system(("(" + command + " > " + log.string() + " 2>&1; echo $? > " + code.string() + ") &").c_str()), 0);
  const auto start = Clock::now();
  while (!fs::exists(run / "checkpoint.h5") && Clock::now() - start < std::chrono::seconds(120))
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(fs::exists(run / "checkpoint.h5")) << "no checkpoint after 2 minutes";
  const int victim = rank_pid(run.string(), 1);
  ASSERT_GT(victim, 0);
  const auto killed = Clock::now();
  ASSERT_EQ(kill(victim, SIGKILL), 0);
  while (!fs::exists(code) && Clock::now() - killed < std::chrono::seconds(60))
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(fs::exists(code)) << "rank 0 still runs a minute after rank 1 was killed";
  EXPECT_LT(Clock::now() - killed, std::chrono::seconds(30));
  std::ifstream code_file(code);
  int exit_code = 0;
  code_file >> exit_code;
  EXPECT_NE(exit_code, 0);
  std::stringstream out;
  out << std::ifstream(log).rdbuf();
  EXPECT_NE(out.str().find("rank 1"), std::string::npos) << out.str();
  // Nothing is lost beyond the epoch in progress: the run goes on from its last checkpoint.
  const int64_t epochs_done = lines_of(run / "metrics.jsonl");
  ASSERT_GE(epochs_done, 1);
  Result r = neurite_mpirun(2, "train --resume " + run.string() + " --epochs " + std::to_string(epochs_done + 1));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("resumed after epoch " + std::to_string(epochs_done)), std::string::npos) << r.out;
  EXPECT_EQ(lines_of(run / "metrics.jsonl"), epochs_done + 1);
}

TEST(Distributed, BadInputOnOneRankStopsEveryRankWithOneLine) {
  const fs::path dir = temp_dir("cli_dist_bad");
  const std::string data = write_bands(dir, 48, 51);
  const std::string missing = (dir / "only_on_rank_0.h5").string();
  // Rank 1 reads another path (as a machine without the file would).
  auto start = Clock::now();
  Result r = neurite_mpirun(1, "train cnn --data h5:" + data + " --epochs 1 --out " + (dir / "a").string() + " : -np 1 " +
                                   std::string(NEURITE_CLI) + " train cnn --data h5:" + missing + " --epochs 1 --out " +
                                   (dir / "a").string());
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("neurite: rank 1: " + missing + ": no such file"), std::string::npos) << r.out;
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(60));

  r = neurite_mpirun(2, "train cnn --data h5:" + data + " --batch-size 1 --epochs 1 --out " + (dir / "b").string());
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("a batch of 1 cannot be shared by 2 processes"), std::string::npos) << r.out;

  r = neurite_mpirun(2, "train mlp --data h5:" + data + " --sync-bn --batch-size 8 --epochs 1 --out " + (dir / "c").string());
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("--sync-bn: mlp has no BatchNorm2d layer to synchronise"), std::string::npos) << r.out;
}

}  // namespace
