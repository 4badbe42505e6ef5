// Magnitude masks (unstructured, blocks, N:M, filters, channels; layerwise and
// global), GMP schedules, selectors and one-shot pruning.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include <fmt/format.h>

#include "neurite/error.h"
#include "neurite/layers/models.h"
#include "neurite/pruning/pruning.h"
#include "support/expect_error.h"

namespace neurite::pruning {
namespace {

int64_t zeros(const Tensor& m) {
  return std::count(m.data<float>(), m.data<float>() + m.numel(), 0.0f);
}

TEST(Schedule, MatchesTheWorkedExampleOfRecipesMd) {
  const double want[] = {0.050, 0.416, 0.638, 0.752, 0.794, 0.800};
  for (int e = 0; e <= 5; ++e)
    EXPECT_NEAR(scheduled_sparsity(e, 0, 5, 0.05, 0.80, Interpolation::cubic), want[e], 5e-4) << e;
  EXPECT_DOUBLE_EQ(scheduled_sparsity(2.5, 0, 5, 0, 0.8, Interpolation::linear), 0.4);
  EXPECT_NEAR(scheduled_sparsity(2.5, 0, 5, 0, 0.8, Interpolation::inverse_cubic), 0.8 * (1 - std::cbrt(0.5)), 1e-12);
  EXPECT_DOUBLE_EQ(scheduled_sparsity(-1, 0, 5, 0.1, 0.8, Interpolation::cubic), 0.1);  // clamped before the start
  EXPECT_DOUBLE_EQ(scheduled_sparsity(9, 0, 5, 0.1, 0.8, Interpolation::cubic), 0.8);   // and after the end
  // A window that starts later: the ramp runs over [start, end), not [0, end).
  EXPECT_DOUBLE_EQ(scheduled_sparsity(3, 2, 4, 0, 0.8, Interpolation::linear), 0.4);
  EXPECT_DOUBLE_EQ(scheduled_sparsity(2, 2, 4, 0.2, 0.8, Interpolation::cubic), 0.2);
  EXPECT_NEAR(scheduled_sparsity(3, 2, 4, 0, 0.8, Interpolation::cubic), 0.8 * (1 - 0.125), 1e-12);
  EXPECT_THROW(parse_interpolation("quadratic"), ValueError);
}

TEST(MagnitudeMask, UnstructuredPrunesExactlyTheSmallest) {
  const Tensor w = Tensor::randn({7, 13}, 1);
  const Tensor m = magnitude_mask(w, {}, 0.6, {});
  EXPECT_EQ(zeros(m), std::llround(0.6 * 91));
  float largest_pruned = 0, smallest_kept = 1e9;
  for (int64_t i = 0; i < w.numel(); ++i) {
    const float a = std::abs(w.data<float>()[i]);
    if (m.data<float>()[i] == 0) largest_pruned = std::max(largest_pruned, a);
    else smallest_kept = std::min(smallest_kept, a);
  }
  EXPECT_LE(largest_pruned, smallest_kept);
}

TEST(MagnitudeMask, MasksOnlyGrow) {
  Tensor w = Tensor::randn({10, 10}, 2);
  Tensor previous = Tensor::ones({10, 10});
  int64_t largest = 0;
  for (int64_t i = 0; i < 100; ++i)
    if (std::abs(w.data<float>()[i]) > std::abs(w.data<float>()[largest])) largest = i;
  previous.data<float>()[largest] = 0;  // pruned before, even though it is the largest now
  const Tensor m = magnitude_mask(w, previous, 0.3, {});
  EXPECT_EQ(m.data<float>()[largest], 0.0f);
  EXPECT_EQ(zeros(m), 30);
  EXPECT_EQ(zeros(magnitude_mask(w, m, 0.1, {})), 30);  // a lower target never revives weights
}

TEST(MagnitudeMask, BlocksAreWholeAndNearTheTarget) {
  // A conv weight's blocks span (output, input channel) at one kernel position,
  // as SparseML's: 6 input channels leave the last block column partial.
  const Tensor w = Tensor::randn({16, 6, 3, 3}, 3);
  for (const std::string text : {"4x1", "[1,4]", "block4", "2x2"}) {
    const MaskType t = MaskType::parse(text);
    const Tensor m = magnitude_mask(w, {}, 0.5, t);
    EXPECT_NEAR(static_cast<double>(zeros(m)) / m.numel(), 0.5, 0.03) << text;
    auto at = [&](int64_t o, int64_t i, int64_t tap) { return m.data<float>()[(o * 6 + i) * 9 + tap]; };
    for (int64_t o = 0; o < 16; ++o)
      for (int64_t i = 0; i < 6; ++i)
        for (int64_t tap = 0; tap < 9; ++tap)
          EXPECT_EQ(at(o, i, tap), at(o / t.rows * t.rows, i / t.cols * t.cols, tap)) << text << " at " << o << "," << i << "," << tap;
  }
  // A kernel position's blocks do not span taps: some tap of a kept channel is pruned.
  const Tensor m = magnitude_mask(w, {}, 0.5, MaskType::parse("1x4"));
  bool taps_differ = false;
  for (int64_t tap = 1; tap < 9; ++tap) taps_differ = taps_differ || m.data<float>()[tap] != m.data<float>()[0];
  EXPECT_TRUE(taps_differ);
  // A matrix's blocks are plain (rows, columns) tiles.
  const Tensor w2 = Tensor::randn({8, 10}, 5);
  const Tensor m2 = magnitude_mask(w2, {}, 0.5, MaskType::parse("2x4"));
  for (int64_t r = 0; r < 8; ++r)
    for (int64_t c = 0; c < 10; ++c) EXPECT_EQ(m2.data<float>()[r * 10 + c], m2.data<float>()[r / 2 * 20 + c / 4 * 4]);
}

TEST(MagnitudeMask, NOfMKeepsAtMostNOfEveryM) {
  const Tensor w = Tensor::randn({6, 8}, 4);
  const MaskType t = MaskType::parse("2:4");
  for (auto [s, pruned_per_group] : {std::pair{0.25, 1}, {0.5, 2}, {0.9, 2}}) {
    const Tensor m = magnitude_mask(w, {}, s, t);
    for (int64_t g = 0; g < 12; ++g) {
      const int64_t z = std::count(m.data<float>() + 4 * g, m.data<float>() + 4 * g + 4, 0.0f);
      EXPECT_EQ(z, pruned_per_group) << "sparsity " << s << " group " << g;
    }
  }
  EXPECT_THROW(magnitude_mask(Tensor::randn({2, 6}, 1), {}, 0.5, t), ShapeError);
}

// The mask that keeps the `keep` largest |w| of every run of m consecutive
// weights of a row (rows = dimension 0, the rest flattened), computed here
// independently of the library: sort each group by magnitude, largest first.
Tensor keep_largest_per_group(const Tensor& w, int64_t m, int64_t keep) {
  Tensor want = Tensor::zeros(w.shape());
  const float* pw = w.data<float>();
  for (int64_t start = 0; start < w.numel(); start += m) {
    std::vector<int64_t> idx(static_cast<size_t>(m));
    for (int64_t j = 0; j < m; ++j) idx[j] = start + j;
    std::sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return std::abs(pw[a]) > std::abs(pw[b]); });
    for (int64_t j = 0; j < keep; ++j) want.data<float>()[idx[j]] = 1.0f;
  }
  return want;
}

void expect_same_mask(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  for (int64_t i = 0; i < got.numel(); ++i)
    EXPECT_EQ(got.data<float>()[i], want.data<float>()[i]) << what << " at flat index " << i;
}

// 2:4 alone cannot tell "keep N" from "prune N" (M - N == N): 1:4, 3:4, 2:8
// and 1:2 can. At a sparsity past (M-N)/M exactly N of every M survive.
TEST(MagnitudeMask, NOfMKeepsTheNLargestOfEveryMConsecutiveWeights) {
  const Tensor linear = Tensor::randn({5, 16}, 11);  // mixed signs: magnitudes rank, not values
  const Tensor conv = Tensor::randn({4, 2, 2, 2}, 12);  // a row is 2*2*2 = 8 weights, flattened
  for (const auto& [text, n, m] : {std::tuple{"1:4", 1, 4}, {"3:4", 3, 4}, {"2:8", 2, 8}, {"1:2", 1, 2}, {"5:8", 5, 8}})
    for (const Tensor* w : {&linear, &conv}) {
      const std::string what = std::string(text) + " on " + autograd::to_string(w->shape());
      const Tensor got = magnitude_mask(*w, {}, 0.95, MaskType::parse(text));
      expect_same_mask(got, keep_largest_per_group(*w, m, n), what);
      EXPECT_DOUBLE_EQ(sparsity_of(got), static_cast<double>(m - n) / m) << what;
      // Global N:M is the same per-row rule.
      expect_same_mask(global_magnitude_masks({*w}, {}, 0.95, MaskType::parse(text)).front(), got, what + " global");
    }
}

// Below (M-N)/M the GMP ramp prunes round(sparsity * M) of every M, the smallest first.
TEST(MagnitudeMask, NOfMRampsTowardsNAndNeverPastIt) {
  const Tensor w = Tensor::randn({3, 16}, 13);
  struct Case { const char* text; int64_t m; double sparsity; int64_t pruned; };
  for (const Case c : {Case{"1:4", 4, 0.25, 1}, {"1:4", 4, 0.5, 2}, {"1:4", 4, 0.7, 3}, {"3:4", 4, 0.25, 1},
                       {"3:4", 4, 0.5, 1}, {"2:8", 8, 0.5, 4}, {"2:8", 8, 0.7, 6}, {"2:8", 8, 0.8, 6}}) {
    const std::string what = fmt::format("{} at sparsity {}", c.text, c.sparsity);
    const Tensor got = magnitude_mask(w, {}, c.sparsity, MaskType::parse(c.text));
    expect_same_mask(got, keep_largest_per_group(w, c.m, c.m - c.pruned), what);
    EXPECT_DOUBLE_EQ(sparsity_of(got), static_cast<double>(c.pruned) / c.m) << what;
  }
}

// A weight pruned before stays pruned and counts among the pruned of its group.
TEST(MagnitudeMask, NOfMKeepsPreviousZerosAndCountsThem) {
  const Tensor w = Tensor::randn({2, 8}, 14);
  const MaskType t = MaskType::parse("1:4");
  Tensor previous = Tensor::ones({2, 8});
  const Tensor fresh = magnitude_mask(w, {}, 0.9, t);
  int64_t largest = -1;  // the survivor of group 1 (flat 4..7) without a previous mask
  for (int64_t i = 4; i < 8; ++i)
    if (fresh.data<float>()[i] == 1.0f) largest = i;
  ASSERT_GE(largest, 0);
  previous.data<float>()[largest] = 0.0f;
  const Tensor got = magnitude_mask(w, previous, 0.9, t);
  EXPECT_EQ(got.data<float>()[largest], 0.0f);
  // Group 1 keeps the largest of the other three; groups 0, 2, 3 are as before.
  Tensor w2 = w.clone();
  w2.data<float>()[largest] = 0.0f;
  expect_same_mask(got, keep_largest_per_group(w2, 4, 1), "previous mask");
  EXPECT_EQ(zeros(got), 3 * 4);
  // A lower target (one of every four) never revives the three pruned before.
  expect_same_mask(magnitude_mask(w, got, 0.25, t), got, "lower target");
}

TEST(MagnitudeMask, FiltersAndChannelsArePrunedWhole) {
  Tensor w = Tensor::randn({8, 4, 3, 3}, 5);
  for (int64_t i = 0; i < 36; ++i) w.data<float>()[2 * 36 + i] *= 0.01f;  // filter 2 is tiny
  const Tensor f = magnitude_mask(w, {}, 0.25, MaskType::parse("filter"));
  for (int64_t r = 0; r < 8; ++r) {
    const int64_t z = std::count(f.data<float>() + r * 36, f.data<float>() + r * 36 + 36, 0.0f);
    EXPECT_TRUE(z == 0 || z == 36) << r;
  }
  EXPECT_EQ(zeros(f), 2 * 36);
  EXPECT_EQ(f.data<float>()[2 * 36], 0.0f);
  const Tensor c = magnitude_mask(w, {}, 0.5, MaskType::parse("channel"));
  for (int64_t ch = 0; ch < 4; ++ch) {
    int64_t z = 0;
    for (int64_t r = 0; r < 8; ++r)
      for (int64_t k = 0; k < 9; ++k) z += c.data<float>()[r * 36 + ch * 9 + k] == 0.0f;
    EXPECT_TRUE(z == 0 || z == 72) << ch;
  }
  EXPECT_EQ(zeros(c), 2 * 72);
}

TEST(GlobalMasks, OneThresholdAcrossTensors) {
  const Tensor big = Tensor::randn({20, 10}, 6, 0, 1.0f), small = Tensor::randn({20, 10}, 7, 0, 1e-6f);
  const auto masks = global_magnitude_masks({big, small}, {}, 0.5, {});
  EXPECT_EQ(zeros(masks[1]), 200);  // the small tensor goes first
  EXPECT_EQ(zeros(masks[0]), 0);
  const auto layerwise = global_magnitude_masks({big}, {}, 0.5, {});
  EXPECT_EQ(zeros(layerwise[0]), 100);
}

TEST(MaskType, ParsesSparseMlsSpellingsAndRefusesOthers) {
  EXPECT_EQ(MaskType::parse("unstructured").str(), "unstructured");
  EXPECT_EQ(MaskType::parse("[4, 1]").str(), "4x1");
  EXPECT_EQ(MaskType::parse("1x4").str(), "1x4");
  EXPECT_EQ(MaskType::parse("2:4").str(), "2:4");
  for (const char* bad : {"4:2", "[0,4]", "triangle", ""}) EXPECT_THROW(MaskType::parse(bad), ValueError) << bad;
}

TEST(Select, SelectorsAndTheirErrors) {
  auto resnet = layers::models::make_model("resnet20", {.in_channels = 3, .image_size = 32});
  const auto prunable = select(*resnet, {"__ALL_PRUNABLE__"});
  EXPECT_EQ(prunable.size(), 19u + 2u + 1u);  // 3x3 convs, 1x1 shortcut convs, fc
  EXPECT_EQ(prunable.front(), "conv1.weight");
  EXPECT_EQ(prunable.back(), "fc.weight");
  EXPECT_EQ(select(*resnet, {"re:layer3\\..*conv2\\.weight", "fc.weight"}),
            (std::vector<std::string>{"layer3.0.conv2.weight", "layer3.1.conv2.weight", "layer3.2.conv2.weight",
                                      "fc.weight"}));
  testing::expect_error<ValueError>(
      [&] { select(*resnet, {"layer9.conv.weight"}); },
      {"selector 'layer9.conv.weight' matches no parameter; the parameters are: conv1.weight, bn1.weight"});
  // re: patterns match at the start of a name, as Python's re.match: SparseML's AC/DC card selects with these.
  EXPECT_EQ(select(*resnet, {"re:.*conv*"}), select(*resnet, {"re:.*conv.*"}));
  EXPECT_EQ(select(*resnet, {"re:fc"}), (std::vector<std::string>{"fc.weight", "fc.bias"}));
  EXPECT_THROW(select(*resnet, {"re:weight"}), ValueError);  // "weight" ends names, starts none
  EXPECT_THROW(select(*resnet, {"re:(("}), ValueError);
  auto transformer = layers::models::make_model("transformer", {.seq_len = 8});
  for (const auto& name : select(*transformer, {"__ALL_PRUNABLE__"}))
    EXPECT_EQ(name.find("embedding"), std::string::npos) << name;  // embeddings are not Linear or Conv
}

TEST(Select, LinearConvAndAttentionWeightsAddAttentionInputProjections) {
  auto resnet = layers::models::make_model("resnet20", {.in_channels = 3, .image_size = 32});
  EXPECT_EQ(linear_conv_and_attention_weights(*resnet), select(*resnet, {"__ALL_PRUNABLE__"}));
  auto transformer = layers::models::make_model("transformer", {.seq_len = 8});
  const auto names = linear_conv_and_attention_weights(*transformer);
  EXPECT_EQ(names, select(*transformer, {"__ALL_PRUNABLE__", "re:.*in_proj_weight"}));
  EXPECT_GT(std::count_if(names.begin(), names.end(), [](const auto& n) { return n.ends_with(".in_proj_weight"); }), 0);
}

TEST(Prune, OneShotReachesTheTargetAndKeepsMasks) {
  auto mlp = layers::models::make_model("mlp");
  const auto names = select(*mlp, {"__ALL_PRUNABLE__"});
  prune(*mlp, names, 0.9, {}, /*global=*/true);
  int64_t total = 0, zero = 0;
  for (const auto& [name, p] : mlp->named_parameters())
    if (std::find(names.begin(), names.end(), name) != names.end()) {
      EXPECT_TRUE(p->has_mask()) << name;
      total += p->numel();
      zero += zeros(p->value().data());
    }
  EXPECT_NEAR(static_cast<double>(zero) / static_cast<double>(total), 0.9, 1e-6);
  EXPECT_THROW(prune(*mlp, names, 1.0, {}, false), ValueError);
}

}  // namespace
}  // namespace neurite::pruning
