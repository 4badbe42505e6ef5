#include "neurite/pruning/pruning.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <regex>

#include "neurite/error.h"
#include "neurite/layers/layers.h"

namespace neurite::pruning {

using autograd::to_string;

MaskType MaskType::parse(const std::string& text) {
  std::smatch m;
  if (text == "unstructured") return {};
  if (text == "filter") return {.kind = Kind::filter};
  if (text == "channel") return {.kind = Kind::channel};
  if (text == "block4" || text == "block") return {.kind = Kind::block, .rows = 1, .cols = 4};
  const std::regex block(R"(\[\s*(\d+)\s*,\s*(\d+)\s*\]|(\d+)x(\d+))"), nm(R"((\d+):(\d+))");
  if (std::regex_match(text, m, block)) {
    const int64_t r = std::stoll(m[1].matched ? m[1].str() : m[3].str());
    const int64_t c = std::stoll(m[2].matched ? m[2].str() : m[4].str());
    check<ValueError>(r >= 1 && c >= 1, "mask_type '{}': block sides must be at least 1", text);
    if (r == 1 && c == 1) return {};
    return {.kind = Kind::block, .rows = r, .cols = c};
  }
  if (std::regex_match(text, m, nm)) {
    const int64_t n = std::stoll(m[1]), mm = std::stoll(m[2]);
    check<ValueError>(mm >= 1 && n >= 0 && n < mm, "mask_type '{}': N:M needs 0 <= N < M", text);
    return {.kind = Kind::n_of_m, .n = n, .m = mm};
  }
  throw ValueError(fmt::format(
      "mask_type '{}' is not one of unstructured, block4, [R,C] (or RxC), N:M (e.g. 2:4), filter, channel", text));
}

std::string MaskType::str() const {
  switch (kind) {
    case Kind::unstructured: return "unstructured";
    case Kind::block: return fmt::format("{}x{}", rows, cols);
    case Kind::n_of_m: return fmt::format("{}:{}", n, m);
    case Kind::filter: return "filter";
    case Kind::channel: return "channel";
  }
  return "";
}

namespace {

// A weight's groups: group g holds the flat indices members[offsets[g], offsets[g+1]).
struct Groups {
  std::vector<int64_t> offsets, members;
  int64_t count() const { return static_cast<int64_t>(offsets.size()) - 1; }
};

Groups make_groups(const autograd::Shape& shape, const MaskType& t) {
  const int64_t numel = autograd::numel(shape);
  const int64_t rows = shape.empty() ? 1 : shape[0], cols = rows > 0 ? numel / rows : 0;
  Groups g;
  g.offsets.push_back(0);
  auto close = [&] { g.offsets.push_back(static_cast<int64_t>(g.members.size())); };
  using Kind = MaskType::Kind;
  switch (t.kind) {
    case Kind::unstructured:
    case Kind::n_of_m:  // scored per weight; the N:M rule is applied per group of m later
      g.members.resize(static_cast<size_t>(numel));
      std::iota(g.members.begin(), g.members.end(), 0);
      g.offsets.resize(static_cast<size_t>(numel) + 1);
      std::iota(g.offsets.begin(), g.offsets.end(), 0);
      return g;
    case Kind::block: {  // (output, input channel) blocks at each kernel position, as SparseML groups them
      const int64_t channels = shape.size() >= 2 ? shape[1] : cols, taps = channels > 0 ? cols / channels : 0;
      for (int64_t r0 = 0; r0 < rows; r0 += t.rows)
        for (int64_t c0 = 0; c0 < channels; c0 += t.cols)
          for (int64_t tap = 0; tap < taps; ++tap) {
            for (int64_t r = r0; r < std::min(rows, r0 + t.rows); ++r)
              for (int64_t c = c0; c < std::min(channels, c0 + t.cols); ++c) g.members.push_back(r * cols + c * taps + tap);
            close();
          }
      return g;
    }
    case Kind::filter:
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) g.members.push_back(r * cols + c);
        close();
      }
      return g;
    case Kind::channel: {  // input channel: dimension 1, over every filter and kernel position
      const int64_t channels = shape.size() >= 2 ? shape[1] : 1, inner = channels > 0 ? cols / channels : 0;
      for (int64_t ch = 0; ch < channels; ++ch) {
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t k = 0; k < inner; ++k) g.members.push_back(r * cols + ch * inner + k);
        close();
      }
      return g;
    }
  }
  return g;
}

// Mean |w| (L2 norm for filters and channels) per group; -1 for a group with
// a pruned member, so pruned groups are always the first to go (masks only grow).
std::vector<double> group_scores(const Tensor& w, const Tensor& previous, const Groups& g, const MaskType& t) {
  const float* pw = w.data<float>();
  const float* pm = previous.defined() ? previous.data<float>() : nullptr;
  const bool l2 = t.kind == MaskType::Kind::filter || t.kind == MaskType::Kind::channel;
  std::vector<double> scores(static_cast<size_t>(g.count()));
  for (int64_t k = 0; k < g.count(); ++k) {
    double s = 0;
    bool pruned = false;
    for (int64_t i = g.offsets[k]; i < g.offsets[k + 1]; ++i) {
      const int64_t idx = g.members[i];
      s += l2 ? double(pw[idx]) * pw[idx] : std::abs(double(pw[idx]));
      pruned = pruned || (pm != nullptr && pm[idx] == 0.0f);
    }
    const double size = static_cast<double>(g.offsets[k + 1] - g.offsets[k]);
    scores[k] = pruned ? -1.0 : l2 ? std::sqrt(s) : s / std::max(size, 1.0);
  }
  return scores;
}

void check_sparsity(double s) {
  check<ValueError>(s >= 0.0 && s < 1.0, "sparsity is {}, expected a value in [0, 1)", s);
}

// N:M: in every run of m consecutive weights of a row, prune the k smallest,
// k = round(sparsity * m) capped at m - n (so the ramp of GMP applies too).
Tensor n_of_m_mask(const Tensor& w, const Tensor& previous, double sparsity, const MaskType& t) {
  const autograd::Shape& shape = w.shape();
  const int64_t rows = shape.empty() ? 1 : shape[0], cols = w.numel() / std::max<int64_t>(rows, 1);
  check<ShapeError>(cols % t.m == 0, "mask_type {}: rows of {} weights ({}) do not divide into groups of {}", t.str(),
                    cols, to_string(shape), t.m);
  const int64_t k = std::min<int64_t>(static_cast<int64_t>(std::llround(sparsity * t.m)), t.m - t.n);
  Tensor mask = Tensor::ones(shape);
  const float* pw = w.data<float>();
  const float* pm = previous.defined() ? previous.data<float>() : nullptr;
  std::vector<int64_t> order(static_cast<size_t>(t.m));
  for (int64_t start = 0; start < w.numel(); start += t.m) {
    std::iota(order.begin(), order.end(), start);
    auto score = [&](int64_t i) { return pm != nullptr && pm[i] == 0.0f ? -1.0f : std::abs(pw[i]); };
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return score(a) < score(b); });
    for (int64_t j = 0; j < t.m; ++j)
      if (j < k || (pm != nullptr && pm[order[j]] == 0.0f)) mask.data<float>()[order[j]] = 0.0f;
  }
  return mask;
}

void apply_groups(Tensor& mask, const Groups& g, int64_t group) {
  for (int64_t i = g.offsets[group]; i < g.offsets[group + 1]; ++i) mask.data<float>()[g.members[i]] = 0.0f;
}

}  // namespace

Tensor magnitude_mask(const Tensor& weight, const Tensor& previous, double sparsity, const MaskType& type) {
  return global_magnitude_masks({weight}, {previous}, sparsity, type).front();
}

std::vector<Tensor> global_magnitude_masks(const std::vector<Tensor>& weights, const std::vector<Tensor>& previous,
                                           double sparsity, const MaskType& type) {
  check_sparsity(sparsity);
  check(previous.empty() || previous.size() == weights.size(), "pruning: {} previous masks for {} weights",
        previous.size(), weights.size());
  auto prev = [&](size_t i) { return previous.empty() ? Tensor() : previous[i]; };
  for (size_t i = 0; i < weights.size(); ++i)
    if (prev(i).defined())
      check<ShapeError>(prev(i).shape() == weights[i].shape(), "pruning: mask {} for a weight {}",
                        to_string(prev(i).shape()), to_string(weights[i].shape()));
  std::vector<Tensor> masks;
  if (type.kind == MaskType::Kind::n_of_m) {  // a per-row rule: global and layerwise coincide
    for (size_t i = 0; i < weights.size(); ++i) masks.push_back(n_of_m_mask(weights[i], prev(i), sparsity, type));
    return masks;
  }
  struct Candidate {
    double score;
    size_t tensor;
    int64_t group, size;
  };
  std::vector<Groups> groups;
  std::vector<Candidate> candidates;
  int64_t total = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    groups.push_back(make_groups(weights[i].shape(), type));
    const std::vector<double> scores = group_scores(weights[i], prev(i), groups.back(), type);
    for (int64_t k = 0; k < groups.back().count(); ++k)
      candidates.push_back({scores[k], i, k, groups.back().offsets[k + 1] - groups.back().offsets[k]});
    total += weights[i].numel();
    masks.push_back(Tensor::ones(weights[i].shape()));
  }
  // Lowest scores first; ties broken by position so the result is deterministic.
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const Candidate& a, const Candidate& b) { return a.score < b.score; });
  const auto target = static_cast<int64_t>(std::llround(sparsity * static_cast<double>(total)));
  int64_t pruned = 0;
  for (const Candidate& c : candidates) {
    // Take a group while that lands nearer the target than stopping does (groups can be large).
    if (c.score >= 0 && pruned + c.size / 2 >= target) break;
    apply_groups(masks[c.tensor], groups[c.tensor], c.group);
    pruned += c.size;
  }
  return masks;
}

Interpolation parse_interpolation(const std::string& text) {
  if (text == "linear") return Interpolation::linear;
  if (text == "cubic") return Interpolation::cubic;
  if (text == "inverse_cubic") return Interpolation::inverse_cubic;
  throw ValueError(fmt::format("inter_func '{}' is not one of linear, cubic, inverse_cubic", text));
}

double scheduled_sparsity(double epoch, double start, double end, double init, double final, Interpolation f) {
  const double p = end > start ? std::clamp((epoch - start) / (end - start), 0.0, 1.0) : (epoch >= start ? 1.0 : 0.0);
  double shaped = p;
  if (f == Interpolation::cubic) shaped = 1 - std::pow(1 - p, 3);
  if (f == Interpolation::inverse_cubic) shaped = 1 - std::pow(1 - p, 1.0 / 3.0);
  return init + shaped * (final - init);
}

namespace {
// Conv and Linear weights (and attention input projections if asked) by module type, depth first.
void prunable(const layers::Module& m, const std::string& prefix, bool attention, std::vector<std::string>& out) {
  const std::string dot = prefix.empty() ? "" : prefix + ".";
  if (dynamic_cast<const layers::Linear*>(&m) != nullptr || dynamic_cast<const layers::Conv2d*>(&m) != nullptr)
    out.push_back(dot + "weight");
  if (attention && dynamic_cast<const layers::MultiheadAttention*>(&m) != nullptr) out.push_back(dot + "in_proj_weight");
  for (const auto& [name, child] : m.named_children()) prunable(*child, dot + name, attention, out);
}
}  // namespace

std::vector<std::string> linear_conv_and_attention_weights(const layers::Module& model) {
  std::vector<std::string> names;
  prunable(model, "", /*attention=*/true, names);
  return select(model, names);  // in the model's order
}

std::vector<std::string> select(const layers::Module& model, const std::vector<std::string>& selectors) {
  std::vector<std::string> all, chosen;
  for (const auto& [name, p] : model.named_parameters()) all.push_back(name);
  std::vector<std::string> prunable_names;
  prunable(model, "", /*attention=*/false, prunable_names);
  for (const std::string& selector : selectors) {
    std::vector<std::string> hits;
    if (selector == "__ALL__") hits = all;
    else if (selector == "__ALL_PRUNABLE__") hits = prunable_names;
    else if (selector.rfind("re:", 0) == 0) {
      std::regex re;
      try {
        re = std::regex(selector.substr(3));
      } catch (const std::regex_error& e) {
        throw ValueError(fmt::format("selector '{}' is not a valid regular expression: {}", selector, e.what()));
      }
      // As SparseML (Python's re.match): the pattern must match at the start of the name, not all of it.
      for (const auto& name : all)
        if (std::regex_search(name, re, std::regex_constants::match_continuous)) hits.push_back(name);
    } else if (std::find(all.begin(), all.end(), selector) != all.end()) {
      hits.push_back(selector);
    }
    check<ValueError>(!hits.empty(), "selector '{}' matches no parameter; the parameters are: {}", selector,
                      fmt::join(all, ", "));
    for (auto& h : hits)
      if (std::find(chosen.begin(), chosen.end(), h) == chosen.end()) chosen.push_back(h);
  }
  // In the model's order, whatever the order of the selectors.
  std::vector<std::string> ordered;
  for (const auto& name : all)
    if (std::find(chosen.begin(), chosen.end(), name) != chosen.end()) ordered.push_back(name);
  return ordered;
}

void prune(layers::Module& model, const std::vector<std::string>& names, double sparsity, const MaskType& type,
           bool global) {
  std::vector<layers::ParameterPtr> params;
  for (const auto& [name, p] : model.named_parameters())
    if (std::find(names.begin(), names.end(), name) != names.end()) params.push_back(p);
  check<ValueError>(params.size() == names.size(), "prune: {} of the {} names are parameters of the model",
                    params.size(), names.size());
  std::vector<Tensor> weights, previous;
  for (auto& p : params) {
    weights.push_back(p->value().data());
    previous.push_back(p->mask());
  }
  std::vector<Tensor> masks;
  if (global) masks = global_magnitude_masks(weights, previous, sparsity, type);
  else
    for (size_t i = 0; i < params.size(); ++i) masks.push_back(magnitude_mask(weights[i], previous[i], sparsity, type));
  for (size_t i = 0; i < params.size(); ++i) params[i]->set_mask(masks[i]);
}

double total_sparsity(const layers::Module& model) {
  const std::vector<std::string> names = linear_conv_and_attention_weights(model);
  double zeros = 0, total = 0;
  for (const auto& [name, p] : model.named_parameters()) {
    if (std::find(names.begin(), names.end(), name) == names.end()) continue;
    zeros += sparsity_of(p->value().data()) * static_cast<double>(p->numel());
    total += static_cast<double>(p->numel());
  }
  return total > 0 ? zeros / total : 0.0;
}

double sparsity_of(const Tensor& t) {
  if (t.numel() == 0) return 0;
  const float* p = t.data<float>();
  int64_t zeros = 0;
  for (int64_t i = 0; i < t.numel(); ++i) zeros += p[i] == 0.0f;
  return static_cast<double>(zeros) / static_cast<double>(t.numel());
}

}  // namespace neurite::pruning
