// The neurite command as a user runs it: a small training run, resume, eval,
// info, bench-train, and one clear line plus a non-zero exit on bad input.
#include <gtest/gtest.h>

#include "support/temp_dir.h"
#include <sys/wait.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "neurite/data/readers.h"
#include "neurite/engine/onnx.h"
#include "neurite/engine/trace.h"
#include "neurite/layers/models.h"
#include "neurite/version.h"
#include "tests/cli/cli_support.h"
#include "tests/engine/runtimes.h"

namespace {

using namespace neurite::testing;

TEST(Cli, TrainResumeEvalAndInfo) {
  const fs::path dir = temp_dir("cli_train");
  const std::string train = write_bands(dir, 120, 1), val = write_bands(dir, 60, 7);
  const std::string run = (dir / "run").string();
  Result r = neurite_cli("train cnn --data h5:" + train + " --val-data h5:" + val +
                         " --epochs 2 --batch-size 20 --lr 0.05 --threads 2 --out " + run);
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* file : {"checkpoint.h5", "metrics.jsonl", "summary.json", "args.json"})
    EXPECT_TRUE(fs::exists(fs::path(run) / file)) << file;

  r = neurite_cli("train --resume " + run + " --epochs 3");  // one epoch more, every other setting from args.json
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("resumed after epoch 2"), std::string::npos) << r.out;
  const auto summary = nlohmann::json::parse(std::ifstream(fs::path(run) / "summary.json"));
  EXPECT_EQ(summary["epochs"], 3);

  r = neurite_cli("eval " + run + "/checkpoint.h5 --data h5:" + val + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto eval = nlohmann::json::parse(r.out);
  EXPECT_GT(eval["top1"].get<double>(), 0.9) << r.out;
  EXPECT_EQ(eval["examples"], 60);

  r = neurite_cli("info " + run + "/checkpoint.h5 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto info = nlohmann::json::parse(r.out);
  EXPECT_EQ(info["parameters"][0]["name"], "features.0.weight");
  EXPECT_EQ(info["parameters"][0]["shape"], (std::vector<int64_t>{32, 1, 3, 3}));
  for (const char* key : {"name", "shape", "numel", "nonzeros", "sparsity", "prunable"})
    EXPECT_TRUE(info["parameters"][0].contains(key)) << key;
  EXPECT_EQ(info["total"]["parameters"], 93155);  // cnn for 12x12 images, 3 classes
  EXPECT_EQ(info["total"]["numel"], 92832);       // its Conv and Linear weights: what total sparsity counts
  EXPECT_EQ(info["parameters"][1]["prunable"], false);  // a BatchNorm weight
  EXPECT_EQ(info["inputs"][0]["shape"], (std::vector<int64_t>{-1, 1, 12, 12}));
  EXPECT_EQ(info["outputs"][0]["type"], "float32");

  // prune reports the prunable weights' sparsity and, given data, what it cost in top-1.
  r = neurite_cli("prune " + run + "/checkpoint.h5 --sparsity 0.8 --mask-type 4x1 --data h5:" + val + " --out " + run +
                  "/pruned.h5 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto pruning = nlohmann::json::parse(r.out);
  EXPECT_NEAR(pruning["sparsity"].get<double>(), 0.8, 0.02);
  EXPECT_DOUBLE_EQ(pruning["top1_before"].get<double>(), eval["top1"].get<double>());
  EXPECT_TRUE(pruning.contains("top1_after"));
  r = neurite_cli("info " + run + "/pruned.h5 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto pruned = nlohmann::json::parse(r.out)["parameters"];
  EXPECT_NEAR(pruned[0]["sparsity"].get<double>(), 0.8, 0.05);  // features.0.weight, per-tensor 4x1 blocks
  EXPECT_EQ(pruned[1]["sparsity"].get<double>(), 0.0);          // its BatchNorm weight is not prunable

  r = neurite_cli("train cnn --data h5:" + train + " --epochs 1 --batch-size 20 --num-classes 5 --init " + run +
                  "/checkpoint.h5 --out " + (dir / "transfer").string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("init: classifier.4.weight is [3,128]"), std::string::npos) << r.out;
}

// One convention: the model first, --out for what a command writes, usage
// errors exit 2 with the nearest valid spelling, failures exit 1, and a run
// folder is not replaced without --overwrite.
TEST(Cli, OneConventionForEveryCommand) {
  const fs::path dir = temp_dir("cli_convention");
  const std::string train = write_bands(dir, 40, 21);
  const std::string run = (dir / "run").string();
  Result r = neurite_cli("train cnn --data h5:" + train + " --epochs 1 --batch-size 20 --out " + run);
  ASSERT_EQ(r.code, 0) << r.out;
  r = neurite_cli("train cnn --data h5:" + train + " --epochs 1 --batch-size 20 --out " + run);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("is not empty (an earlier run?): pass --overwrite"), std::string::npos) << r.out;
  r = neurite_cli("train --model cnn --data h5:" + train + " --epochs 1 --batch-size 20 --overwrite --augment flip,crop " +
                  "--out " + run);
  EXPECT_EQ(r.code, 0) << r.out;
  r = neurite_cli("train cnn --data h5:" + train + " --augment zoom --overwrite --out " + run);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("'zoom' is not an augmentation"), std::string::npos) << r.out;
  // --checkpoint still names the model, for one release, with a note.
  r = neurite_cli("eval --checkpoint " + run + "/checkpoint.h5 --data h5:" + train + " --json");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("note: --checkpoint is deprecated"), std::string::npos) << r.out;
  const struct {
    std::string args, message;
  } usage[] = {
      {"trian cnn", "unknown command 'trian'; did you mean 'train'?"},
      {"train cnn --epoch 3", "train: unknown option --epoch; did you mean --epochs?"},
      {"eval --data h5:" + train, "eval: MODEL is required"},
      {"export --out x.onnx", "export: MODEL is required"},
  };
  for (const auto& u : usage) {
    r = neurite_cli(u.args);
    EXPECT_EQ(r.code, 2) << u.args << ": " << r.out;
    EXPECT_NE(r.out.find(u.message), std::string::npos) << u.args << ": " << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  }
  r = neurite_cli("--version");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find(std::string("neurite ") + neurite::kVersion), std::string::npos) << r.out;
}

// A run folder stands alone: --resume works from another folder with the
// relative paths it began with, and under the recipe it began with (the
// checkpoint's copy) though the file has gone; metrics.jsonl gives the rate
// the recipe set on the epoch's first step.
TEST(Cli, ResumeNeedsOnlyTheRunFolder) {
  const fs::path dir = temp_dir("cli_resume_anywhere");
  write_bands(dir, 40, 31);
  std::ofstream(dir / "r.yaml") << "num_epochs: 1\nmodifiers:\n"
                                   "  - !EpochRangeModifier {start_epoch: 0, end_epoch: eval(num_epochs)}\n"
                                   "  - !SetLearningRateModifier {learning_rate: 0.02, start_epoch: 0}\n";
  const std::string in_dir = "cd " + dir.string() + " &&";
  Result r = neurite_cli("train cnn --data h5:bands31.h5 --batch-size 20 --recipe r.yaml --out run", in_dir);
  ASSERT_EQ(r.code, 0) << r.out;
  std::ifstream metrics(dir / "run" / "metrics.jsonl");
  std::string line;
  std::getline(metrics, line);
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(line)["lr"].get<double>(), 0.02) << line;
  fs::remove(dir / "r.yaml");
  r = neurite_cli("train --resume " + (dir / "run").string() + " --recipe-var num_epochs=2");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("epoch 2/2"), std::string::npos) << r.out;
}

// Token data (an h5 file whose x holds integer ids) trains the transformer from
// the command line; the run's length and vocabulary come from the data.
TEST(Cli, TheTransformerTrainsOnTokenData) {
  const fs::path dir = temp_dir("cli_tokens");
  const int64_t n = 96, length = 12;
  Tensor x = Tensor::randint({n, length}, 41, 1, 40), y = Tensor::zeros({n}, neurite::autograd::Dtype::i64);
  for (int64_t i = 0; i < n; ++i) {  // class 1: the sequence holds token 7
    y.data<int64_t>()[i] = i % 2;
    for (int64_t k = 0; k < length; ++k)
      if (x.data<int64_t>()[i * length + k] == 7) x.data<int64_t>()[i * length + k] = 8;
    if (i % 2 == 1) x.data<int64_t>()[i * length + i % length] = 7;
  }
  const std::string data = (dir / "tokens.h5").string();
  neurite::data::save_h5(data, x, y);
  Result r = neurite_cli("train transformer --data h5:" + data + " --epochs 2 --batch-size 16 --threads 2 --out " +
                         (dir / "run").string());
  ASSERT_EQ(r.code, 0) << r.out;
  r = neurite_cli("info " + (dir / "run" / "checkpoint.h5").string() + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["inputs"][0]["shape"], (std::vector<int64_t>{-1, length}));
  r = neurite_cli("train cnn --data h5:" + data + " --out " + (dir / "wrong").string());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("gives token ids"), std::string::npos) << r.out;
}

// A PyTorch export of two inputs (token ids and an attention mask, as BERT's
// exports take them) trains on an HDF5 file holding the second as x2; its
// checkpoint and its ONNX export evaluate alike, and data of one input is
// refused by name.
TEST(Cli, AModelOfTwoInputsTrainsOnDataOfTwo) {
  const fs::path dir = temp_dir("cli_two_inputs");
  const int64_t n = 120, length = 6;
  Tensor ids = Tensor::randint({n, length}, 43, 1, 30), mask = Tensor::zeros({n, length});
  Tensor y = Tensor::zeros({n}, neurite::autograd::Dtype::i64);
  for (int64_t i = 0; i < n; ++i) {  // class 1: token 7 among the unpadded ones
    const int64_t used = 2 + i % (length - 1);
    y.data<int64_t>()[i] = i % 2;
    for (int64_t k = 0; k < length; ++k) {
      int64_t& t = ids.data<int64_t>()[i * length + k];
      if (t == 7) t = 8;
      if (k >= used) t = 0;
      mask.data<float>()[i * length + k] = k < used ? 1.0f : 0.0f;
    }
    if (i % 2 == 1) ids.data<int64_t>()[i * length + i % used] = 7;
  }
  const std::string data = (dir / "pairs.h5").string(), one = (dir / "ids.h5").string();
  neurite::data::save_h5(data, ids, y, {mask});
  neurite::data::save_h5(one, ids, y);
  const std::string model = std::string(NEURITE_SOURCE_DIR) + "/tests/golden/train/masked_pool_train_opset17.onnx";
  const std::string run = (dir / "run").string();
  Result r = neurite_cli("train " + model + " --num-classes 2 --data h5:" + data + " --epochs 6 --lr 0.5 --batch-size 12 " +
                         "--threads 2 --out " + run);
  ASSERT_EQ(r.code, 0) << r.out;
  r = neurite_cli("eval " + run + "/checkpoint.h5 --data h5:" + data + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const double top1 = nlohmann::json::parse(r.out)["top1"].get<double>();
  EXPECT_GT(top1, 0.8) << r.out;
  r = neurite_cli("export " + run + "/checkpoint.h5 --out " + (dir / "pairs.onnx").string());
  ASSERT_EQ(r.code, 0) << r.out;
  r = neurite_cli("eval " + (dir / "pairs.onnx").string() + " --data h5:" + data + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NEAR(nlohmann::json::parse(r.out)["top1"].get<double>(), top1, 1e-9) << r.out;
  r = neurite_cli("info " + (dir / "pairs.onnx").string() + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["inputs"][1]["name"], "attention_mask") << r.out;
  r = neurite_cli("eval " + (dir / "pairs.onnx").string() + " --data h5:" + one);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("the graph has 2 inputs, the data's examples 1"), std::string::npos) << r.out;
}

// --normalize is kept with the model: eval of the checkpoint normalises the
// data as training did, and the export takes raw images (its first nodes
// normalise), so both give the same top-1 on the same raw files.
TEST(Cli, NormalizationTravelsWithTheModel) {
  const fs::path dir = temp_dir("cli_normalize");
  const std::string train = write_bands(dir, 90, 21), val = write_bands(dir, 45, 22);
  const std::string run = (dir / "run").string();
  Result r = neurite_cli("train cnn --data h5:" + train + " --val-data h5:" + val +
                         " --normalize auto --epochs 1 --batch-size 15 --threads 2 --out " + run);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("normalize: mean 0.3"), std::string::npos) << r.out;  // 0.1 + 0.8 / 3
  r = neurite_cli("eval " + run + "/checkpoint.h5 --data h5:" + val + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto checkpoint = nlohmann::json::parse(r.out);
  const std::string onnx = (dir / "normalized.onnx").string();
  ASSERT_EQ(neurite_cli("export " + run + "/checkpoint.h5 --out " + onnx).code, 0);
  r = neurite_cli("eval " + onnx + " --data h5:" + val + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto exported = nlohmann::json::parse(r.out);
  EXPECT_EQ(exported["top1"], checkpoint["top1"]);
  EXPECT_NEAR(exported["loss"].get<double>(), checkpoint["loss"].get<double>(), 1e-4);
  const neurite::engine::Graph g = neurite::engine::load_onnx(onnx);
  EXPECT_EQ(g.nodes.at(0).op, neurite::engine::OpKind::sub);
  EXPECT_EQ(g.nodes.at(1).op, neurite::engine::OpKind::mul);
  for (const char* bad : {"imagenet", "0.5/0", "0.1,0.2/0.3", "x/1"}) {
    r = neurite_cli(std::string("train cnn --data h5:") + train + " --normalize " + bad + " --epochs 1 --out " +
                    (dir / "bad").string() + " --overwrite");
    EXPECT_EQ(r.code, 1) << bad;
    EXPECT_NE(r.out.find("--normalize"), std::string::npos) << r.out;
  }
}

TEST(Cli, TrainsAPyTorchExportUnderARecipeAndExportsItBack) {
  // A ResNet-style CNN PyTorch exported in training mode (5 classes, 1x12x12;
  // tests/golden/make_train_golden.py), copied so that the run must keep its own graph.
  const fs::path dir = temp_dir("cli_onnx");
  const std::string train = write_bands(dir, 120, 11), val = write_bands(dir, 60, 12);
  const fs::path model = dir / "cnn.onnx";
  fs::copy_file(fs::path(NEURITE_SOURCE_DIR) / "tests/golden/train/cnn_train_opset17.onnx", model);
  const std::string run = (dir / "run").string();
  Result r = neurite_cli("train " + model.string() + " --data h5:" + train + " --out " + run);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("has 5 outputs, the data 3 classes: pass --num-classes 3"), std::string::npos) << r.out;
  // A recipe naming PyTorch's parameters prunes them as it would in SparseML.
  std::ofstream(dir / "gmp.yaml") << R"(modifiers:
  - !EpochRangeModifier {start_epoch: 0, end_epoch: 3}
  - !GMPruningModifier {params: ["conv1.weight", "re:conv2.*weight"], init_sparsity: 0.2, final_sparsity: 0.7,
                        start_epoch: 0, end_epoch: 2, update_frequency: 0.5}
)";
  r = neurite_cli("recipe check " + (dir / "gmp.yaml").string() + " --model " + model.string());
  EXPECT_EQ(r.code, 0) << r.out;
  std::ofstream(dir / "typo.yaml") << "modifiers:\n  - !ConstantPruningModifier {params: [conv9.weight], start_epoch: 0}\n";
  r = neurite_cli("recipe check " + (dir / "typo.yaml").string() + " --model " + model.string());
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("conv9.weight"), std::string::npos) << r.out;
  r = neurite_cli("train " + model.string() + " --num-classes 3 --data h5:" + train + " --val-data h5:" + val +
                  " --epochs 2 --batch-size 20 --lr 0.05 --threads 2 --recipe " + (dir / "gmp.yaml").string() +
                  " --out " + run);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("classifier of " + model.string() + " replaced: 5 -> 3 classes"), std::string::npos) << r.out;
  fs::remove(model);
  r = neurite_cli("train --resume " + run + " --epochs 3");  // the folder holds the graph
  ASSERT_EQ(r.code, 0) << r.out;
  r = neurite_cli("eval " + run + "/checkpoint.h5 --data h5:" + val + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto trained = nlohmann::json::parse(r.out);
  EXPECT_GT(trained["top1"].get<double>(), 0.9) << r.out;
  // Sensitivity per layer, and a recipe that spends a budget of 60 % where it costs least.
  const std::string generated = (dir / "generated.yaml").string();
  r = neurite_cli("analyze " + run + "/checkpoint.h5 --data h5:" + val + " --batches 2 --batch-size 30 " +
                  "--sparsities 0.5,0.9 --out " + (dir / "analysis").string() + " --write-recipe " + generated +
                  " --target-sparsity 0.6 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto analysis = nlohmann::json::parse(r.out.substr(r.out.find("{\n")));
  EXPECT_EQ(analysis["examples"], 60);
  ASSERT_EQ(analysis["layers"].size(), 4u);  // stem.0, conv1, conv2, fc: PyTorch's names
  EXPECT_EQ(analysis["layers"][1]["name"], "conv1.weight");
  EXPECT_EQ(analysis["layers"][1]["loss_change"].size(), 2u);
  EXPECT_EQ(analysis["layers"][1]["engine_ms"].size(), 2u);  // the layer's engine step, timed at each sparsity
  EXPECT_GT(analysis["layers"][1]["engine_dense_ms"].get<double>(), 0.0);
  EXPECT_TRUE(fs::exists(dir / "analysis" / "sensitivity.svg"));
  double pruned = 0, total = 0;
  for (const auto& l : analysis["layers"]) {
    pruned += analysis["recipe"]["final_sparsity"][l["name"].get<std::string>()].get<double>() * l["numel"].get<double>();
    total += l["numel"].get<double>();
  }
  EXPECT_GE(pruned / total, 0.6);
  r = neurite_cli("analyze " + run + "/checkpoint.h5 --data h5:" + val + " --write-recipe x.yaml");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("--target-sparsity"), std::string::npos) << r.out;
  r = neurite_cli("analyze " + run + "/checkpoint.h5 --data h5:" + val +
                  " --engine-batch 0 --write-recipe x.yaml --target-speedup 2");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("needs the engine timings"), std::string::npos) << r.out;
  // Back to ONNX: the same names, the zeros kept, and ONNX Runtime computes what `infer` does.
  const std::string exported = (dir / "trained.onnx").string();
  r = neurite_cli("export " + run + "/checkpoint.h5 --out " + exported);
  ASSERT_EQ(r.code, 0) << r.out;
  const neurite::engine::Graph g = neurite::engine::load_onnx(exported);
  EXPECT_EQ(g.initializers.at("fc.weight").shape(), (neurite::autograd::Shape{3, 144}));
  r = neurite_cli("recipe check " + generated + " --model " + exported);  // the written recipe selects real names
  EXPECT_EQ(r.code, 0) << r.out;
  const Tensor& conv1 = g.initializers.at("conv1.weight");
  EXPECT_NEAR(std::count(conv1.data<float>(), conv1.data<float>() + conv1.numel(), 0.0f) / double(conv1.numel()), 0.7, 0.02);
  const Tensor x = Tensor::rand({4, 1, 12, 12}, 5);
  neurite::autograd::save_npy((dir / "x.npy").string(), x);
  // The exported file, as deployed: eval runs it in the engine, with the checkpoint's top-1 and loss.
  r = neurite_cli("eval " + exported + " --data h5:" + val + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto deployed = nlohmann::json::parse(r.out);
  EXPECT_DOUBLE_EQ(deployed["top1"].get<double>(), trained["top1"].get<double>());
  EXPECT_NEAR(deployed["loss"].get<double>(), trained["loss"].get<double>(), 1e-4);
  r = neurite_cli("infer " + exported + " --input " + (dir / "x.npy").string() + " --out " + (dir / "y.npy").string());
  ASSERT_EQ(r.code, 0) << r.out;
  const Tensor ours = neurite::autograd::load_npy((dir / "y.npy").string());
  const Tensor ort = neurite::testing::run_onnxruntime(exported, x, dir);
  for (int64_t i = 0; i < ours.numel(); ++i) EXPECT_NEAR(ours.data<float>()[i], ort.data<float>()[i], 1e-4);
}

TEST(Cli, TrainWithARecipePrunesAndRecipeCheckPlans) {
  const fs::path dir = temp_dir("cli_recipe");
  const std::string train = write_bands(dir, 120, 3);
  std::ofstream(dir / "gmp.yaml") << R"(num_epochs: 3
modifiers:
  - !EpochRangeModifier {start_epoch: 0, end_epoch: eval(num_epochs)}
  - !LearningRateFunctionModifier {lr_func: linear, init_lr: 0.05, final_lr: 0.001, start_epoch: 0, end_epoch: 3}
  - !GMPruningModifier {params: __ALL_PRUNABLE__, init_sparsity: 0.1, final_sparsity: 0.8, start_epoch: 0,
                        end_epoch: 2, update_frequency: 0.5, mask_type: "4x1"}
)";
  const std::string recipe = (dir / "gmp.yaml").string(), run = (dir / "run").string();
  Result r = neurite_cli("recipe check " + recipe + " --steps-per-epoch 4 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto planned = nlohmann::json::parse(r.out)["modifiers"];
  ASSERT_EQ(planned.size(), 3u);
  EXPECT_EQ(planned[2]["type"], "GMPruningModifier");
  EXPECT_EQ(planned[2]["updates"].size(), 5u);  // epochs 0, 0.5, 1, 1.5 and the end at 2
  EXPECT_DOUBLE_EQ(planned[2]["updates"].back()["sparsity"].get<double>(), 0.8);

  r = neurite_cli("train cnn --data h5:" + train + " --batch-size 20 --recipe " + recipe +
                  " --recipe-var num_epochs=3 --out " + run);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("sets 3 epochs"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(fs::path(run) / "sparsity.svg"));
  r = neurite_cli("info " + run + "/checkpoint.h5 --json");
  const auto info = nlohmann::json::parse(r.out);
  for (const auto& p : info["parameters"])
    if (p["shape"].size() >= 2) { EXPECT_NEAR(p["sparsity"].get<double>(), 0.8, 0.03) << p["name"]; }

  std::ofstream(dir / "bad.yaml") << "modifiers:\n  - !GMPruningModifier\n    params: __ALL__\n    final_sparsity: 2\n";
  r = neurite_cli("recipe check " + (dir / "bad.yaml").string());
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("bad.yaml:4: final_sparsity is 2, expected a value in [0, 1)"), std::string::npos) << r.out;
}

// Parameters, their gradients and SGD's momentum, in MiB, of bench-train's
// cnn at 12x12: what a dense step holds whatever the masks.
double cnn_training_mib() {
  auto model = neurite::layers::models::make_model("cnn", {.in_channels = 1, .image_size = 12});
  int64_t floats = 0;
  for (const auto& p : model->parameters()) floats += p->numel();
  return 3.0 * 4.0 * static_cast<double>(floats) / (1 << 20);
}

// Every field follows the flags: model, batch (128 by default for a conv net),
// threads, steps, sparsity and mask type; how many tensors were pruned and how
// many trained sparse (none with --dense-kernels, even under
// NEURITE_SPARSE_KERNELS=always; all without it, and then the parameter memory
// shrinks); the step times fit in the process's run time.
TEST(Cli, BenchTrainPrintsJson) {
  const double dense_mib = cnn_training_mib();
  struct Case {
    std::string flags, env;
    int64_t batch;
    int threads;
    double sparsity;
    std::string mask_type;
    int64_t pruned, sparse;
  };
  for (const Case& c : {Case{"--threads 1", "", 128, 1, 0.0, "unstructured", 0, 0},  // conv nets' default batch
                        Case{"--batch-size 8 --threads 2 --sparsity 0.75 --mask-type 4x1 --dense-kernels",
                             "NEURITE_SPARSE_KERNELS=always", 8, 2, 0.75, "4x1", 4, 0},  // the flag wins
                        Case{"--batch-size 8 --threads 2 --sparsity 0.9", "NEURITE_SPARSE_KERNELS=always", 8, 2, 0.9,
                             "unstructured", 4, 4}}) {
    SCOPED_TRACE(c.env + " " + c.flags);
    const auto start = std::chrono::steady_clock::now();
    const Result r = neurite_cli("bench-train cnn --image-size 12 --steps 3 --warmup 1 --json " + c.flags, c.env);
    const double wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    ASSERT_EQ(r.code, 0) << r.out;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["model"], "cnn");
    EXPECT_EQ(j["batch_size"], c.batch);
    EXPECT_EQ(j["threads"], c.threads);
    EXPECT_EQ(j["steps"], 3);
    EXPECT_DOUBLE_EQ(j["sparsity"].get<double>(), c.sparsity);
    EXPECT_EQ(j["mask_type"], c.mask_type);
    EXPECT_EQ(j["pruned_tensors"], c.pruned);  // cnn: two convolutions, two linear layers
    EXPECT_EQ(j["sparse_tensors"], c.sparse);
    const double median = j["ms_per_step"].get<double>(), fastest = j["ms_min"].get<double>();
    EXPECT_GT(fastest, 0);
    EXPECT_LE(fastest, median);
    EXPECT_LT(3 * fastest, wall_ms) << "three timed steps cannot take longer than the whole process";
    EXPECT_NEAR(j["samples_per_sec"].get<double>() * median / 1000, static_cast<double>(c.batch), 1e-9 * c.batch);
    const double mib = j["parameter_mib"].get<double>();
    if (c.sparse == 0) {
      EXPECT_NEAR(mib, dense_mib, 1e-3 * dense_mib) << "dense training holds every value";
    } else {
      EXPECT_LT(mib, 0.5 * dense_mib) << "sparse training holds the kept values only";
    }
    EXPECT_GT(j["peak_rss_mib"].get<double>(), mib);
  }
}

// --deterministic: kernels follow from shapes and densities, so two runs pick
// the same ones; at 90 % sparsity every pruned layer is sparse, at 50 % none.
TEST(Cli, DeterministicRunsPickTheSameKernels) {
  auto sparse_layers = [](double sparsity) {
    const Result r = neurite_cli("bench-train cnn --image-size 12 --batch-size 8 --steps 1 --warmup 0 "
                                 "--deterministic --json --sparsity " + std::to_string(sparsity));
    EXPECT_EQ(r.code, 0) << r.out;
    return nlohmann::json::parse(r.out)["sparse_layers"].get<std::vector<std::string>>();
  };
  const auto first = sparse_layers(0.9);
  EXPECT_EQ(first.size(), 4u);  // two convolutions, two linear layers
  EXPECT_EQ(sparse_layers(0.9), first);
  EXPECT_TRUE(sparse_layers(0.5).empty());

  // The engine: a cnn with 90 % of every weight zeroed, as an ONNX file.
  const fs::path dir = temp_dir("cli_deterministic");
  auto model = neurite::layers::models::make_model("cnn", {.image_size = 12, .num_classes = 3});
  auto state = model->state_dict();
  for (auto& [name, t] : state)
    if (t.dim() >= 2) {
      const Tensor keep = Tensor::rand(t.shape(), 5);
      for (int64_t i = 0; i < t.numel(); ++i)
        if (keep.data<float>()[i] < 0.9f) t.data<float>()[i] = 0;
    }
  model->load_state_dict(state);
  const std::string onnx = (dir / "cnn90.onnx").string();
  neurite::engine::save_onnx(neurite::engine::trace(*model, Tensor::zeros({1, 1, 12, 12})), onnx);
  auto kernels = [&] {
    const Result r = neurite_cli("bench " + onnx + " --batch-size 4 --threads 2 --time 0.05 --warmup 0 --deterministic --onnxruntime off --json");
    EXPECT_EQ(r.code, 0) << r.out;
    std::vector<std::string> out;
    const auto j = nlohmann::json::parse(r.out);
    for (const auto& step : j["steps"])
      out.push_back(step["kernel"].get<std::string>() + " group " + std::to_string(step["group"].get<int>()));
    return out;
  };
  const auto plan = kernels();
  EXPECT_EQ(kernels(), plan);
  // A sweep of batch sizes, ONNX Runtime on the same file beside each row, and a chart of both.
  const std::string chart = (dir / "speed.svg").string();
  Result r = neurite_cli("bench " + onnx + " --batch-sizes 1,4 --threads 2 --time 0.05 --warmup 0 --onnxruntime on " +
                         "--plot " + chart + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto sweep = nlohmann::json::parse(r.out);
  ASSERT_EQ(sweep["runs"].size(), 2u);
  EXPECT_EQ(sweep["runs"][1]["batch_size"], 4);
  EXPECT_EQ(sweep["runs"][1]["inputs"]["input"], (std::vector<int64_t>{4, 1, 12, 12}));
  EXPECT_GE(sweep["runs"][0]["latency_ms"]["std"].get<double>(), 0.0);
  EXPECT_GT(sweep["runs"][1]["onnxruntime"]["items_per_sec"].get<double>(), 0.0);
  EXPECT_GT(sweep["runs"][1]["speedup_vs_onnxruntime"].get<double>(), 0.0);
  EXPECT_TRUE(fs::exists(chart));
  // Two streams at once share the threads; their items count together.
  r = neurite_cli("bench " + onnx + " --batch-size 2 --scenario async --streams 2 --threads 2 --time 0.05 --warmup 0 " +
                  "--onnxruntime off --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto async = nlohmann::json::parse(r.out);
  EXPECT_EQ(async["scenario"], "async");
  EXPECT_EQ(async["streams"], 2);
  EXPECT_GT(async["items_per_sec"].get<double>(), 0.0);
  int sparse = 0;
  for (const auto& k : plan) sparse += k.find("csr") != std::string::npos || k.find("4x1") != std::string::npos;
  EXPECT_GE(sparse, 2) << "90 %-sparse layers run sparse kernels: " << fmt::format("{}", fmt::join(plan, "; "));
}

TEST(Cli, BadInputGivesOneClearLineAndANonZeroExit) {
  const fs::path dir = temp_dir("cli_errors");
  std::ofstream(dir / "junk.h5") << "junk";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"eval " + (dir / "none.h5").string() + " --data fashion-mnist", "no such checkpoint"},
      {"info " + (dir / "junk.h5").string(), "not a Neurite checkpoint"},
      {"train resnet21 --data fashion-mnist --out " + dir.string(), "unknown model 'resnet21'"},
      {"train cnn --data imagenet --out " + dir.string(), "unknown data spec 'imagenet'"},
      {"train cnn --data fashion-mnist --optimizer lion --out " + dir.string(), "--optimizer is 'lion'"},
      {"train --resume " + (dir / "nothing").string(), "no args.json"},
      {"bench-train mlp --steps 0", "--steps 0 must be >= 1"},
      {"prune " + (dir / "none.h5").string() + " --sparsity 0.5 --out x.h5", "no such checkpoint"},
      {"train cnn --epochs many", "--epochs"},
      {"frobnicate", "frobnicate"},
  };
  for (const auto& [args, message] : cases) {
    const Result r = neurite_cli(args);
    EXPECT_NE(r.code, 0) << args;
    EXPECT_NE(r.out.find(message), std::string::npos) << args << " -> " << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << args << " -> " << r.out;
  }
}

// A cnn trained on the bands in `train` (`options`: epochs, lr) into `run`,
// then pruned to 90 %: run/pruned.h5.
std::string pruned_cnn(const std::string& train, const std::string& run, const std::string& options) {
  Result r = neurite_cli("train cnn --data h5:" + train + " --batch-size 20 " + options + " --out " + run);
  EXPECT_EQ(r.code, 0) << r.out;
  r = neurite_cli("prune " + run + "/checkpoint.h5 --sparsity 0.9 --out " + run + "/pruned.h5");
  EXPECT_EQ(r.code, 0) << r.out;
  return run + "/pruned.h5";
}

// One-shot quantisation of a pruned checkpoint: calibrated, top-1 kept, the
// zeros kept, exported as QDQ pairs that infer runs as the checkpoint does.
TEST(Cli, QuantizeCalibratesKeepsTheZerosAndExportsQdq) {
  const fs::path dir = temp_dir("cli_quantize");
  const std::string train = write_bands(dir, 120, 21), run = (dir / "run").string();
  pruned_cnn(train, run, "--epochs 2 --lr 0.05");
  const std::string q = run + "/q.h5";
  Result r;
  r = neurite_cli("quantize " + run + "/pruned.h5 --data h5:" + train +
                  " --calibration-batches 4 --batch-size 16 --json --out " + q);
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["quantizers"], 8) << "inputs and weights of two convolutions and two linear layers";
  EXPECT_EQ(j["calibration_batches"], 4);
  EXPECT_GE(j["top1_after"].get<double>(), j["top1_before"].get<double>() - 0.05) << r.out;

  r = neurite_cli("info " + q + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NEAR(nlohmann::json::parse(r.out)["parameters"][0]["sparsity"].get<double>(), 0.9, 0.01);

  const std::string onnx = (dir / "q.onnx").string(), x = (dir / "x.npy").string();
  r = neurite_cli("export " + q + " --out " + onnx);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(neurite::testing::onnx_checker_accepts({onnx}));
  const auto graph = neurite::engine::load_onnx(onnx);
  EXPECT_EQ(std::count_if(graph.nodes.begin(), graph.nodes.end(),
                          [](const auto& n) { return n.op == neurite::engine::OpKind::quantize_linear; }),
            8);
  neurite::autograd::save_npy(x, Tensor::rand({5, 1, 12, 12}, 3));
  std::vector<Tensor> outputs;
  for (const std::string& model : {q, onnx}) {
    const std::string y = (dir / "y.npy").string();
    r = neurite_cli("infer " + model + " --input " + x + " --output " + y + " --threads 1");
    ASSERT_EQ(r.code, 0) << r.out;
    outputs.push_back(neurite::autograd::load_npy(y));
  }
  for (int64_t i = 0; i < 15; ++i) EXPECT_NEAR(outputs[1].data<float>()[i], outputs[0].data<float>()[i], 1e-4);

  r = neurite_cli("quantize " + q + " --data h5:" + train + " --out " + run + "/qq.h5");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("is quantised already"), std::string::npos) << r.out;
  r = neurite_cli("quantize " + run + "/pruned.h5 --data h5:" + train +
                  " --recipe " NEURITE_SOURCE_DIR "/recipes/library/gmp90_transfer.yaml --out " + run + "/qq.h5");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("quantize runs QuantizationModifiers only"), std::string::npos) << r.out;
}

TEST(Cli, ExportAndInferAgreeWithTheCheckpoint) {
  const fs::path dir = temp_dir("cli_export");
  const std::string train = write_bands(dir, 40, 11), run = (dir / "run").string();
  const std::string ckpt = pruned_cnn(train, run, "--epochs 1"), onnx17 = (dir / "m17.onnx").string(),
                    onnx13 = (dir / "m13.onnx").string();
  Result r = neurite_cli("export " + ckpt + " --out " + onnx17);
  ASSERT_EQ(r.code, 0) << r.out;
  r = neurite_cli("export " + ckpt + " --out " + onnx13 + " --opset 13");
  ASSERT_EQ(r.code, 0) << r.out;
  r = neurite_cli("info " + onnx17 + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto info = nlohmann::json::parse(r.out);
  bool seen = false;  // the checkpoint's names, with the masks multiplied in
  for (const auto& row : info["parameters"])
    if (row["name"] == "features.0.weight") {
      seen = true;
      EXPECT_NEAR(row["sparsity"].get<double>(), 0.9, 0.01);
    }
  EXPECT_TRUE(seen) << r.out;

  const std::string x = (dir / "x.npy").string();
  neurite::autograd::save_npy(x, Tensor::rand({5, 1, 12, 12}, 3));
  std::vector<Tensor> outputs;
  for (const std::string& model : {ckpt, onnx17, onnx13}) {
    const std::string y = (dir / "y.npy").string();
    r = neurite_cli("infer " + model + " --input " + x + " --output " + y + " --threads 1");
    ASSERT_EQ(r.code, 0) << r.out;
    outputs.push_back(neurite::autograd::load_npy(y));
    ASSERT_EQ(outputs.back().shape(), (neurite::autograd::Shape{5, 3})) << model;
  }
  for (int64_t i = 0; i < 15; ++i) {
    EXPECT_NEAR(outputs[1].data<float>()[i], outputs[0].data<float>()[i], 1e-5);
    EXPECT_NEAR(outputs[2].data<float>()[i], outputs[0].data<float>()[i], 1e-5);
  }

  // The engine in both modes gives the checkpoint's outputs too.
  for (const char* mode : {"columns", "layers"}) {
    const std::string y = (dir / "y_engine.npy").string();
    r = neurite_cli("infer " + onnx17 + " --input " + x + " --output " + y + " --mode " + mode);
    ASSERT_EQ(r.code, 0) << r.out;
    const Tensor got = neurite::autograd::load_npy(y);
    for (int64_t i = 0; i < 15; ++i) EXPECT_NEAR(got.data<float>()[i], outputs[0].data<float>()[i], 1e-5) << mode;
  }

  // neurite bench: the JSON figures, and --profile's time per step or column group.
  for (const char* mode : {"columns", "layers"}) {
    const auto start = std::chrono::steady_clock::now();
    r = neurite_cli("bench " + onnx17 + " --batch-size 3 --threads 2 --time 0.2 --warmup 0.2 --profile --onnxruntime off --json --mode " +
                    mode);
    const double wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    ASSERT_EQ(r.code, 0) << r.out;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_GT(j["items_per_sec"].get<double>(), 0);
    for (const char* key : {"mean", "p50", "p90", "p99"}) EXPECT_GT(j["latency_ms"][key].get<double>(), 0) << key;
    EXPECT_LE(j["latency_ms"]["p50"].get<double>(), j["latency_ms"]["p99"].get<double>());
    EXPECT_GE(j["iterations"].get<int64_t>(), 3);
    EXPECT_EQ(j["batch_size"], 3);
    EXPECT_EQ(j["threads"], 2);
    EXPECT_EQ(j["mode"], mode);
    EXPECT_FALSE(j["profile"].empty());
    // The timed runs fill the 0.2 s window after 0.2 s of warm-up: the loop stops
    // at the first run that ends past it, so they add up to 0.2 s plus at most
    // one run, less the loop's own overhead. Throughput is their items over that.
    const double iterations = static_cast<double>(j["iterations"].get<int64_t>());
    const double runs_ms = iterations * j["latency_ms"]["mean"].get<double>();
    EXPECT_GT(runs_ms, 0.7 * 200);
    EXPECT_LT(runs_ms, 1.5 * 200);
    EXPECT_LT(runs_ms + 200, wall_ms) << "warm-up and timed runs cannot take longer than the whole process";
    EXPECT_GT(j["items_per_sec"].get<double>(), 3 * iterations / (1.5 * 0.2));
    EXPECT_LT(j["items_per_sec"].get<double>(), 3 * iterations / (0.7 * 0.2));
  }
  r = neurite_cli("bench " + ckpt + " --time 0.1 --warmup 0");  // a checkpoint runs too, with a readable report
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("items/s"), std::string::npos) << r.out;

  // Bad input: one line naming the file, value or shape at fault, and a non-zero exit.
  const std::string bytes = [&] {
    std::ifstream in(onnx17, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  std::ofstream(dir / "half.onnx", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  std::ofstream(dir / "text.npy") << "1 2 3";
  neurite::autograd::save_npy((dir / "wide.npy").string(), Tensor::rand({2, 1, 14, 14}, 4));
  neurite::autograd::save_npy((dir / "ids.npy").string(), Tensor::randint({2, 1, 12, 12}, 4, 0, 9));
  const std::string to = " --output " + (dir / "out.npy").string();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"infer " + (dir / "half.onnx").string() + " --input " + x + to, "half.onnx"},
      {"infer " + onnx17 + " --input " + (dir / "text.npy").string() + to, "text.npy"},
      {"infer " + onnx17 + " --input " + (dir / "wide.npy").string() + to,
       "'input' is [2,1,14,14], the graph expects [-1,1,12,12]"},
      {"infer " + onnx17 + " --input " + x + to + " --mode tiles", "mode 'tiles': expected columns or layers"},
      {"bench " + onnx17 + " --batch-size 0", "--batch-size is 0"},
      {"bench " + onnx17 + " --mode tiles", "mode 'tiles'"},
      {"bench " + onnx17 + " --format 2x2", "--format 2x2"},
      {"bench " + onnx17 + " --time 0", "--time must be > 0"},
      {"bench " + (dir / "half.onnx").string(), "half.onnx"},
      {"infer " + onnx17 + " --input " + (dir / "ids.npy").string() + to, "'input' is int64, the graph expects float32"},
      {"infer " + onnx17 + " --input " + (dir / "none.npy").string() + to, "none.npy"},
      {"export " + ckpt + " --out " + onnx17 + " --opset 12", "--opset is 12"},
      {"export " + (dir / "none.h5").string() + " --out " + onnx17, "no such checkpoint"},
  };
  for (const auto& [args, message] : cases) {
    r = neurite_cli(args);
    EXPECT_NE(r.code, 0) << args;
    EXPECT_NE(r.out.find(message), std::string::npos) << args << " -> " << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << args << " -> " << r.out;
  }
}

TEST(Cli, InfoReportsAnOnnxModelsOpSupportAndSparsity) {
  using namespace neurite::engine;
  const fs::path dir = temp_dir("cli_info_onnx");
  Graph g;
  g.inputs.push_back({"x", DataType::float32, {-1, 8}});
  Tensor w = Tensor::randn({4, 8}, 1);
  for (int64_t i = 0; i < w.numel(); i += 2) w.data<float>()[i] = 0;  // half zeros
  g.initializers.emplace("fc.weight", w);
  g.nodes.push_back({.op = OpKind::gemm, .name = "fc", .inputs = {"x", "fc.weight"}, .outputs = {"h"},
                     .attributes = {{"transB", int64_t{1}}}});
  g.nodes.push_back({.op = OpKind::relu, .name = "relu", .inputs = {"h"}, .outputs = {"y"}});
  g.outputs.push_back({"y"});
  const std::string good = (dir / "m.onnx").string(), odd = (dir / "odd.onnx").string();
  save_onnx(g, good);
  Result r = neurite_cli("info " + good + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto info = nlohmann::json::parse(r.out);
  EXPECT_EQ(info["total"]["nodes"], 2);
  EXPECT_EQ(info["total"]["supported_fraction"], 1.0);
  EXPECT_EQ(info["parameters"][0]["name"], "fc.weight");
  EXPECT_DOUBLE_EQ(info["parameters"][0]["sparsity"].get<double>(), 0.5);

  std::string bytes = to_onnx(g);  // an op we do not support, same length so still a valid file
  bytes.replace(bytes.find("Relu"), 4, "Relx");
  std::ofstream(odd, std::ios::binary) << bytes;
  r = neurite_cli("info " + odd);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("2 nodes, 1 supported (50.0%); not supported: Relx (relu)"), std::string::npos) << r.out;

  std::ofstream(dir / "junk.onnx") << "junk";
  r = neurite_cli("info " + (dir / "junk.onnx").string());
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("junk.onnx: not an ONNX model"), std::string::npos) << r.out;
}

}  // namespace

namespace {

// More threads than the machine has cores (16): infer gives the one-thread
// output (to rounding: work split otherwise sums otherwise), bench measures.
TEST(Cli, InferAndBenchWorkWithMoreThreadsThanCores) {
  const fs::path dir = temp_dir("cli_threads");
  const std::string golden = std::string(NEURITE_SOURCE_DIR) + "/tests/golden/onnx/";
  const std::string model = golden + "resnet_opset17.onnx", input = golden + "resnet_input.npy";
  std::vector<Tensor> outputs;
  for (const char* threads : {"1", "16"}) {
    const std::string out = (dir / (std::string(threads) + ".npy")).string();
    const Result r = neurite_cli("infer " + model + " --input " + input + " --out " + out + " --threads " + threads);
    ASSERT_EQ(r.code, 0) << r.out;
    outputs.push_back(neurite::autograd::load_npy(out));
  }
  ASSERT_EQ(outputs[0].shape(), outputs[1].shape());
  for (int64_t i = 0; i < outputs[0].numel(); ++i)
    EXPECT_NEAR(outputs[0].data<float>()[i], outputs[1].data<float>()[i], 1e-4f) << i;
  const Result r = neurite_cli("bench " + model + " --threads 16 --time 0.2 --warmup 0 --onnxruntime off --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_GT(nlohmann::json::parse(r.out)["items_per_sec"].get<double>(), 0.0);
}

}  // namespace
