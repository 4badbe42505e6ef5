#include "neurite/autograd/trace.h"

#include "neurite/autograd/profile.h"
#include "neurite/error.h"

namespace neurite::autograd {

namespace {
thread_local TraceRecorder* g_recorder = nullptr;
}  // namespace

TraceGuard::TraceGuard(TraceRecorder& recorder) : previous_(g_recorder) { g_recorder = &recorder; }
TraceGuard::~TraceGuard() { g_recorder = previous_; }

namespace detail {

void record_op_result(const std::vector<Variable>& inputs, const Tensor& output) {
  if (g_recorder == nullptr) return;
  OpRecord r{"", {}, output, {}};
  for (const auto& v : inputs) r.inputs.push_back(v.defined() ? v.data() : Tensor());
  g_recorder->records.push_back(std::move(r));
}

}  // namespace detail

Variable traced(Variable y, const char* op, std::map<std::string, TraceArg> args, std::vector<Tensor> tensor_inputs) {
  detail::name_op(y, op);
  if (g_recorder == nullptr) return y;
  auto& records = g_recorder->records;
  check<StateError>(!records.empty() && records.back().output.shares_storage(y.data()) && records.back().op.empty(),
                    "trace: op {} returned a result no op made", op);
  OpRecord& r = records.back();
  r.op = op;
  r.args = std::move(args);
  for (auto& t : tensor_inputs) r.inputs.push_back(std::move(t));
  return y;
}

}  // namespace neurite::autograd
