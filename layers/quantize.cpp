#include "neurite/layers/quantize.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "neurite/autograd/ops.h"
#include "neurite/error.h"
#include "neurite/layers/layers.h"

namespace neurite::layers {

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kEps = std::numeric_limits<float>::epsilon();  // PyTorch's floor of a scale

Tensor filled(int64_t n, float v) {
  Tensor t = Tensor::empty({n});
  std::fill_n(t.data<float>(), n, v);
  return t;
}

Tensor integer(int64_t v) {
  Tensor t = Tensor::empty({1}, autograd::Dtype::i64);
  t.data<int64_t>()[0] = v;
  return t;
}

Tensor real(float v) { return filled(1, v); }

void check_args(const QuantArgs& a, int64_t channels) {
  check(a.num_bits >= 2 && a.num_bits <= 8, "FakeQuantize: num_bits {} is outside [2, 8]", a.num_bits);
  check(a.averaging_constant > 0 && a.averaging_constant <= 1,
        "FakeQuantize: averaging_constant {} is outside (0, 1]", a.averaging_constant);
  check(channels >= 1, "FakeQuantize: {} channels", channels);
}

}  // namespace

FakeQuantize::FakeQuantize(const QuantArgs& args, int64_t channels)
    : scale_((check_args(args, channels), register_buffer("scale", filled(args.per_channel ? channels : 1, 1.0f)))),
      zero_point_(register_buffer("zero_point", Tensor::zeros({args.per_channel ? channels : 1}, autograd::Dtype::i64))),
      min_val_(register_buffer("min_val", filled(args.per_channel ? channels : 1, kInf))),
      max_val_(register_buffer("max_val", filled(args.per_channel ? channels : 1, -kInf))),
      quant_min_(register_buffer("quant_min", integer(-(int64_t{1} << (args.num_bits - 1))))),
      quant_max_(register_buffer("quant_max", integer((int64_t{1} << (args.num_bits - 1)) - 1))),
      axis_(register_buffer("axis", integer(args.per_channel ? 0 : -1))),
      symmetric_(register_buffer("symmetric", integer(args.symmetric ? 1 : 0))),
      averaging_constant_(register_buffer("averaging_constant", real(static_cast<float>(args.averaging_constant)))),
      observer_enabled_(register_buffer("observer_enabled", integer(1))) {}

void FakeQuantize::set_averaging_constant(double c) {
  check(c > 0 && c <= 1, "FakeQuantize: averaging_constant {} is outside (0, 1]", c);
  averaging_constant_.data<float>()[0] = static_cast<float>(c);
}

bool FakeQuantize::observed() const {
  return min_val_.data<float>()[0] != kInf || max_val_.data<float>()[0] != -kInf;
}

kernels::QuantGrid FakeQuantize::grid(int64_t channel) const {
  return {.scale = scale_.data<float>()[channel],
          .zero_point = static_cast<int32_t>(zero_point_.data<int64_t>()[channel]),
          .qmin = static_cast<int32_t>(quant_min()),
          .qmax = static_cast<int32_t>(quant_max())};
}

Variable FakeQuantize::forward(const Variable& x) {
  if (observer_enabled() && is_training()) {
    observe(x.data());
    update_grids();
  }
  return autograd::fake_quantize(x, scale_, zero_point_, quant_min(), quant_max(), axis());
}

// The moving average of each grid's min and max (PyTorch's update rule,
// written as it is so that the figures match bit for bit).
void FakeQuantize::observe(const Tensor& x) {
  if (x.numel() == 0) return;
  const int64_t channels = min_val_.numel();
  check<ShapeError>(axis() < 0 || (x.dim() >= 1 && x.size(0) == channels),
                    "FakeQuantize: per-channel grids for {} channels, got a tensor {}", channels,
                    autograd::ShapeArg{x.shape()});
  const int64_t run = x.numel() / channels;
  const float c = averaging_constant_.data<float>()[0];
  const float* px = x.data<float>();
  for (int64_t ch = 0; ch < channels; ++ch) {
    const auto [lo, hi] = std::minmax_element(px + ch * run, px + (ch + 1) * run);
    float& mn = min_val_.data<float>()[ch];
    float& mx = max_val_.data<float>()[ch];
    if (mn == kInf && mx == -kInf) {
      mn = *lo;
      mx = *hi;
    } else {
      mn = mn + c * (*lo - mn);
      mx = mx + c * (*hi - mx);
    }
  }
}

// PyTorch's _calculate_qparams: the range widened to hold 0; symmetric grids
// centred on 0 (scale amax / ((qmax - qmin) / 2)), asymmetric ones spanning
// [min, max] with the zero point rounded half to even; scales at least eps.
void FakeQuantize::update_grids() {
  const float qmin = static_cast<float>(quant_min()), qmax = static_cast<float>(quant_max());
  for (int64_t ch = 0; ch < min_val_.numel(); ++ch) {
    const float lo = std::min(min_val_.data<float>()[ch], 0.0f), hi = std::max(max_val_.data<float>()[ch], 0.0f);
    float& scale = scale_.data<float>()[ch];
    int64_t& zp = zero_point_.data<int64_t>()[ch];
    if (symmetric()) {
      scale = std::max(std::max(-lo, hi) / ((qmax - qmin) / 2.0f), kEps);
      zp = 0;
    } else {
      scale = std::max((hi - lo) / (qmax - qmin), kEps);
      zp = std::clamp(static_cast<int64_t>(qmin - std::nearbyint(lo / scale)), quant_min(), quant_max());
    }
  }
}

Variable QuantizableLayer::quantized_linear(const Variable& x, const Variable& bias) {
  quantized_parameter().to_dense();  // fake quantisation runs on the dense weight
  return quantized_output(autograd::linear(quantized_input(x), quantized_weight(), bias));
}

void QuantizableLayer::attach(const std::string& slot, std::shared_ptr<FakeQuantize> quantizer) {
  if (slot == "input_quant") input_quant = quantizer;
  else if (slot == "weight_quant") weight_quant = quantizer;
  else output_quant = quantizer;
  register_module(slot, std::move(quantizer));
}

void QuantizableLayer::quantize(const QuantScheme& scheme) {
  check<StateError>(!quantized(), "quantize: the layer is quantised already");
  const int64_t channels = quantized_parameter().shape()[0];
  auto make = [&](const QuantArgs& a, const char* what) {
    check(!a.per_channel || std::string(what) == "weights",
          "quantize: per-channel grids are for weights; {} take one grid per tensor", what);
    return std::make_shared<FakeQuantize>(a, channels);
  };
  if (scheme.input_activations) attach("input_quant", make(*scheme.input_activations, "input_activations"));
  if (scheme.weights) attach("weight_quant", make(*scheme.weights, "weights"));
  if (scheme.output_activations) attach("output_quant", make(*scheme.output_activations, "output_activations"));
  // A quantiser starts in its layer's mode.
  train(is_training());
}

namespace {

void visit(Module& m, const std::string& prefix, const auto& f) {
  f(m, prefix);
  for (const auto& [name, child] : m.named_children()) visit(*child, prefix.empty() ? name : prefix + "." + name, f);
}

}  // namespace

void restore_quantizers(Module& model, const StateDict& state) {
  visit(model, "", [&](Module& m, const std::string& name) {
    auto* layer = dynamic_cast<QuantizableLayer*>(&m);
    if (layer == nullptr || layer->quantized()) return;
    for (const char* slot : {"input_quant", "weight_quant", "output_quant"}) {
      const std::string p = (name.empty() ? "" : name + ".") + slot + ".";
      auto at = [&](const char* key) -> const Tensor& {
        auto it = state.find(p + key);
        check<FormatError>(it != state.end(), "restore_quantizers: '{}{}' is missing", p, key);
        return it->second;
      };
      if (!state.contains(p + "scale")) continue;
      const Tensor& qmax = at("quant_max");
      const int64_t levels = qmax.data<int64_t>()[0] + 1;
      int bits = 1;
      while ((int64_t{1} << (bits - 1)) < levels) ++bits;
      const QuantArgs args{.num_bits = bits,
                           .symmetric = at("symmetric").data<int64_t>()[0] != 0,
                           .per_channel = at("axis").data<int64_t>()[0] >= 0,
                           .averaging_constant = at("averaging_constant").data<float>()[0]};
      layer->attach(slot, std::make_shared<FakeQuantize>(args, at("scale").numel()));
    }
  });
  // Convolutions that trained with the next batch norm folded in (their
  // weight grids are measured on the folded weight) fold it again.
  visit(model, "", [&](Module& m, const std::string& name) {
    const auto children = m.named_children();
    for (size_t i = 0; i + 1 < children.size(); ++i) {
      const std::string conv_name = (name.empty() ? "" : name + ".") + children[i].first;
      auto conv = std::dynamic_pointer_cast<Conv2d>(children[i].second);
      auto bn = std::dynamic_pointer_cast<BatchNorm2d>(children[i + 1].second);
      if (conv && bn && !conv->folds_batch_norm() && state.contains(conv_name + ".folds_batch_norm"))
        conv->fold_for_quantization(bn);
    }
  });
}

std::vector<std::pair<std::string, std::shared_ptr<FakeQuantize>>> fake_quantizers(const Module& model) {
  std::vector<std::pair<std::string, std::shared_ptr<FakeQuantize>>> out;
  auto walk = [&](const auto& self, const Module& m, const std::string& prefix) -> void {
    for (const auto& [name, child] : m.named_children()) {
      const std::string full = prefix.empty() ? name : prefix + "." + name;
      if (auto fq = std::dynamic_pointer_cast<FakeQuantize>(child)) out.emplace_back(full, fq);
      self(self, *child, full);
    }
  };
  walk(walk, model, "");
  return out;
}

}  // namespace neurite::layers
