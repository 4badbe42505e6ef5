#include "neurite/dist/dist.h"

#include <fmt/format.h>
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include "neurite/autograd/sparse.h"
#include "neurite/error.h"
#include "neurite/layers/layers.h"

namespace neurite::dist {

using autograd::Tensor;
using autograd::Variable;

namespace {

// One process, no MPI: every collective is the identity.
class Solo final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void sum(std::span<double>) const override {}
  void sum(std::span<float>) const override {}
  void broadcast(void*, size_t, int) const override {}
  void barrier() const override {}
  [[noreturn]] void abort(const std::string& message, int code) const override {
    std::fprintf(stderr, "neurite: %s\n", message.c_str());
    std::exit(code);
  }
};

void finalize_mpi() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

// MPI_COMM_WORLD. Sums are reduced onto rank 0 and broadcast, so that every
// rank holds the same bits (MPI_Allreduce may add in another order on each rank).
class Mpi final : public Communicator {
 public:
  Mpi() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;  // MPI is called from the main thread only; the kernels' threads never call it
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
      std::atexit(finalize_mpi);
      if (provided < MPI_THREAD_FUNNELED)
        throw StateError("dist: this MPI library cannot be called from a program with threads (MPI_THREAD_FUNNELED)");
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void sum(std::span<double> values) const override { sum_as(values.data(), values.size(), MPI_DOUBLE); }
  void sum(std::span<float> values) const override { sum_as(values.data(), values.size(), MPI_FLOAT); }
  void broadcast(void* data, size_t bytes, int root) const override {
    auto* p = static_cast<char*>(data);
    for (size_t done = 0; done < bytes;) {  // MPI counts are int
      const int n = static_cast<int>(std::min<size_t>(bytes - done, size_t{1} << 30));
      MPI_Bcast(p + done, n, MPI_BYTE, root, MPI_COMM_WORLD);
      done += static_cast<size_t>(n);
    }
  }
  void barrier() const override { MPI_Barrier(MPI_COMM_WORLD); }
  [[noreturn]] void abort(const std::string& message, int code) const override {
    std::fprintf(stderr, "neurite: rank %d: %s\n", rank_, message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::exit(code);
  }

 private:
  void sum_as(void* values, size_t n, MPI_Datatype type) const {
    check<ValueError>(n < (size_t{1} << 31), "dist: a sum of {} values is too large for one exchange", n);
    MPI_Reduce(rank_ == 0 ? MPI_IN_PLACE : values, values, static_cast<int>(n), type, MPI_SUM, 0, MPI_COMM_WORLD);
    MPI_Bcast(values, static_cast<int>(n), type, 0, MPI_COMM_WORLD);
  }
  int rank_ = 0, size_ = 1;
};

// FNV-1a of a mask's bytes: cheap, and equal masks give equal sums.
uint64_t checksum(const Tensor& t) {
  uint64_t h = 1469598103934665603ull;
  const auto* b = reinterpret_cast<const unsigned char*>(t.bytes());
  for (size_t i = 0; i < t.nbytes(); ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

}  // namespace

bool Communicator::launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(name) != nullptr) return true;
  return false;
}

std::shared_ptr<Communicator> Communicator::world() {
  static const std::shared_ptr<Communicator> world =
      launched_by_mpi() ? std::shared_ptr<Communicator>(std::make_shared<Mpi>()) : std::make_shared<Solo>();
  return world;
}

std::pair<double, double> Communicator::sum(double a, double b) const {
  double both[2] = {a, b};
  sum(std::span<double>(both, 2));
  return {both[0], both[1]};
}

void broadcast_buffers(layers::Module& model, const Communicator& world, int root) {
  if (world.size() == 1) return;
  // One exchange for all of them: a model has dozens of small ones.
  std::vector<std::pair<std::string, Tensor>> buffers = model.named_buffers();
  size_t bytes = 0;
  for (const auto& [name, t] : buffers) bytes += t.nbytes();
  std::vector<char> packed(bytes);
  size_t at = 0;
  for (const auto& [name, t] : buffers) {
    std::memcpy(packed.data() + at, t.bytes(), t.nbytes());
    at += t.nbytes();
  }
  world.broadcast(packed.data(), packed.size(), root);
  at = 0;
  for (auto& [name, t] : buffers) {  // the tensors share the module's storage
    std::memcpy(t.bytes(), packed.data() + at, t.nbytes());
    at += t.nbytes();
  }
}

void broadcast_module(layers::Module& model, const Communicator& world, int root) {
  if (world.size() == 1) return;
  for (auto& [name, p] : model.named_parameters()) {
    // The mask first: a parameter's values follow its mask (setting one zeroes the pruned values).
    int has_mask = p->has_mask() ? 1 : 0;
    world.broadcast(&has_mask, sizeof has_mask, root);
    if (has_mask) {
      Tensor mask = p->has_mask() ? p->mask().clone() : Tensor::zeros(p->shape());
      world.broadcast(mask.bytes(), mask.nbytes(), root);
      if (!p->has_mask() || std::memcmp(mask.bytes(), p->mask().bytes(), mask.nbytes()) != 0) p->set_mask(mask);
    } else if (p->has_mask()) {
      p->set_mask(Tensor());
    }
    p->to_dense();  // values are written densely; the layer rebuilds its sparse form
    Tensor& value = p->value().data();
    world.broadcast(value.bytes(), value.nbytes(), root);
  }
  broadcast_buffers(model, world, root);
}

int64_t synchronize_batch_norms(layers::Module& model, std::shared_ptr<const Communicator> world) {
  int64_t count = 0;
  model.apply([&](layers::Module& m) {
    if (auto* bn = dynamic_cast<layers::BatchNorm2d*>(&m)) {
      bn->synchronize([world](std::span<double> values) { world->sum(values); });
      ++count;
    }
  });
  return count;
}

// ---------------------------------------------------------------------------
// GradientReducer

namespace {

struct Slot {
  std::string name;
  layers::ParameterPtr p;
  // The layout: which values the parameter sends.
  bool trains = false, sparse = false;
  int64_t count = 0;            // values sent
  std::vector<int64_t> kept;    // for a pruned weight: the kept positions, in row-major order
  // For a weight trained in its sparse form: where each of its values goes in
  // `kept`, so that every rank sends the same order whichever form it trains.
  std::vector<int64_t> to_kept;
  std::shared_ptr<const autograd::SparseWeight> form_seen;
  uint64_t mask_seen = 0;  // the Parameter::mask_version() of kept and mask_sum
  int64_t mask_sum = 0;  // the mask's checksum, 0 without one
  int bucket = -1;
  int64_t offset = 0;  // in its bucket
  bool ready = false;
};

struct Bucket {
  std::vector<int> slots;
  std::vector<float> values;  // padded to a multiple of the ranks
  std::vector<float> chunk;   // this rank's block of the sum
  int64_t pending = 0;        // slots not ready yet
  MPI_Request request = MPI_REQUEST_NULL;
};

}  // namespace

struct GradientReducer::State {
  std::shared_ptr<const Communicator> world;
  ReducerOptions options;
  std::vector<Slot> slots;  // in the reverse order of the parameters: roughly the order backward finishes them
  std::vector<Bucket> buckets;
  std::unordered_map<const void*, int> slot_of_leaf;
  std::vector<int64_t> layout;  // the counts the buckets were built for
  double weight = 1;
  // Every bucket's sum in two exchanges, each on a communicator of its own so
  // that both kinds start in bucket order on every rank: a reduce-scatter
  // (rank r sums block r, adding the ranks in order) and an all-gather of the
  // blocks, so that every rank holds the same bits.
  MPI_Comm scatter_comm = MPI_COMM_NULL, gather_comm = MPI_COMM_NULL;
  size_t next_scatter = 0, next_gather = 0;
  bool in_step = false;
  bool in_flight = false;  // exchanges started and not all waited for

  bool distributed() const { return world->size() > 1; }

  // Sets each slot's layout from its parameter now, checks it and the masks
  // against rank 0's (every step, so that no rank skips an exchange another
  // takes), and rebuilds the buckets when the layout changed.
  void plan() {
    std::vector<int64_t> mine;  // per slot: its layout, then its mask's checksum
    for (Slot& s : slots) {
      layers::Parameter& p = *s.p;
      s.trains = p.trainable().requires_grad();
      s.sparse = p.is_sparse();
      if (p.mask_version() != s.mask_seen) {  // a new mask (a pruning step): its kept positions and checksum
        s.mask_seen = p.mask_version();
        s.kept.clear();
        s.mask_sum = 0;
        s.form_seen.reset();
        if (p.has_mask()) {
          const float* m = p.mask().data<float>();
          for (int64_t k = 0; k < p.numel(); ++k)
            if (m[k] != 0) s.kept.push_back(k);
          s.mask_sum = static_cast<int64_t>(checksum(p.mask()) >> 1);
        }
      }
      if (s.sparse && p.sparse_form() != s.form_seen) map_sparse_form(s);
      s.count = !s.trains ? 0 : p.has_mask() ? static_cast<int64_t>(s.kept.size()) : p.numel();
      mine.push_back(s.count * 2 + (s.trains ? 1 : 0));
      mine.push_back(s.mask_sum);
    }
    if (distributed()) check_against_rank_0(mine);
    if (mine == layout) return;
    layout = mine;
    buckets.clear();
    int64_t bytes = 0;
    for (size_t i = 0; i < slots.size(); ++i) {
      Slot& s = slots[i];
      s.bucket = -1;
      if (s.count == 0) continue;
      if (buckets.empty() || bytes >= options.bucket_bytes) {
        buckets.emplace_back();
        bytes = 0;
      }
      Bucket& b = buckets.back();
      s.bucket = static_cast<int>(buckets.size() - 1);
      s.offset = static_cast<int64_t>(b.values.size());
      b.slots.push_back(static_cast<int>(i));
      // The slot's values, then 1 if this rank had a gradient for it: a
      // parameter no rank used keeps no gradient, as in one process.
      b.values.resize(b.values.size() + static_cast<size_t>(s.count) + 1);
      bytes += s.count * 4;
    }
    const auto ranks = static_cast<size_t>(world->size());
    for (Bucket& b : buckets) {
      b.values.resize((b.values.size() + ranks - 1) / ranks * ranks, 0.0f);
      b.chunk.resize(b.values.size() / ranks);
      check<ValueError>(b.chunk.size() < (size_t{1} << 31), "dist: a gradient bucket of {} values is too large",
                        b.values.size());
    }
  }

  // Where the sparse form's values sit among the kept positions: an index
  // scattered through the form (exact in float up to 2^24 values).
  static void map_sparse_form(Slot& s) {
    const autograd::SparseWeight& form = *s.p->sparse_form();
    const int64_t nnz = form.nnz();
    check<ValueError>(nnz == static_cast<int64_t>(s.kept.size()) && nnz < (int64_t{1} << 24),
                      "{}: its sparse form holds {} values for {} kept by its mask", s.name, nnz, s.kept.size());
    Tensor index = Tensor::empty({nnz}), dense = Tensor::zeros(s.p->shape());
    for (int64_t k = 0; k < nnz; ++k) index.data<float>()[k] = static_cast<float>(k + 1);
    form.scatter(index, dense);
    s.to_kept.assign(static_cast<size_t>(nnz), 0);
    for (size_t j = 0; j < s.kept.size(); ++j) {
      const auto k = static_cast<int64_t>(dense.data<float>()[s.kept[j]]) - 1;
      check<ValueError>(k >= 0 && k < nnz, "{}: its sparse form leaves out a kept position", s.name);
      s.to_kept[static_cast<size_t>(k)] = static_cast<int64_t>(j);
    }
    s.form_seen = s.p->sparse_form();
  }

  // Every rank compares its layout and masks with rank 0's, and every rank
  // learns whether some rank differs, so that all stop together, naming the
  // first parameter at fault, rather than one stopping while the others wait.
  void check_against_rank_0(const std::vector<int64_t>& mine) {
    std::vector<int64_t> theirs = mine;
    world->broadcast(theirs.data(), theirs.size() * sizeof(int64_t), 0);
    size_t first = mine.size();
    for (size_t k = 0; k < mine.size() && first == mine.size(); ++k)
      if (mine[k] != theirs[k]) first = k;
    const bool differs = first < mine.size();
    const auto [ranks, where] = world->sum(differs ? 1.0 : 0.0, differs ? static_cast<double>(first) : 0.0);
    if (ranks == 0) return;
    // The parameter: this rank's own finding, else the one rank's that differs.
    const size_t k = differs ? first : ranks == 1 ? static_cast<size_t>(where) : mine.size();
    if (k == mine.size()) throw ValueError(fmt::format("the masks or gradient layouts of {} ranks differ from rank 0's", ranks));
    const std::string& name = slots[k / 2].name;
    if (k % 2 == 1)
      throw ValueError(fmt::format("the mask of {} differs between the ranks (a pruning step they did not take alike)",
                                   name));
    const int64_t a = mine[k], b = theirs[k];
    throw ValueError(fmt::format("{} sends {} gradient values here, {} on rank 0{}", name, a / 2, b / 2,
                                 (a & 1) != (b & 1) ? " (it is frozen on one of them)" : ""));
  }

  void pack(Slot& s) {
    s.ready = true;
    if (s.bucket < 0) return;
    Bucket& b = buckets[static_cast<size_t>(s.bucket)];
    float* out = b.values.data() + s.offset;
    const Variable& v = s.p->trainable();
    out[s.count] = v.has_grad() ? 1.0f : 0.0f;
    if (!v.has_grad()) {
      std::fill(out, out + s.count, 0.0f);
    } else {
      const float* g = v.grad().data<float>();
      const auto w = static_cast<float>(weight);
      if (s.sparse)
        for (int64_t k = 0; k < s.count; ++k) out[s.to_kept[static_cast<size_t>(k)]] = g[k] * w;
      else if (s.p->has_mask())
        for (int64_t k = 0; k < s.count; ++k) out[k] = g[s.kept[static_cast<size_t>(k)]] * w;
      else
        for (int64_t k = 0; k < s.count; ++k) out[k] = g[k] * w;
    }
    --b.pending;
  }

  void unpack(const Slot& s) {
    if (s.bucket < 0) return;
    const float* in = buckets[static_cast<size_t>(s.bucket)].values.data() + s.offset;
    Variable& v = s.p->trainable();
    if (in[s.count] == 0) {  // no rank had a gradient
      v.zero_grad();
      return;
    }
    if (!v.has_grad()) v.set_grad(Tensor::zeros(v.shape()));
    Tensor g = v.grad();  // shares the gradient's storage
    float* out = g.data<float>();
    if (s.sparse) {
      for (int64_t k = 0; k < s.count; ++k) out[k] = in[s.to_kept[static_cast<size_t>(k)]];
    } else if (s.p->has_mask()) {
      std::fill(out, out + g.numel(), 0.0f);
      for (int64_t k = 0; k < s.count; ++k) out[s.kept[static_cast<size_t>(k)]] = in[k];
    } else {
      std::copy(in, in + s.count, out);
    }
  }

  // Starts what may start, in bucket order: reduce-scatters of full buckets,
  // then all-gathers of reduced ones.
  void progress() {
    while (next_scatter < buckets.size() && buckets[next_scatter].pending == 0) {
      Bucket& b = buckets[next_scatter++];
      MPI_Ireduce_scatter_block(b.values.data(), b.chunk.data(), static_cast<int>(b.chunk.size()), MPI_FLOAT, MPI_SUM,
                                scatter_comm, &b.request);
    }
    while (next_gather < next_scatter) {
      Bucket& b = buckets[next_gather];
      int done = 0;
      MPI_Test(&b.request, &done, MPI_STATUS_IGNORE);
      if (!done) break;
      MPI_Iallgather(b.chunk.data(), static_cast<int>(b.chunk.size()), MPI_FLOAT, b.values.data(),
                     static_cast<int>(b.chunk.size()), MPI_FLOAT, gather_comm, &b.request);
      ++next_gather;
    }
  }
};

GradientReducer::GradientReducer(std::vector<std::pair<std::string, layers::ParameterPtr>> params,
                                 std::shared_ptr<const Communicator> world, ReducerOptions options)
    : state_(std::make_unique<State>()) {
  check<ValueError>(world != nullptr, "GradientReducer: no communicator");
  check<ValueError>(options.bucket_bytes > 0, "GradientReducer: bucket_bytes {} must be positive", options.bucket_bytes);
  State& s = *state_;
  s.world = std::move(world);
  s.options = options;
  for (auto it = params.rbegin(); it != params.rend(); ++it) s.slots.push_back(Slot{.name = it->first, .p = it->second});
  if (s.distributed()) {
    MPI_Comm_dup(MPI_COMM_WORLD, &s.scatter_comm);
    MPI_Comm_dup(MPI_COMM_WORLD, &s.gather_comm);
  }
  leaf_ready_ = [this](const Variable& leaf) {
    State& st = *state_;
    if (!st.in_step) return;
    const auto it = st.slot_of_leaf.find(leaf.identity());
    if (it == st.slot_of_leaf.end()) return;  // not one of ours (an input that requires a gradient)
    Slot& slot = st.slots[static_cast<size_t>(it->second)];
    if (slot.ready) return;
    st.pack(slot);
    st.progress();
  };
}

GradientReducer::~GradientReducer() {
  if (state_->in_flight) {
    // An error left exchanges running (the process is on its way to
    // abort every rank): their buffers must outlive them, and freeing the
    // communicators would wait for the other ranks.
    (void)state_.release();
    return;
  }
  if (state_->scatter_comm != MPI_COMM_NULL) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) {
      MPI_Comm_free(&state_->scatter_comm);
      MPI_Comm_free(&state_->gather_comm);
    }
  }
}

void GradientReducer::begin_step(double weight) {
  State& s = *state_;
  check<StateError>(!s.in_step, "GradientReducer: begin_step twice without finish_step");
  s.weight = weight;
  traffic_ = {};
  if (!s.distributed()) {
    s.in_step = true;
    return;
  }
  s.plan();
  s.slot_of_leaf.clear();
  for (size_t i = 0; i < s.slots.size(); ++i) {
    s.slots[i].ready = false;
    s.slot_of_leaf[s.slots[i].p->trainable().identity()] = static_cast<int>(i);
  }
  for (Bucket& b : s.buckets) b.pending = static_cast<int64_t>(b.slots.size());
  s.next_scatter = s.next_gather = 0;
  s.in_step = true;
  s.in_flight = true;
}

void GradientReducer::finish_step() {
  State& s = *state_;
  check<StateError>(s.in_step, "GradientReducer: finish_step without begin_step");
  s.in_step = false;
  if (!s.distributed()) {  // one rank: the weighted sum is this rank's gradient times its weight
    if (s.weight != 1)
      for (Slot& slot : s.slots) {
        Variable& v = slot.p->trainable();
        if (!v.has_grad()) continue;
        Tensor g = v.grad();
        for (int64_t k = 0; k < g.numel(); ++k) g.data<float>()[k] *= static_cast<float>(s.weight);
      }
    return;
  }
  const auto start = std::chrono::steady_clock::now();
  for (Slot& slot : s.slots)  // gradients no path reached (a frozen branch, an unused layer)
    if (!slot.ready) s.pack(slot);
  s.progress();
  while (s.next_gather < s.buckets.size()) {
    MPI_Wait(&s.buckets[s.next_gather].request, MPI_STATUS_IGNORE);
    Bucket& b = s.buckets[s.next_gather];
    MPI_Iallgather(b.chunk.data(), static_cast<int>(b.chunk.size()), MPI_FLOAT, b.values.data(),
                   static_cast<int>(b.chunk.size()), MPI_FLOAT, s.gather_comm, &b.request);
    ++s.next_gather;
  }
  for (Bucket& b : s.buckets) MPI_Wait(&b.request, MPI_STATUS_IGNORE);
  s.in_flight = false;
  traffic_.wait_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto ranks = static_cast<double>(s.world->size());
  for (const Bucket& b : s.buckets) {
    for (int i : b.slots) traffic_.values += s.slots[static_cast<size_t>(i)].count;
    // A reduce-scatter and an all-gather each send (ranks - 1) / ranks of the bucket from every rank.
    traffic_.bytes_sent += static_cast<int64_t>(2 * (ranks - 1) / ranks * static_cast<double>(b.values.size()) * 4);
  }
  for (const Slot& slot : s.slots) s.unpack(slot);
}

}  // namespace neurite::dist
