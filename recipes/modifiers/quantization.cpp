// QuantizationModifier: quantisation-aware training as SparseML's defines it.
// From start_epoch the inputs and weights of every Linear and Conv2d layer not
// ignored are fake-quantised (layers/quantize.h) on the grids of the `scheme`
// (or of a scheme_overrides entry matching the layer's class name or a prefix
// of its name); from disable_quantization_observer_epoch their ranges freeze;
// from freeze_bn_stats_epoch batch norms normalise with running statistics.
#include <cxxabi.h>

#include <map>
#include <optional>
#include <typeinfo>

#include "neurite/layers/layers.h"
#include "neurite/layers/quantize.h"
#include "recipes/modifiers/modifier_run.h"
#include "recipes/modifiers/registry.h"

namespace neurite::recipes::detail {
namespace {

using layers::Module;
using layers::QuantArgs;
using layers::QuantScheme;

// "Conv2d" for a layers::Conv2d: the class name SparseML's ignore and
// scheme_overrides match.
std::string class_name(const Module& m) {
  int status = 0;
  const char* mangled = typeid(m).name();
  char* demangled = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string name = status == 0 ? demangled : mangled;
  std::free(demangled);
  const size_t colon = name.rfind("::");
  return colon == std::string::npos ? name : name.substr(colon + 2);
}

void for_each_module(Module& m, const std::string& prefix, const auto& f) {
  f(m, prefix);
  for (const auto& [name, child] : m.named_children())
    for_each_module(*child, prefix.empty() ? name : prefix + "." + name, f);
}

bool is_null(const YAML::Node& v) {
  return !v || v.IsNull() || (v.IsScalar() && (v.Scalar() == "null" || v.Scalar() == "None"));
}

// One QuantizationArgs mapping: num_bits, symmetric, strategy, kwargs
// (averaging_constant only); absent fields take pydantic's defaults (8 bits,
// asymmetric, per tensor), as SparseML's do.
QuantArgs read_args(const FieldReader& f, const YAML::Node& v, const std::string& field) {
  const std::string where = fmt::format("{}:{}: {}", f.file(), line_of(v), field);
  check<ValueError>(v.IsMap(), "{} must be a mapping (num_bits, symmetric, strategy) or null", where);
  QuantArgs a;
  for (const auto& kv : v) {
    const std::string key = kv.first.as<std::string>();
    const YAML::Node& value = kv.second;
    if (key == "num_bits") {
      const double bits = f.number(value, field + ".num_bits");
      check<ValueError>(bits == std::floor(bits) && bits >= 2 && bits <= 8, "{}.num_bits is {}, expected 2 to 8", where,
                        bits);
      a.num_bits = static_cast<int>(bits);
    } else if (key == "symmetric") {
      const std::string t = value.IsScalar() ? value.Scalar() : "";
      check<ValueError>(t == "true" || t == "True" || t == "false" || t == "False",
                        "{}.symmetric is '{}', expected true or false", where, t);
      a.symmetric = t == "true" || t == "True";
    } else if (key == "strategy") {
      const std::string t = value.IsScalar() ? value.Scalar() : "";
      check<ValueError>(t == "tensor" || t == "channel", "{}.strategy is '{}', expected tensor or channel", where, t);
      a.per_channel = t == "channel";
    } else if (key == "kwargs") {
      if (is_null(value)) continue;
      check<ValueError>(value.IsMap(), "{}.kwargs must be a mapping", where);
      for (const auto& kw : value) {
        const std::string name = kw.first.as<std::string>();
        check<ValueError>(name == "averaging_constant", "{}.kwargs has '{}'; Neurite's observers take averaging_constant",
                          where, name);
        a.averaging_constant = f.number(kw.second, field + ".kwargs.averaging_constant");
        check<ValueError>(a.averaging_constant > 0 && a.averaging_constant <= 1,
                          "{}.kwargs.averaging_constant is {}, expected in (0, 1]", where, a.averaging_constant);
      }
    } else {
      throw ValueError(fmt::format("{} has no field '{}' (its fields: num_bits, symmetric, strategy, kwargs)", where, key));
    }
  }
  return a;
}

// A scheme: null or "default" (`fallback`), "deepsparse", "tensorrt"
// (symmetric inputs), or a mapping of input_activations, weights,
// output_activations and target_hardware.
QuantScheme read_scheme(const FieldReader& f, const YAML::Node& v, const std::string& field, const QuantScheme& fallback) {
  if (is_null(v)) return fallback;
  const std::string where = fmt::format("{}:{}: {}", f.file(), line_of(v), field);
  if (v.IsScalar()) {
    const std::string name = v.Scalar();
    if (name == "default") return fallback;
    if (name == "deepsparse") return QuantScheme{};
    if (name == "tensorrt") return QuantScheme{.input_activations = QuantArgs{.symmetric = true}};
    throw ValueError(fmt::format("{} is '{}', expected default, deepsparse, tensorrt or a mapping", where, name));
  }
  check<ValueError>(v.IsMap(), "{} must be a name or a mapping", where);
  QuantScheme s;
  for (const auto& kv : v) {
    const std::string key = kv.first.as<std::string>();
    std::optional<QuantArgs>* slot = key == "input_activations"    ? &s.input_activations
                                     : key == "weights"            ? &s.weights
                                     : key == "output_activations" ? &s.output_activations
                                                                   : nullptr;
    if (key == "target_hardware") continue;
    check<ValueError>(slot != nullptr,
                      "{} has no field '{}' (its fields: input_activations, weights, output_activations, target_hardware)",
                      where, key);
    *slot = is_null(kv.second) ? std::nullopt : std::optional(read_args(f, kv.second, field + "." + key));
  }
  return s;
}

struct Settings {
  QuantScheme scheme;
  std::map<std::string, QuantScheme> overrides;  // by class name or name prefix
  std::vector<std::string> ignore;
  std::optional<double> observer_epoch, bn_epoch;  // as written
  double written_start = -1;
  bool strict = true;
  bool fuse = true;  // model_fuse_fn_name: conv_bn_relus (the default) or none; no_fuse: false
};

// A key of ignore or scheme_overrides matches a module by its class name or
// as a prefix of its name (a leading "module." dropped), as SparseML's do.
bool matches(const std::string& key, const Module& m, const std::string& name) {
  const std::string n = name.starts_with("module.") ? name.substr(7) : name;
  return key == class_name(m) || n.starts_with(key);
}

class QuantizeRun final : public ModifierRun {
 public:
  QuantizeRun(const Settings& s, const Modifier& modifier, Module& model) : s_(s), modifier_(modifier), model_(model) {
    // The two epochs move with the window (stage offsets), as the start does.
    const double shift = modifier.window.start_epoch - std::max(s.written_start, 0.0);
    start_ = modifier.window.start_epoch;
    if (s.observer_epoch) observer_epoch_ = *s.observer_epoch + shift;
    if (s.bn_epoch) bn_epoch_ = *s.bn_epoch + shift;
    if (s.strict) check_keys();
  }
  void before_step(double epoch) override { advance(epoch); }
  // Resuming: the checkpoint restored the quantisers and their observers'
  // switches; batch norms' freezing is set again.
  void skip_step(double epoch) override { advance(epoch); }

 private:
  void advance(double epoch) {
    if (!started_ && (start_ < 0 || epoch >= start_)) {
      started_ = true;
      quantize_layers();
    }
    if (started_ && observer_epoch_ && epoch >= *observer_epoch_)
      for (auto& [name, fq] : layers::fake_quantizers(model_)) fq->enable_observer(false);
    if (started_ && bn_epoch_ && epoch >= *bn_epoch_)
      for_each_module(model_, "", [](Module& m, const std::string&) {
        if (auto* bn = dynamic_cast<layers::BatchNorm2d*>(&m)) bn->freeze_statistics();
      });
  }

  void quantize_layers() {
    if (s_.fuse) fold_batch_norms();
    for_each_module(model_, "", [&](Module& m, const std::string& name) {
      auto* layer = dynamic_cast<layers::QuantizableLayer*>(&m);
      if (layer == nullptr || layer->quantized()) return;  // quantised: restored from a checkpoint
      for (const auto& key : s_.ignore)
        if (matches(key, m, name)) return;
      const QuantScheme* scheme = &s_.scheme;
      size_t best = 0;
      for (const auto& [key, override_scheme] : s_.overrides) {
        if (key == class_name(m)) {
          scheme = &override_scheme;
          break;
        }
        if (matches(key, m, name) && key.size() > best) {
          scheme = &override_scheme;
          best = key.size();
        }
      }
      layer->quantize(*scheme);
    });
  }

  // SparseML's conv_bn_relus fusing: a Conv2d followed by a BatchNorm2d of its
  // channels among the same parent's children trains as ConvBn (layers.h).
  // Again on resume: the link is no state of the checkpoint's.
  void fold_batch_norms() {
    for_each_module(model_, "", [&](Module& m, const std::string&) {
      const auto children = m.named_children();
      for (size_t i = 0; i + 1 < children.size(); ++i) {
        auto conv = std::dynamic_pointer_cast<layers::Conv2d>(children[i].second);
        auto bn = std::dynamic_pointer_cast<layers::BatchNorm2d>(children[i + 1].second);
        if (conv && bn && bn->weight.shape()[0] == conv->weight.shape()[0] && conv->options().groups == 1)
          conv->fold_for_quantization(bn);
      }
    });
  }

  // SparseML's strict: every ignore and scheme_overrides key matches a module.
  void check_keys() {
    std::vector<std::string> keys = s_.ignore;
    for (const auto& [key, scheme] : s_.overrides) keys.push_back(key);
    for (const auto& key : keys) {
      bool found = false;
      for_each_module(model_, "", [&](Module& m, const std::string& name) { found = found || matches(key, m, name); });
      check<ValueError>(found, "{}: QuantizationModifier: '{}' (in ignore or scheme_overrides) matches no module's "
                               "class or name (strict: true)", modifier_.where, key);
    }
  }

  const Settings& s_;
  const Modifier& modifier_;
  Module& model_;
  double start_;
  std::optional<double> observer_epoch_, bn_epoch_;
  bool started_ = false;
};

class Quantization final : public Modifier {
 public:
  explicit Quantization(const FieldReader& f) {
    check<ValueError>(f.window().end_epoch == -1, "{}: QuantizationModifier's end_epoch must be -1 (it never ends), got {}",
                      f.at("end_epoch"), f.window().end_epoch);
    s_.written_start = f.window().start_epoch;
    s_.scheme = read_scheme(f, f.node("scheme"), "scheme", QuantScheme{});
    if (f.has("scheme_overrides") && !is_null(f.node("scheme_overrides"))) {
      const YAML::Node o = f.node("scheme_overrides");
      check<ValueError>(o.IsMap(), "{}: scheme_overrides must map class names or module names to schemes",
                        f.at("scheme_overrides"));
      for (const auto& kv : o) {
        const std::string key = kv.first.as<std::string>();
        s_.overrides[key] = read_scheme(f, kv.second, "scheme_overrides." + key, s_.scheme);
      }
    }
    if (f.has("ignore") && !is_null(f.node("ignore"))) s_.ignore = f.selectors("ignore");
    for (auto [key, slot] : {std::pair{"disable_quantization_observer_epoch", &s_.observer_epoch},
                             std::pair{"freeze_bn_stats_epoch", &s_.bn_epoch}}) {
      if (!f.has(key) || is_null(f.node(key))) continue;
      *slot = f.number(key);
      check<ValueError>(**slot >= std::max(s_.written_start, 0.0), "{}: {} is {}, before start_epoch {}", f.at(key), key,
                        **slot, s_.written_start);
    }
    const std::string fuse = f.text_or("model_fuse_fn_name", "conv_bn_relus");
    s_.fuse = fuse != "no_fuse";
    check<ValueError>(fuse == "conv_bn_relus" || fuse == "no_fuse" || fuse == "none" || fuse == "None",
                      "{}: model_fuse_fn_name is '{}', expected conv_bn_relus, no_fuse or none", f.at("model_fuse_fn_name"),
                      fuse);
    if (f.has("model_fuse_fn_kwargs"))
      check<ValueError>(is_null(f.node("model_fuse_fn_kwargs")) || f.node("model_fuse_fn_kwargs").size() == 0,
                        "{}: model_fuse_fn_kwargs is not supported (Neurite's fusing takes no arguments)",
                        f.at("model_fuse_fn_kwargs"));
    if (f.has("num_calibration_steps") && !is_null(f.node("num_calibration_steps"))) {
      const double steps = f.non_negative("num_calibration_steps");
      check<ValueError>(steps == std::floor(steps), "{}: num_calibration_steps is {}, expected a whole number",
                        f.at("num_calibration_steps"), steps);
    }
    s_.strict = f.boolean_or("strict", true);
  }

  std::unique_ptr<ModifierRun> start(layers::Module& model, optim::Optimizer&, int64_t) const override {
    return std::make_unique<QuantizeRun>(s_, *this, model);
  }

 private:
  Settings s_;
};

}  // namespace

ModifierType quantization_modifier() {
  return {"QuantizationModifier",
          {"start_epoch", "end_epoch", "scheme", "scheme_overrides", "ignore", "disable_quantization_observer_epoch",
           "freeze_bn_stats_epoch", "model_fuse_fn_name", "model_fuse_fn_kwargs", "num_calibration_steps", "strict",
           "log_types"},
          [](const FieldReader& f) { return std::make_unique<Quantization>(f); }};
}

}  // namespace neurite::recipes::detail
