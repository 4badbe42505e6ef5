// Recipes: parsing (variables, eval, stages, Markdown, step fields), errors
// with file:line and field, the update plan, and the manager on a model.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "neurite/error.h"
#include "neurite/layers/models.h"
#include "neurite/recipes/manager.h"
#include "recipes/expression.h"
#include "support/temp_dir.h"
#include "support/expect_error.h"

namespace neurite::recipes {
namespace {

const char* kGmp = R"(version: 1.1.0
num_epochs: 6
pruning_end: eval(num_epochs - 1)
final: 0.8

modifiers:
  - !EpochRangeModifier
    start_epoch: 0
    end_epoch: eval(num_epochs)

  - !GMPruningModifier
    params: __ALL_PRUNABLE__
    init_sparsity: 0.05
    final_sparsity: final
    start_epoch: 0.0
    end_epoch: pruning_end
    update_frequency: 1.0
    mask_type: [4, 1]
)";

TEST(Expression, ArithmeticAsPython) {
  auto none = [](const std::string& n) -> double { throw ValueError("unresolved variable '" + n + "'"); };
  auto x = [](const std::string&) { return 7.0; };
  EXPECT_DOUBLE_EQ(detail::evaluate("1 + 2 * 3 ** 2", none), 19);
  EXPECT_DOUBLE_EQ(detail::evaluate("-2 ** 2", none), -4);
  EXPECT_DOUBLE_EQ(detail::evaluate("7 // 2 + 7 % 3 + -7 // 2", none), 3 + 1 - 4);
  EXPECT_DOUBLE_EQ(detail::evaluate("max(1, x, 3) - min(abs(-2), 5) + int(2.7) + round(2.5)", x), 7 - 2 + 2 + 2);
  for (const char* bad : {"1 +", "(1", "import os", "x.y", "1 / 0", "pow(2, 3)"})
    EXPECT_THROW(detail::evaluate(bad, x), ValueError) << bad;
}

double eval_constant(const std::string& text) {
  return detail::evaluate(text, [](const std::string& n) -> double { throw ValueError("no variable " + n); });
}

// Python's %: the result takes the sign of the divisor (C's fmod takes the
// dividend's). Each value is what Python 3 prints for the same expression.
TEST(Expression, ModuloTakesTheSignOfTheDivisorAsPython) {
  for (const auto& [text, want] : std::vector<std::pair<std::string, double>>{
           {"7 % 3", 1},       {"-7 % 3", 2},     {"7 % -3", -2},     {"-7 % -3", -1},    {"-7.5 % 2", 0.5},
           {"7.5 % -2", -0.5}, {"-6 % 3", 0},     {"6 % -3", 0},      {"5 % 2.5", 0},     {"-1e-20 % 1", 1.0},
           {"-2 % 5 * 2", 6},  {"10 - 7 % -3", 12}, {"-7 % 3 ** 2", 2}, {"2 ** -1 % 3", 0.5}})
    EXPECT_EQ(eval_constant(text), want) << text;
  EXPECT_THROW(eval_constant("1 % 0"), ValueError);
  EXPECT_THROW(eval_constant("-1 % (2 - 2)"), ValueError);
}

// Python's //: floor of the quotient, towards minus infinity (C truncates towards 0).
TEST(Expression, FloorDivisionRoundsTowardsMinusInfinityAsPython) {
  for (const auto& [text, want] : std::vector<std::pair<std::string, double>>{
           {"7 // 2", 3},      {"-7 // 2", -4},     {"7 // -2", -4}, {"-7 // -2", 3}, {"-7.5 // 2", -4},
           {"7.5 // -2", -4},  {"-0.5 // 1", -1},   {"-6 // 3", -2}})
    EXPECT_EQ(eval_constant(text), want) << text;
  EXPECT_THROW(eval_constant("1 // 0"), ValueError);
}

// Python computes float % exactly (fmod, then the divisor's sign) and // from
// it, so (a // b) * b + a % b == a; a - b * floor(a / b) rounds a / b first.
TEST(Expression, FloatModuloAndFloorDivisionAreExactAsPython) {
  EXPECT_EQ(eval_constant("1 % 0.1"), 0.09999999999999995);
  EXPECT_EQ(eval_constant("1 // 0.1"), 9.0);
  EXPECT_EQ(eval_constant("0.1 % 0.01"), 3.469446951953614e-18);
  EXPECT_EQ(eval_constant("0.1 // 0.01"), 10.0);
  EXPECT_EQ(eval_constant("-1 % 0.1"), 5.551115123125783e-17);
  EXPECT_EQ(eval_constant("-1 // 0.1"), -10.0);
}

TEST(Recipe, VariablesEvalAndFields) {
  const Recipe r = Recipe::parse(kGmp, "gmp.yaml");
  ASSERT_EQ(r.modifiers.size(), 2u);
  const Modifier& m = *r.modifiers[1];
  EXPECT_EQ(m.type, "GMPruningModifier");
  EXPECT_EQ(m.where, "gmp.yaml:11");
  EXPECT_DOUBLE_EQ(m.window.end_epoch, 5);
  EXPECT_DOUBLE_EQ(m.sparsity_ramp()->final_sparsity, 0.8);
  EXPECT_EQ(m.sparsity_ramp()->mask_type.str(), "4x1");
  EXPECT_EQ(r.epochs(), 6.0);
  const Recipe shorter = Recipe::parse(kGmp, "gmp.yaml", {{"num_epochs", "4"}, {"final", "0.9"}});
  EXPECT_DOUBLE_EQ(shorter.modifiers[1]->window.end_epoch, 3);
  EXPECT_DOUBLE_EQ(shorter.modifiers[1]->sparsity_ramp()->final_sparsity, 0.9);
  EXPECT_THROW(Recipe::parse(kGmp, "gmp.yaml", {{"nothing", "1"}}), ValueError);
}

TEST(Plan, CubicRampOfRecipesMd) {
  const Recipe r = Recipe::parse(R"(modifiers:
  - !GMPruningModifier {params: __ALL_PRUNABLE__, init_sparsity: 0.05, final_sparsity: 0.8,
                        start_epoch: 0, end_epoch: 5, update_frequency: 1}
)",
                                 "r.yaml");
  const auto p = plan(r, 1);
  ASSERT_EQ(p.size(), 1u);
  const double want[] = {0.050, 0.416, 0.638, 0.752, 0.794, 0.800};
  ASSERT_EQ(p[0].updates.size(), 6u);
  for (int e = 0; e <= 5; ++e) {
    EXPECT_DOUBLE_EQ(p[0].updates[e].epoch, e);
    EXPECT_NEAR(p[0].updates[e].sparsity, want[e], 5e-4);
  }
  const auto every_step = plan(Recipe::parse(R"(modifiers:
  - !GMPruningModifier {params: __ALL__, final_sparsity: 0.5, start_epoch: 1, end_epoch: 2, update_frequency: -1}
)",
                                             "r.yaml"),
                               4, 3.0);
  EXPECT_EQ(every_step[0].updates.size(), 5u);  // epochs 1, 1.25, 1.5, 1.75 and the end at 2
}

TEST(Recipe, MarkdownStagesAndSteps) {
  const Recipe r = Recipe::parse(R"(---
warm: 2
stage_one:
  modifiers:
    - !SetLearningRateModifier {learning_rate: 0.1, start_epoch: 0}
    - !EpochRangeModifier {start_epoch: 0, end_epoch: eval(warm)}
    - !GMPruningModifier {params: ["re:.*weight"], final_sparsity: 0.5, start_step: 10, end_step: 50,
                          update_frequency_steps: 10}
stage_two:
  pruning_modifiers:
    - !ConstantPruningModifier {params: __ALL_PRUNABLE__, start_epoch: 0, end_epoch: 3}
---
# Sparse transfer
Text after the front matter is documentation.
)",
                                 "r.md");
  ASSERT_EQ(r.modifiers.size(), 4u);
  EXPECT_DOUBLE_EQ(r.modifiers[3]->window.start_epoch, 2);  // stage two starts where stage one ends
  EXPECT_DOUBLE_EQ(r.modifiers[3]->window.end_epoch, 5);
  EXPECT_EQ(r.modifiers[2]->window.start_step, 10);  // steps count from the run's start: first stage only
  EXPECT_EQ(r.modifiers[2]->where, "r.md:7");
  EXPECT_TRUE(r.sets_learning_rate());
}

TEST(Recipe, CardsAsPublishedTextVariablesAndOldFieldsLoadAsSparseMLLoadsThem) {
  // A card that opens with a comment and a title: the YAML is the first block between fences.
  const Recipe card = Recipe::parse(R"(<!-- Licensed under the Apache License -->
# ResNet-50 pruned to 95 %

Some prose before the recipe.
---
inter_func: cubic
mask_type: "[1,4]"
num_epochs: 2
modifiers:
  - !EpochRangeModifier {start_epoch: 0, end_epoch: eval(num_epochs)}
  - !GMPruningModifier {params: __ALL_PRUNABLE__, init_sparsity: 0.05, final_sparsity: 0.9, start_epoch: 0,
                        end_epoch: 1, update_frequency: 0.5, inter_func: eval(inter_func),
                        mask_type: eval(mask_type), phased: False, score_type: magnitude}
  - !SetLearningRateModifier {learning_rate: 0.01, start_epoch: 0, constant_logging: false}
---
## Usage
```yaml
---
not: [a recipe
```
)",
                                    "card.md");
  ASSERT_EQ(card.modifiers.size(), 3u);
  EXPECT_EQ(card.modifiers[1]->where, "card.md:11");  // line numbers of the file
  const SparsityRamp* ramp = card.modifiers[1]->sparsity_ramp();
  ASSERT_NE(ramp, nullptr);
  EXPECT_EQ(ramp->inter_func, pruning::Interpolation::cubic);
  EXPECT_EQ(ramp->mask_type.str(), "1x4");  // eval() of a variable holding text
  // Old fields at any other value than their old default are refused by name.
  testing::expect_error<Error>(
      [] {
        Recipe::parse("modifiers:\n  - !GMPruningModifier {params: __ALL__, final_sparsity: 0.5, start_epoch: 0,\n"
                      "      end_epoch: 2, phased: true}\n",
                      "old.yaml");
      },
      {"old.yaml:3", "phased", "old default 'false'"});
  // Each old field belongs to the modifiers that had it, at its old default on each of them.
  testing::expect_error<Error>(
      [] {
        Recipe::parse("modifiers:\n  - !LearningRateModifier {lr_class: ExponentialLR, lr_kwargs: {gamma: 0.9}, "
                      "init_lr: 0.1, start_epoch: 0, constant_logging: true}\n",
                      "old.yaml");
      },
      {"constant_logging", "old default 'false'"});
  testing::expect_error<Error>(
      [] { Recipe::parse("modifiers:\n  - !EpochRangeModifier {start_epoch: 0, end_epoch: 1, phased: false}\n", "e.yaml"); },
      {"has no field 'phased'"});
  // A card without fences is refused, naming it.
  testing::expect_error<Error>([] { Recipe::parse("# only prose\n", "empty.md"); }, {"empty.md", "'---'"});
}

void expect_error(const std::string& yaml, const std::string& message);

// SparseML's loader rules, rule by rule, each as SparseML applies it.
TEST(Recipe, SparseMLLoaderRules) {
  // What SparseML writes when it saves a recipe loads: SetLearningRateModifier's end_epoch (ignored) and
  // constant_logging; the run is as long as the latest modifier end, rounded up (max_epochs).
  const Recipe saved = Recipe::parse(R"(modifiers:
  - !SetLearningRateModifier {learning_rate: 0.01, start_epoch: 0.0, end_epoch: -1.0, constant_logging: False}
  - !EpochRangeModifier {start_epoch: 0, end_epoch: 10}
  - !LearningRateFunctionModifier {lr_func: linear, init_lr: 0.01, final_lr: 0.001, start_epoch: 1, end_epoch: 12.5,
                                   param_groups: [0]}
)",
                                     "saved.yaml");
  EXPECT_EQ(saved.epochs(), 13.0);
  EXPECT_EQ(saved.modifiers[0]->window.end_epoch, -1);
  // A list variable handed to a field by eval(); an override that names a modifier field sets that field.
  const std::string gmp = R"(mt: [1, 4]
modifiers:
  - !GMPruningModifier {params: [], init_sparsity: 0.05, final_sparsity: 0.8, start_epoch: 0, end_epoch: 3,
                        update_frequency: 1, mask_type: eval(mt)}
)";
  const Recipe listed = Recipe::parse(gmp, "gmp.yaml", {{"final_sparsity", "0.6"}});
  EXPECT_EQ(listed.modifiers[0]->sparsity_ramp()->mask_type.str(), "1x4");
  EXPECT_DOUBLE_EQ(listed.modifiers[0]->sparsity_ramp()->final_sparsity, 0.6);
  EXPECT_EQ(listed.modifiers[0]->selectors(), std::vector<std::string>{"__ALL_PRUNABLE__"});  // params: []
  // Refused as SparseML refuses them.
  const std::string lr = "modifiers:\n  - !LearningRateModifier {start_epoch: 2, end_epoch: 8, ";
  expect_error(lr + "lr_class: StepLR, lr_kwargs: {step_size: 2}, init_lr: 0.1}\n", "StepLR needs lr_kwargs.gamma");
  expect_error(lr + "lr_class: MultiStepLR, lr_kwargs: {milestones: [1, 5], gamma: 0.1}, init_lr: 0.1}\n",
               "milestone 1 is not inside the window (2, 8)");
  expect_error(lr + "lr_class: CosineAnnealingWarmRestarts, lr_kwargs: {T_0: 2}, init_lr: 0.1}\n",
               "needs lr_kwargs.lr_min");
  expect_error(lr + "lr_class: ExponentialLR, lr_kwargs: {gamma: 0.9}, init_lr: 1.5}\n",
               "init_lr is 1.5, expected a learning rate in (0, 1]");
  expect_error("modifiers:\n  - !GMPruningModifier {params: [fc.weight], final_sparsity: {0.9: [fc.weight]}, "
               "start_epoch: 0, end_epoch: 2, update_frequency: 1}\n",
               "params must be [] when final_sparsity maps");
  // Numbers are decimal and finite, as YAML's and Python's: not inf, nan or hex.
  expect_error("modifiers:\n  - !EpochRangeModifier {start_epoch: 0, end_epoch: inf}\n",
               "end_epoch is 'inf', expected a number");
  expect_error("modifiers:\n  - !EpochRangeModifier {start_epoch: 0x10, end_epoch: 20}\n",
               "start_epoch is '0x10', expected a number");
  expect_error("modifiers:\n  - !EpochRangeModifier {start_epoch: 0, end_epoch: eval(10 ** 400)}\n",
               "expected a finite number");
  expect_error("modifiers:\n  - !GMPruningModifier {params: [], final_sparsity: {0.9: [a], 0.8: [b]}, "
               "global_sparsity: true, start_epoch: 0, end_epoch: 2, update_frequency: 1}\n",
               "final_sparsity cannot differ");
  // Steps in a later stage would land in an earlier one: refused.
  expect_error("a:\n  modifiers:\n    - !EpochRangeModifier {start_epoch: 0, end_epoch: 2}\n"
               "b:\n  modifiers:\n    - !ConstantPruningModifier {params: __ALL__, start_step: 3}\n",
               "start_step and end_step are not supported in a stage after the first");
  // A recipe whose modifiers start at 0 and never end sets no length: the run's --epochs stands.
  EXPECT_FALSE(Recipe::parse("modifiers:\n  - !QuantizationModifier {start_epoch: 0}\n", "q.yaml").epochs());
  // StructuredPruningModifier's param_groups: groups of names, or one flat list.
  const Recipe flat = Recipe::parse("modifiers:\n  - !StructuredPruningModifier {param_groups: [fc.weight], "
                                    "final_sparsity: 0.5, start_epoch: 0, end_epoch: 2, update_frequency: 1}\n",
                                    "s.yaml");
  EXPECT_EQ(flat.modifiers[0]->selectors(), std::vector<std::string>{"fc.weight"});
  // param_groups chooses the optimizer's groups; one it does not have is refused when the run starts.
  auto model = layers::models::make_model("mlp", {.image_size = 4});
  optim::Sgd sgd({{.params = model->parameters(), .lr = 0.5}});
  const Recipe groups = Recipe::parse(
      "modifiers:\n  - !SetLearningRateModifier {learning_rate: 0.01, start_epoch: 0, param_groups: [3]}\n", "g.yaml");
  testing::expect_error<ValueError>([&] { Manager(groups, *model, sgd, 4); }, {"g.yaml:2", "param_groups names group 3"});
}

void expect_error(const std::string& yaml, const std::string& message) {
  testing::expect_error<Error>([&] { Recipe::parse(yaml, "recipe.yaml"); }, {message});
}

TEST(Recipe, ErrorsNameFileLineAndField) {
  expect_error("modifiers:\n  - !GMPruningModifier\n    params: __ALL__\n    final_sparsity: 1.3\n"
               "    start_epoch: 0\n    end_epoch: 2\n",
               "recipe.yaml:4: final_sparsity is 1.3, expected a value in [0, 1)");
  expect_error("modifiers:\n  - !GMPruningModifier\n    params: __ALL__\n    final_sparsity: 0.5\n"
               "    start_epoch: 5\n    end_epoch: 2\n",
               "recipe.yaml:6: end_epoch 2 is before start_epoch 5");
  expect_error("modifiers:\n  - !GMPruningModifier\n    params: __ALL__\n    sparsity: 0.5\n",
               "recipe.yaml:4: GMPruningModifier has no field 'sparsity'");
  expect_error("modifiers:\n  - !MagicModifier {}\n", "recipe.yaml:2: unknown modifier 'MagicModifier'");
  expect_error("modifiers:\n  - !OBSPruningModifier {}\n", "OBSPruningModifier is not supported yet");
  expect_error("modifiers:\n  - !SetLearningRateModifier {learning_rate: eval(base * 2)}\n",
               "unresolved variable 'base'");
  expect_error("modifiers:\n  - !SetLearningRateModifier {learning_rate: eval(__import__)}\n", "recipe.yaml:2");
  expect_error("modifiers: [\n  - !EpochRangeModifier\n", "recipe.yaml:");
  expect_error("version: 1\nlr: 0.1\n", "no modifiers found");
  expect_error("modifiers:\n  - !GMPruningModifier {params: __ALL__, final_sparsity: 0.5, start_epoch: 0, "
               "end_epoch: 2, mask_type: triangle}\n",
               "mask_type 'triangle'");
  expect_error("a: eval(b)\nb: eval(a)\nmodifiers:\n  - !SetLearningRateModifier {learning_rate: a}\n",
               "refers to itself");
  expect_error("modifiers:\n  - !LearningRateFunctionModifier {lr_func: cosine, init_lr: 0.1, final_lr: 0}\n",
               "recipe.yaml:2: LearningRateFunctionModifier needs end_epoch");
  EXPECT_THROW(Recipe::load("/nonexistent/recipe.yaml"), IoError);
}

TEST(Recipe, EachModifierTypeNamesTheLineAndFieldOfABadValue) {
  struct Case {
    std::string tag, bad_field, other_fields, message;
  };
  const Case cases[] = {
      {"EpochRangeModifier", "end_epoch: nope", "start_epoch: 0",
       "end_epoch is 'nope', expected a number, eval(...) or a variable"},
      {"SetLearningRateModifier", "learning_rate: -1", "start_epoch: 0", "learning_rate is -1, expected a learning rate in (0, 1]"},
      {"SetWeightDecayModifier", "weight_decay: -0.5", "start_epoch: 0", "weight_decay is -0.5, expected a value >= 0"},
      {"LearningRateFunctionModifier", "lr_func: tanh", "init_lr: 0.1",
       "lr_func is 'tanh', expected linear, cosine or cyclic_linear"},
      {"LearningRateModifier", "lr_kwargs: {step_size: 0, gamma: 0.5}", "init_lr: 0.1", "lr_kwargs.step_size is 0, expected > 0"},
      {"LearningRateModifier", "lr_kwargs: {cycle_epochs: 2, lr_min: 0, T_mult: 0.5}",
       "lr_class: CosineAnnealingWarmRestarts\n    init_lr: 1", "lr_kwargs.T_mult is 0.5, expected >= 1"},
      {"GMPruningModifier", "inter_func: quartic", "params: __ALL__\n    final_sparsity: 0.5", "inter_func 'quartic'"},
      {"MagnitudePruningModifier", "mask_type: triangle", "params: __ALL__\n    final_sparsity: 0.5",
       "mask_type 'triangle'"},
      {"GlobalMagnitudePruningModifier", "init_sparsity: 1", "params: __ALL__\n    final_sparsity: 0.5",
       "init_sparsity is 1, expected a value in [0, 1)"},
      {"StructuredPruningModifier", "leave_enabled: maybe", "params: __ALL__\n    final_sparsity: 0.5",
       "leave_enabled is 'maybe', expected true or false"},
      {"ConstantPruningModifier", "update_frequency: 0", "params: __ALL__",
       "update_frequency is 0, expected > 0 or -1 (every step)"},
      {"TrainableParamsModifier", "trainable: maybe", "params: __ALL__", "trainable is 'maybe', expected true or false"},
      {"QuantizationModifier", "end_epoch: 3", "start_epoch: 0", "QuantizationModifier's end_epoch must be -1"},
      {"QuantizationModifier", "scheme: int4", "start_epoch: 0",
       "scheme is 'int4', expected default, deepsparse, tensorrt or a mapping"},
      {"QuantizationModifier", "scheme: {weights: {num_bits: 16}}", "start_epoch: 0",
       "scheme.weights.num_bits is 16, expected 2 to 8"},
      {"QuantizationModifier", "scheme: {weights: {strategy: group}}", "start_epoch: 0",
       "scheme.weights.strategy is 'group', expected tensor or channel"},
      {"QuantizationModifier", "scheme: {inputs: null}", "start_epoch: 0", "scheme has no field 'inputs'"},
      {"QuantizationModifier", "disable_quantization_observer_epoch: 1", "start_epoch: 2",
       "disable_quantization_observer_epoch is 1, before start_epoch 2"},
      {"QuantizationModifier", "model_fuse_fn_name: fuse_everything", "start_epoch: 0",
       "model_fuse_fn_name is 'fuse_everything'"},
  };
  for (const Case& c : cases) {
    // The bad field on line 3, the fields its check needs after it.
    expect_error("modifiers:\n  - !" + c.tag + "\n    " + c.bad_field + "\n    " + c.other_fields + "\n",
                 "recipe.yaml:3: " + c.message);
  }
}

TEST(Manager, GradualPruningReachesItsTargetsAndMasksOnlyGrow) {
  auto model = layers::models::make_model("mlp", {.image_size = 8});
  optim::Sgd sgd({{.params = model->parameters(), .lr = 0.1}});
  const Recipe r = Recipe::parse(R"(modifiers:
  - !GMPruningModifier
    params: []
    final_sparsity: {0.9: ["1.weight"], 0.7: ["3.weight"]}
    start_epoch: 0
    end_epoch: 2
    update_frequency: 0.5
  - !SetLearningRateModifier {learning_rate: 0.01, start_epoch: 1}
)",
                                 "r.yaml");
  Manager manager(r, *model, sgd, /*steps_per_epoch=*/4);
  double last = 0;
  auto sparsity = [&](const char* name) {
    for (const auto& [n, p] : model->named_parameters())
      if (n == name) return pruning::sparsity_of(p->value().data());
    return -1.0;
  };
  for (int64_t step = 0; step < 12; ++step) {
    const double epoch = step / 4.0;
    manager.before_step(epoch, step);
    EXPECT_GE(sparsity("1.weight"), last - 1e-12);
    last = sparsity("1.weight");
    if (step == 3) {
      EXPECT_DOUBLE_EQ(sgd.param_groups()[0].lr, 0.1);
    }
  }
  EXPECT_NEAR(sparsity("1.weight"), 0.9, 1e-3);
  EXPECT_NEAR(sparsity("3.weight"), 0.7, 1e-3);
  EXPECT_EQ(sparsity("5.weight"), 0.0);
  EXPECT_DOUBLE_EQ(sgd.param_groups()[0].lr, 0.01);
}

TEST(Manager, SelectorsAreCheckedAgainstTheModelAndFreezingWorks) {
  auto model = layers::models::make_model("mlp", {.image_size = 8});
  optim::Sgd sgd({{.params = model->parameters()}});
  testing::expect_error<ValueError>(
      [&] {
        Manager(Recipe::parse("modifiers:\n  - !ConstantPruningModifier {params: [fc.weight]}\n", "r.yaml"), *model,
                sgd, 1);
      },
      {"r.yaml:2: ConstantPruningModifier: selector 'fc.weight' matches no parameter; the parameters are: 1.weight, "
       "1.bias"});
  Manager freeze(Recipe::parse("modifiers:\n  - !TrainableParamsModifier {params: [\"re:[13]\\\\..*\"], "
                               "trainable: false, start_epoch: 0, end_epoch: 1}\n",
                               "r.yaml"),
                 *model, sgd, 2);
  freeze.before_step(0, 0);
  EXPECT_FALSE(model->named_parameters()[0].second->value().requires_grad());
  EXPECT_TRUE(model->named_parameters()[4].second->value().requires_grad());
  freeze.before_step(0.5, 1);
  freeze.before_step(1.0, 2);  // the end: unfrozen again
  EXPECT_TRUE(model->named_parameters()[0].second->value().requires_grad());
}

}  // namespace
}  // namespace neurite::recipes
