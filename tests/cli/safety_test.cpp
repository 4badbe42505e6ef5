// Nothing lost: a full disk during a checkpoint write leaves the previous
// checkpoint intact and the run resumable.
#include <gtest/gtest.h>

#include "neurite/train/checkpoint.h"
#include "support/temp_dir.h"
#include "tests/cli/cli_support.h"

namespace {

using namespace neurite::testing;

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
