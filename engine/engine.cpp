// Engine::run: steps layer after layer, or column groups tile by tile; and
// the benchmark loop.
#include <fmt/format.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <chrono>

#include "engine/plan.h"
#include "neurite/error.h"
#include "neurite/autograd/ops.h"

namespace neurite::engine {

namespace {

using clock_type = std::chrono::steady_clock;
using detail::Group;
using detail::Step;
using detail::Values;

double ms_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

// Batch slices: tiles in parallel, each through every step of the group.
void run_slices(const Engine::Plan& p, const Group& g, Values& v) {
  const int64_t tiles = (p.batch + g.slice - 1) / g.slice;
  const int inner = tiles >= p.threads ? 1 : p.threads;
  tbb::parallel_for(int64_t{0}, tiles, [&](int64_t t) {
    const int64_t b0 = t * g.slice, b1 = std::min(p.batch, b0 + g.slice);
    for (size_t k = g.first; k < g.last; ++k) p.steps[k]->run_slice(v, b0, b1, inner);
  });
}

// Row bands streamed through a chain of convolutions, image by image: each
// round asks the last step for `rows` more output rows, works out the rows
// every earlier step must have for them (halos included), and computes only
// the rows not yet done.
void run_bands(const Engine::Plan& p, const Group& g, Values& v) {
  const size_t count = g.last - g.first;
  std::vector<int> producer(v.size(), -1);  // value id -> step of the group, or -1
  for (size_t k = 0; k < count; ++k) producer[p.steps[g.first + k]->outputs[0]] = static_cast<int>(k);
  const int split = p.batch >= p.threads ? 1 : p.threads;  // rows split among threads when images are few
  auto band = [&](Step& s, int64_t n, int64_t r0, int64_t r1) {
    if (split == 1 || r1 - r0 < 2 * split) return s.run_band(v, n, n + 1, r0, r1);
    tbb::parallel_for(0, split, [&](int part) {
      const int64_t a = r0 + (r1 - r0) * part / split, b = r0 + (r1 - r0) * (part + 1) / split;
      if (b > a) s.run_band(v, n, n + 1, a, b);
    });
  };
  tbb::parallel_for(int64_t{0}, p.batch, [&](int64_t n) {
    std::vector<int64_t> done(count, 0), need(count, 0);
    const int64_t last_rows = p.steps[g.last - 1]->conv->geometry().out_h;
    for (int64_t target = g.rows;; target += g.rows) {
      std::fill(need.begin(), need.end(), 0);
      need[count - 1] = std::min(target, last_rows);
      for (size_t k = count; k-- > 0;) {
        const Step& s = *p.steps[g.first + k];
        need[k] = std::max(need[k], done[k]);
        if (need[k] == 0) continue;
        if (int from = producer[s.band_input]; from >= 0)
          need[from] = std::max(need[from], s.conv->geometry().input_rows(0, need[k]).second);
        if (s.residual >= 0)
          if (int from = producer[s.residual]; from >= 0) need[from] = std::max(need[from], need[k]);
      }
      for (size_t k = 0; k < count; ++k)
        if (need[k] > done[k]) {
          band(*p.steps[g.first + k], n, done[k], need[k]);
          done[k] = need[k];
        }
      if (need[count - 1] >= last_rows) break;
    }
    for (size_t k = 0; k < count; ++k) {  // steps only later groups read
      const int64_t h = p.steps[g.first + k]->conv->geometry().out_h;
      if (done[k] < h) band(*p.steps[g.first + k], n, done[k], h);
    }
  });
}

}  // namespace

void detail::run_group(const Engine::Plan& p, const Group& g, Values& v) {
  g.bands ? run_bands(p, g, v) : run_slices(p, g, v);
}

namespace {

// A set of buffers for one call: a spare one, or a new one of fresh
// activations and the shared constants; given back when the call ends.
class CallBuffers {
 public:
  explicit CallBuffers(Engine::Plan& p) : p_(p) {
    {
      const std::lock_guard lock(p.spare_mutex);
      if (!p.spare.empty()) {
        v_ = std::move(p.spare.back());
        p.spare.pop_back();
        return;
      }
    }
    v_.resize(p.layout.size());
    for (size_t i = 0; i < v_.size(); ++i)
      v_[i] = p.constant[i] ? p.values[i] : Tensor::zeros(p.layout[i].first, p.layout[i].second);
  }
  ~CallBuffers() {
    const std::lock_guard lock(p_.spare_mutex);
    p_.spare.push_back(std::move(v_));
  }
  Values& values() { return v_; }

 private:
  Engine::Plan& p_;
  Values v_;
};

}  // namespace

std::map<std::string, Tensor> Engine::run(const std::map<std::string, Tensor>& inputs) {
  Plan& p = *plan_;
  for (const ValueInfo& info : p.inputs) {
    auto it = inputs.find(info.name);
    check<ShapeError>(it != inputs.end(), "engine: input '{}' is not given", info.name);
    check<ShapeError>(it->second.shape() == info.shape, "engine: input '{}' is {}, the engine was compiled for {}",
                      info.name, autograd::to_string(it->second.shape()), autograd::to_string(info.shape));
    check<DtypeError>(it->second.dtype() == storage_of(info.type), "engine: input '{}' is {}, the graph expects {}", info.name,
                      autograd::to_string(it->second.dtype()), to_string(info.type));
  }
  CallBuffers buffers(p);
  Values& v = buffers.values();
  for (size_t i = 0; i < p.inputs.size(); ++i) v[p.input_ids[i]] = inputs.at(p.inputs[i].name);
  autograd::NoGradGuard no_grad;
  // Isolated: a thread of this call waiting inside a step must not take up
  // another call's work, which would reuse the scratch it holds.
  p.arena->execute([&] { tbb::this_task_arena::isolate([&] {
    for (size_t k = 0; k < p.steps.size();) {
      const auto t0 = clock_type::now();
      const int group = p.steps[k]->info.group;
      size_t entry = p.groups.size() + k;
      if (group >= 0) {
        const Group& g = p.groups[static_cast<size_t>(group)];
        detail::run_group(p, g, v);
        entry = static_cast<size_t>(group);
        k = g.last;
      } else {
        p.steps[k]->run(v, p.threads);
        ++k;
      }
      if (p.profiling) {
        const std::lock_guard lock(p.profile_mutex);
        p.profile[entry].total_ms += ms_since(t0);
        ++p.profile[entry].calls;
      }
    }
  }); });
  std::map<std::string, Tensor> out;
  for (const auto& [name, id] : p.outputs) out.emplace(name, v[id].clone());
  return out;
}

const CompileOptions& Engine::options() const { return plan_->options; }
const std::vector<ValueInfo>& Engine::inputs() const { return plan_->inputs; }

std::vector<StepInfo> Engine::steps() const {
  std::vector<StepInfo> out;
  for (const auto& s : plan_->steps) out.push_back(s->info);
  return out;
}

void Engine::set_profiling(bool on) {
  const std::lock_guard lock(plan_->profile_mutex);
  plan_->profiling = on;
  for (auto& e : plan_->profile) e.total_ms = 0, e.calls = 0;
}

std::vector<ProfileEntry> Engine::profile() const {
  const std::lock_guard lock(plan_->profile_mutex);
  std::vector<ProfileEntry> out;
  for (const auto& e : plan_->profile)
    if (e.calls > 0) out.push_back(e);
  return out;
}

BenchResult latency_summary(std::vector<double> latencies_ms, int64_t items_per_run) {
  BenchResult r;
  const auto n = static_cast<double>(latencies_ms.size());
  r.iterations = static_cast<int64_t>(latencies_ms.size());
  if (latencies_ms.empty()) return r;
  for (double v : latencies_ms) r.mean_ms += v / n;
  for (double v : latencies_ms) r.std_ms += (v - r.mean_ms) * (v - r.mean_ms) / n;
  r.std_ms = std::sqrt(r.std_ms);
  std::vector<double> sorted = latencies_ms;
  std::sort(sorted.begin(), sorted.end());
  auto pct = [&](double q) { return sorted[std::min(sorted.size() - 1, static_cast<size_t>(q * n))]; };
  r.p50_ms = pct(0.5), r.p90_ms = pct(0.9), r.p99_ms = pct(0.99);
  r.items_per_sec = static_cast<double>(items_per_run) * 1000.0 / r.mean_ms;
  r.latencies_ms = std::move(latencies_ms);
  return r;
}

BenchResult benchmark(Engine& engine, const BenchOptions& options) {
  check<ValueError>(options.time_s > 0 && options.warmup_s >= 0, "bench: time must be > 0 and warm-up >= 0, got {} and {}",
                    options.time_s, options.warmup_s);
  std::map<std::string, Tensor> inputs;
  const Engine::Plan& p = *engine.plan_;
  for (size_t i = 0; i < p.inputs.size(); ++i) {
    const ValueInfo& in = p.inputs[i];
    inputs[in.name] = in.type == DataType::float32 ? Tensor::randn(in.shape, 7 + i)
                                                   : Tensor::randint(in.shape, 7 + i, 0, p.input_bounds[i]);
  }
  for (const auto t0 = clock_type::now(); ms_since(t0) < options.warmup_s * 1000;) engine.run(inputs);
  engine.set_profiling(options.profile);
  std::vector<double> ms;
  for (const auto t0 = clock_type::now(); ms.size() < 3 || ms_since(t0) < options.time_s * 1000;) {
    const auto t = clock_type::now();
    engine.run(inputs);
    ms.push_back(ms_since(t));
  }
  const int64_t items = p.inputs.empty() || p.inputs[0].shape.empty() ? p.batch : p.inputs[0].shape[0];
  BenchResult r = latency_summary(std::move(ms), items);
  if (options.profile) {
    r.profile = engine.profile();
    for (auto& e : r.profile) e.total_ms /= static_cast<double>(r.iterations);
    engine.set_profiling(false);
  }
  return r;
}

}  // namespace neurite::engine
