// Layouts handed between steps without conversions: oneDNN convolutions
// chained channel-blocked, sparse linear layers chained feature-major.
#include "engine/layouts.h"

#include <map>

#include "engine/steps.h"
#include "neurite/kernels/layout.h"

namespace neurite::engine::detail {

void link_blocked_layouts(Engine::Plan& plan) {
  std::map<int, ConvStep*> dense_producer;
  std::map<int, int> plain_readers;  // value id -> readers that need it plain
  // A dense convolution's blocked output: a buffer of every call's own.
  for (auto& s : plan.steps)
    if (auto* conv = dynamic_cast<ConvStep*>(s.get()); conv && conv->dense && conv->dense->blocked_output_size() > 0) {
      conv->y_blocked = static_cast<int>(plan.values.size());
      plan.values.push_back(Tensor::zeros({conv->dense->blocked_output_size()}));
      plan.constant.push_back(false);
    }
  for (auto& s : plan.steps) {
    auto* conv = dynamic_cast<ConvStep*>(s.get());
    for (size_t k = 0; k < s->inputs.size(); ++k) {
      const int in = s->inputs[k];
      if (in < 0) continue;
      auto from = dense_producer.find(in);
      bool blocked_read = false;
      if (conv && conv->dense && k == 0 && from != dense_producer.end() &&
          conv->dense->read_input_from(*from->second->dense)) {
        conv->x_blocked = from->second->y_blocked;
        blocked_read = true;
      }
      if (!blocked_read) ++plain_readers[in];
    }
    if (s->residual >= 0) {
      auto from = dense_producer.find(s->residual);
      bool blocked_read = false;
      if (conv && conv->dense && from != dense_producer.end() && conv->dense->read_residual_from(*from->second->dense)) {
        conv->residual_blocked = from->second->y_blocked;
        blocked_read = true;
      }
      if (!blocked_read) ++plain_readers[s->residual];
    }
    if (conv && conv->dense) dense_producer[s->outputs[0]] = conv;
  }
  for (const auto& [name, id] : plan.outputs) ++plain_readers[id];
  for (const auto& [id, step] : dense_producer) step->dense->write_plain(plain_readers[id] > 0);
}

void link_feature_major(Engine::Plan& plan) {
  std::map<int, std::vector<Step*>> readers_of;
  for (auto& s : plan.steps) {
    for (int id : s->inputs)
      if (id >= 0) readers_of[id].push_back(s.get());
    if (s->residual >= 0) readers_of[s->residual].push_back(s.get());
  }
  for (const auto& [name, id] : plan.outputs) readers_of[id].push_back(nullptr);
  for (auto& s : plan.steps) {
    auto* a = dynamic_cast<LinearStep*>(s.get());
    if (a == nullptr || a->kernel->format() == WeightFormat::dense || a->residual >= 0) continue;
    const auto& r = readers_of[a->outputs[0]];
    auto* b = r.size() == 1 ? dynamic_cast<LinearStep*>(r[0]) : nullptr;
    if (b == nullptr || b->kernel->format() == WeightFormat::dense || b->inputs[0] != a->outputs[0] ||
        b->units_per_item != a->units_per_item)
      continue;
    const int64_t rows = a->units;
    if (rows <= LinearKernel::kFewRows) continue;  // a few rows run as dot products, which read rows whole
    a->out_fm = b->in_fm = true;
    a->kernel->set_feature_major(a->in_fm, true, rows);
    b->kernel->set_feature_major(true, b->out_fm, rows);
    plan.values[a->outputs[0]] = Tensor::zeros({a->kernel->feature_major_rows() * kernels::feature_major_ld(rows)});
    a->info.kernel += " >fm";
  }
}

}  // namespace neurite::engine::detail
