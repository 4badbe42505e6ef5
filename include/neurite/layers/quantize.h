// Quantisation-aware training: fake quantisers with moving-average min/max
// observers (PyTorch's FakeQuantize and MovingAverage(PerChannel)MinMaxObserver,
// the arithmetic SparseML's QuantizationModifier trains with), attached to the
// inputs, weights and outputs of Linear and Conv2d layers.
//
//   layers::QuantScheme scheme;                  // 8-bit: asymmetric inputs, symmetric weights
//   linear->quantize(scheme);                    // children input_quant and weight_quant
//   Variable y = linear->forward(x);             // observes x and W, then fake-quantises both
//   linear->weight_quant->enable_observer(false);  // ranges frozen from here on
#pragma once

#include <memory>
#include <optional>

#include "neurite/kernels/quantize.h"
#include "neurite/layers/module.h"

namespace neurite::layers {

// One tensor's 8-bit grid, as SparseML's QuantizationArgs: signed integers of
// num_bits bits ([-128, 127] for 8), symmetric (zero point 0, so zeros stay
// zero: pruned weights stay pruned) or asymmetric, one grid per tensor or per
// output channel (weights only).
struct QuantArgs {
  int num_bits = 8;
  bool symmetric = false;
  bool per_channel = false;
  double averaging_constant = 0.01;  // the observer's moving average
};

// Which tensors of a layer are fake-quantised, as SparseML's QuantizationScheme
// (its default: 8-bit asymmetric inputs, 8-bit symmetric weights, float outputs).
struct QuantScheme {
  std::optional<QuantArgs> input_activations = QuantArgs{.symmetric = false};
  std::optional<QuantArgs> weights = QuantArgs{.symmetric = true};
  std::optional<QuantArgs> output_activations;
};

// Observes the tensors it sees (a moving average of their min and max: the
// first batch's own, then min += c * (batch min - min)), derives scale and
// zero point from the range as PyTorch does, and fake-quantises. It observes
// in training mode while its observer is enabled; it always fake-quantises.
// Everything it needs is a buffer, so checkpoints carry it and
// restore_quantizers rebuilds it.
class FakeQuantize : public UnaryModule {
 public:
  // `channels` grids along axis 0 when args.per_channel, else one.
  FakeQuantize(const QuantArgs& args, int64_t channels = 1);
  Variable forward(const Variable& x) override;

  void enable_observer(bool on) { observer_enabled_.data<int64_t>()[0] = on ? 1 : 0; }
  // The moving average's weight of a new batch (calibration: 1 / (k + 1) for
  // batch k gives the mean of the batches' ranges).
  void set_averaging_constant(double c);
  bool observer_enabled() const { return observer_enabled_.data<int64_t>()[0] != 0; }
  bool observed() const;  // a range has been seen
  int64_t quant_min() const { return quant_min_.data<int64_t>()[0]; }
  int64_t quant_max() const { return quant_max_.data<int64_t>()[0]; }
  int64_t axis() const { return axis_.data<int64_t>()[0]; }  // -1: one grid
  bool symmetric() const { return symmetric_.data<int64_t>()[0] != 0; }
  const Tensor& scale() const { return scale_; }            // float32 [channels]
  const Tensor& zero_point() const { return zero_point_; }  // int64 [channels]
  kernels::QuantGrid grid(int64_t channel = 0) const;

 private:
  void observe(const Tensor& x);
  void update_grids();

  Tensor &scale_, &zero_point_, &min_val_, &max_val_;
  Tensor &quant_min_, &quant_max_, &axis_, &symmetric_, &averaging_constant_, &observer_enabled_;
};

// A layer whose input, weight and output can be fake-quantised (Linear and
// Conv2d): quantize() adds the children input_quant, weight_quant and
// output_quant that the scheme asks for. A quantised layer trains on the
// dense kernels.
class QuantizableLayer : public UnaryModule {
 public:
  void quantize(const QuantScheme& scheme);  // StateError if it already is
  bool quantized() const { return input_quant || weight_quant || output_quant; }
  std::shared_ptr<FakeQuantize> input_quant, weight_quant, output_quant;

 protected:
  virtual Parameter& quantized_parameter() = 0;  // the weight (out_channels, ...)
  Variable quantized_input(const Variable& x) { return input_quant ? input_quant->forward(x) : x; }
  Variable quantized_weight() {
    Variable& w = quantized_parameter().value();
    return weight_quant ? weight_quant->forward(w) : w;
  }
  Variable quantized_output(const Variable& y) { return output_quant ? output_quant->forward(y) : y; }
  // x·Wᵀ + bias through the quantisers (Linear's and an attention's projection).
  Variable quantized_linear(const Variable& x, const Variable& bias);

 private:
  friend void restore_quantizers(Module& model, const StateDict& state);
  void attach(const std::string& slot, std::shared_ptr<FakeQuantize> quantizer);
};

// Rebuilds the fake quantisers that `state` (a quantised model's state_dict)
// holds on the same layers of `model`, before model.load_state_dict(state).
void restore_quantizers(Module& model, const StateDict& state);

// Every FakeQuantize in `model`, with its dotted name.
std::vector<std::pair<std::string, std::shared_ptr<FakeQuantize>>> fake_quantizers(const Module& model);

}  // namespace neurite::layers
