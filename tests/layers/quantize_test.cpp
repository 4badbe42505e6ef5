// Fake quantisers and their observers against PyTorch 1.13
// (tests/golden/make_golden.py), quantised layers, and their state.
#include <gtest/gtest.h>

#include "neurite/autograd/ops.h"
#include "neurite/error.h"
#include "neurite/layers/layers.h"
#include "neurite/layers/models.h"
#include "neurite/layers/quantize.h"
#include "support/expect_error.h"
#include "support/golden.h"

namespace neurite::layers {
namespace {

using testing::expect_close;
using testing::golden;

// Three batches through a FakeQuantize observing as SparseML configures it:
// the moving averages, the grids derived from them and the last output agree
// with PyTorch's to the bit.
TEST(FakeQuantize, ObserversAndGridsMatchPyTorch) {
  for (const auto& [c, args] : {std::pair{"observer_activation", QuantArgs{.symmetric = false}},
                                std::pair{"observer_weight", QuantArgs{.symmetric = true, .per_channel = true}}}) {
    SCOPED_TRACE(c);
    const Tensor x0 = golden(c, "x0");
    FakeQuantize fq(args, x0.size(0));
    Variable y;
    for (const char* b : {"x0", "x1", "x2"}) y = fq.forward(Variable(golden(c, b)));
    expect_close(fq.state_dict().at("min_val"), golden(c, "min_val"), "min_val", 0, 0);
    expect_close(fq.state_dict().at("max_val"), golden(c, "max_val"), "max_val", 0, 0);
    expect_close(fq.scale(), golden(c, "scale"), "scale", 0, 0);
    expect_close(fq.zero_point().to(autograd::Dtype::f32), golden(c, "zero_point").to(autograd::Dtype::f32),
                 "zero_point", 0, 0);
    expect_close(y.data(), golden(c, "y"), "y", 0, 0);
  }
}

TEST(FakeQuantize, FrozenOrEvaluatingItKeepsItsGrid) {
  FakeQuantize fq(QuantArgs{});
  fq.forward(Variable(Tensor::from_data({2}, std::vector<float>{-1.0f, 2.0f})));
  const float scale = fq.scale().data<float>()[0];
  fq.enable_observer(false);
  fq.forward(Variable(Tensor::from_data({2}, std::vector<float>{-10.0f, 20.0f})));
  EXPECT_EQ(fq.scale().data<float>()[0], scale);
  fq.enable_observer(true);
  fq.eval();
  Variable y = fq.forward(Variable(Tensor::from_data({2}, std::vector<float>{-10.0f, 20.0f})));
  EXPECT_EQ(fq.scale().data<float>()[0], scale);
  // Clamped to the grid of [-1, 2]: the ends of its range.
  EXPECT_NEAR(y.data().data<float>()[0], -1.0f, scale);
  EXPECT_NEAR(y.data().data<float>()[1], 2.0f, scale);
  fq.train();
  fq.forward(Variable(Tensor::from_data({2}, std::vector<float>{-10.0f, 20.0f})));
  EXPECT_GT(fq.scale().data<float>()[0], scale);
}

// Symmetric weights have zero point 0: a pruned weight stays exactly zero,
// so pruning and quantisation compound.
TEST(QuantizableLayer, PrunedWeightsStayZeroAndGradientsFlowThrough) {
  Linear fc(6, 4);
  Tensor mask = Tensor::ones({4, 6});
  for (int64_t i = 0; i < 24; i += 3) mask.data<float>()[i] = 0;
  fc.weight.set_mask(mask);
  fc.quantize(QuantScheme{});
  ASSERT_TRUE(fc.input_quant && fc.weight_quant && !fc.output_quant);
  Variable x(autograd::Tensor::randn({5, 6}, 1), true);
  Variable y = fc.forward(x);
  // The output is the product of the two fake-quantised operands.
  const Variable wq = autograd::fake_quantize(fc.weight.value(), fc.weight_quant->scale(), fc.weight_quant->zero_point(),
                                              -128, 127);
  for (int64_t i = 0; i < 24; i += 3) EXPECT_EQ(wq.data().data<float>()[i], 0.0f);
  const Variable xq = autograd::fake_quantize(x, fc.input_quant->scale(), fc.input_quant->zero_point(), -128, 127);
  expect_close(y.data(), autograd::linear(xq, wq, fc.bias->value()).data(), "y", 1e-6, 1e-6);
  autograd::sum(y).backward();
  EXPECT_TRUE(x.grad().defined());
  EXPECT_TRUE(fc.weight.value().grad().defined());
}

// A quantised model's state dict rebuilds its quantisers on a fresh model,
// observers and switches included: what checkpoints and resume rely on.
TEST(QuantizableLayer, StateDictRestoresTheQuantizers) {
  auto a = models::make_model("cnn");
  QuantScheme per_channel;
  per_channel.weights->per_channel = true;
  per_channel.output_activations = QuantArgs{.num_bits = 6};
  int quantised = 0;
  auto walk = [&](auto& self, Module& m) -> void {
    if (auto* q = dynamic_cast<QuantizableLayer*>(&m)) {
      q->quantize(per_channel);
      ++quantised;
    }
    for (auto& [n, child] : m.named_children()) self(self, *child);
  };
  walk(walk, *a);
  ASSERT_GT(quantised, 2);
  a->forward(Variable(autograd::Tensor::randn({2, 1, 28, 28}, 2)));
  fake_quantizers(*a).front().second->enable_observer(false);
  auto b = models::make_model("cnn");
  EXPECT_THROW(b->load_state_dict(a->state_dict()), ValueError);
  restore_quantizers(*b, a->state_dict());
  b->load_state_dict(a->state_dict());
  EXPECT_EQ(fake_quantizers(*b).size(), fake_quantizers(*a).size());
  EXPECT_FALSE(fake_quantizers(*b).front().second->observer_enabled());
  a->eval(), b->eval();
  const Tensor x = autograd::Tensor::randn({3, 1, 28, 28}, 3);
  expect_close(b->forward(Variable(x)).data(), a->forward(Variable(x)).data(), "restored model", 0, 0);
}

TEST(QuantizableLayer, BadArgumentsNameThemselves) {
  Linear fc(3, 2);
  QuantScheme s;
  s.input_activations->per_channel = true;
  testing::expect_error<ValueError>([&] { fc.quantize(s); }, {"per-channel grids are for weights"});
  testing::expect_error<ValueError>([] { FakeQuantize(QuantArgs{.num_bits = 9}); }, {"num_bits 9"});
  fc.quantize(QuantScheme{});
  testing::expect_error<StateError>([&] { fc.quantize(QuantScheme{}); }, {"quantised already"});
}

}  // namespace
}  // namespace neurite::layers
