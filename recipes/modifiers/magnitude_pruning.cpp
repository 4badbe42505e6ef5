// GMPruningModifier, MagnitudePruningModifier, GlobalMagnitudePruningModifier
// and StructuredPruningModifier: gradual magnitude pruning. At each update the
// lowest-|w| weights (or blocks, channels, filters) are masked up to the
// sparsity the ramp from init_sparsity to final_sparsity has reached, per
// tensor or across the selection (global). Masks only grow.
#include <algorithm>
#include <map>

#include "recipes/modifiers/modifier_run.h"
#include "recipes/modifiers/registry.h"

namespace neurite::recipes::detail {
namespace {

using autograd::Tensor;

// What sets the four tags apart.
struct TagTraits {
  bool always_global = false;       // GlobalMagnitudePruningModifier
  bool param_groups = false;        // StructuredPruningModifier: param_groups may stand for params
  std::string default_mask = "unstructured";
};

// What a run needs of its modifier, copied so that the run stands alone.
struct Settings {
  SparsityRamp ramp;
  bool init_from_param = false;  // init_sparsity: __FROM_PARAM__
  bool leave_enabled = true, global = false;
};

class PruningRun final : public ClockedRun {
 public:
  PruningRun(const Window& window, int64_t steps_per_epoch, Settings settings, NamedParameters params,
             std::vector<double> final_sparsity)
      : ClockedRun(window, steps_per_epoch),
        settings_(std::move(settings)),
        params_(std::move(params)),
        final_(std::move(final_sparsity)) {}

 private:
  void update(double epoch, bool first) override {
    if (first) record_init();
    std::vector<Tensor> weights, previous;
    for (auto& [name, p] : params_) {
      weights.push_back(p->value().data());
      previous.push_back(p->mask());
    }
    auto target = [&](size_t i) {
      return pruning::scheduled_sparsity(epoch, clock().start(), clock().end(), init_[i], final_[i],
                                         settings_.ramp.inter_func);
    };
    const pruning::MaskType& mask_type = settings_.ramp.mask_type;
    std::vector<Tensor> masks;
    if (settings_.global) masks = pruning::global_magnitude_masks(weights, previous, target(0), mask_type);
    else
      for (size_t i = 0; i < weights.size(); ++i)
        masks.push_back(pruning::magnitude_mask(weights[i], previous[i], target(i), mask_type));
    for (size_t i = 0; i < masks.size(); ++i) params_[i].second->set_mask(masks[i]);
    if (clock().ended() && !settings_.leave_enabled)
      for (auto& [name, p] : params_) p->set_mask(Tensor());  // weights stay zero but may grow back
  }
  void resume_started() override { record_init(); }

  void record_init() {
    for (auto& [name, p] : params_)
      init_.push_back(settings_.init_from_param ? pruning::sparsity_of(p->value().data())
                                                : settings_.ramp.init_sparsity);
  }

  const Settings settings_;
  NamedParameters params_;
  std::vector<double> init_, final_;  // per parameter
};

class MagnitudePruning final : public Modifier {
 public:
  MagnitudePruning(const FieldReader& f, const TagTraits& traits) {
    f.require("final_sparsity");
    const bool by_mapping = f.node("final_sparsity").IsMap();
    const bool empty_params = f.has("params") && f.node("params").IsSequence() && f.node("params").size() == 0;
    if (traits.param_groups && f.has("param_groups") && !f.has("params")) {
      // Groups of names ([[a, b], [c]]), or one flat list of names.
      for (const auto& group : f.node("param_groups")) {
        if (group.IsScalar()) params_.push_back(group.as<std::string>());
        else
          for (const auto& name : group) params_.push_back(name.as<std::string>());
      }
      check<ValueError>(!params_.empty(), "{}: param_groups names no parameter", f.at("param_groups"));
    } else if (by_mapping) {
      // As SparseML: the mapping names the parameters, and params stays [] (or absent).
      check<ValueError>(!f.has("params") || empty_params,
                        "{}: params must be [] when final_sparsity maps sparsities to parameters", f.at("params"));
    } else if (empty_params) {
      params_ = {"__ALL_PRUNABLE__"};  // SparseML reads params: [] as every prunable weight
    } else {
      params_ = f.selectors("params");
    }
    SparsityRamp& ramp = settings_.ramp;
    if (f.has("init_sparsity") && f.node("init_sparsity").IsScalar() &&
        f.node("init_sparsity").as<std::string>() == "__FROM_PARAM__")
      settings_.init_from_param = true;
    else
      ramp.init_sparsity = f.sparsity(f.number_or("init_sparsity", 0.0), "init_sparsity");
    read_final_sparsity(f);
    settings_.leave_enabled = f.boolean_or("leave_enabled", true);
    settings_.global = traits.always_global || f.boolean_or("global_sparsity", false);
    check<ValueError>(!settings_.global || final_by_selector_.empty() ||
                          std::ranges::all_of(final_by_selector_,
                                              [&](const auto& kv) { return kv.second == settings_.ramp.final_sparsity; }),
                      "{}: global pruning ranks all selected weights together, so final_sparsity cannot differ "
                      "between them",
                      f.at("final_sparsity"));
    if (f.has("inter_func"))
      ramp.inter_func = f.located("inter_func", [&] { return pruning::parse_interpolation(f.text("inter_func")); });
    const std::string mask = mask_text(f, traits);
    ramp.mask_type = f.located("mask_type", [&] { return pruning::MaskType::parse(mask); });
    f.require_start();
    f.require_end();
  }

  std::unique_ptr<ModifierRun> start(layers::Module& model, optim::Optimizer&,
                                     int64_t steps_per_epoch) const override {
    NamedParameters params = select_parameters(model, params_, *this);
    std::vector<double> final_sparsity;
    for (const auto& [name, p] : params) {
      double final = settings_.ramp.final_sparsity;
      for (const auto& [selector, s] : final_by_selector_)
        if (std::ranges::count(pruning::select(model, {selector}), name) > 0) final = s;
      final_sparsity.push_back(final);
    }
    return std::make_unique<PruningRun>(window, steps_per_epoch, settings_, std::move(params),
                                        std::move(final_sparsity));
  }
  std::vector<std::string> selectors() const override { return params_; }
  const SparsityRamp* sparsity_ramp() const override { return &settings_.ramp; }

 private:
  // A number, or a mapping {0.9: [names], 0.8: [names]} whose names replace params.
  void read_final_sparsity(const FieldReader& f) {
    const YAML::Node node = f.node("final_sparsity");
    if (!node.IsMap()) {
      settings_.ramp.final_sparsity = f.sparsity(f.number("final_sparsity"), "final_sparsity");
      return;
    }
    params_.clear();
    for (const auto& kv : node) {
      const double s = f.sparsity(f.number(kv.first, "final_sparsity"), "final_sparsity");
      std::vector<std::string> names;
      if (kv.second.IsScalar()) names.push_back(kv.second.as<std::string>());
      else
        for (const auto& n : kv.second) names.push_back(n.as<std::string>());
      for (const auto& n : names) {
        final_by_selector_[n] = s;
        params_.push_back(n);
      }
      settings_.ramp.final_sparsity = std::max(settings_.ramp.final_sparsity, s);
    }
  }

  // "unstructured", "4x1", "N:M", ... or a list [rows, cols].
  static std::string mask_text(const FieldReader& f, const TagTraits& traits) {
    if (!f.has("mask_type")) return traits.default_mask;
    const YAML::Node v = f.node("mask_type");
    if (!v.IsSequence()) return f.text("mask_type");
    check<ValueError>(v.size() == 2, "{}: mask_type as a list must be [rows, cols]", f.at("mask_type"));
    return fmt::format("[{},{}]", v[0].as<std::string>(), v[1].as<std::string>());
  }

  std::vector<std::string> params_;  // selectors
  std::map<std::string, double> final_by_selector_;
  Settings settings_;
};

ModifierType pruning_type(std::string tag, TagTraits traits) {
  FieldSet fields = join({kWindowFields, kUpdateFields,
                          {"init_sparsity", "final_sparsity", "params", "leave_enabled", "inter_func", "mask_type",
                           "global_sparsity", "log_types"}});
  if (traits.param_groups) fields.insert("param_groups");
  return {std::move(tag), std::move(fields),
          [traits](const FieldReader& f) { return std::make_unique<MagnitudePruning>(f, traits); }};
}

}  // namespace

ModifierType gm_pruning_modifier() { return pruning_type("GMPruningModifier", {}); }

ModifierType magnitude_pruning_modifier() { return pruning_type("MagnitudePruningModifier", {}); }

ModifierType global_magnitude_pruning_modifier() {
  return pruning_type("GlobalMagnitudePruningModifier", {.always_global = true});
}

ModifierType structured_pruning_modifier() {
  return pruning_type("StructuredPruningModifier", {.param_groups = true, .default_mask = "filter"});
}

}  // namespace neurite::recipes::detail
