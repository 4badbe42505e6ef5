// conv2d forward + backward (input and weight gradients) on ResNet-20's 3x3
// layer shapes, batch 128 by default. Prints one JSON object per shape with the
// median milliseconds; bench/compare_conv.py runs PyTorch on the same shapes.
//   build/bench/bench_conv --shapes bench/conv_shapes.json [--batch 128] [--threads 2] [--repeats 10]
#include <fmt/format.h>
#include <neurite/autograd/ops.h>
#include <neurite/parallel.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

using namespace neurite::autograd;

int main(int argc, char** argv) {
  std::string shapes_path = "bench/conv_shapes.json";
  int64_t batch = 128;
  int threads = 2, repeats = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--shapes") shapes_path = argv[i + 1];
    else if (flag == "--batch") batch = std::atoll(argv[i + 1]);
    else if (flag == "--threads") threads = std::atoi(argv[i + 1]);
    else if (flag == "--repeats") repeats = std::atoi(argv[i + 1]);
  }
  neurite::set_num_threads(threads);
  neurite::keep_freed_memory();  // as the neurite command does
  std::ifstream in(shapes_path);
  if (!in) {
    fmt::print(stderr, "bench_conv: cannot open {}\n", shapes_path);
    return 1;
  }
  std::stringstream text;
  text << in.rdbuf();
  const std::string json = text.str();
  // A small reader for the flat objects of conv_shapes.json.
  const std::regex object(R"(\{[^}]*\})");
  auto field = [](const std::string& obj, const std::string& key) {
    std::smatch m;
    std::regex_search(obj, m, std::regex("\"" + key + "\"\\s*:\\s*(\"[^\"]*\"|[0-9]+)"));
    std::string v = m[1];
    return v.front() == '"' ? v.substr(1, v.size() - 2) : v;
  };
  for (std::sregex_iterator it(json.begin(), json.end(), object), end; it != end; ++it) {
    const std::string obj = it->str();
    const int64_t c = std::stoll(field(obj, "c")), f = std::stoll(field(obj, "f")), hw = std::stoll(field(obj, "hw"));
    const int64_t stride = std::stoll(field(obj, "stride"));
    const Tensor x = Tensor::randn({batch, c, hw, hw}, 1);
    Variable w(Tensor::randn({f, c, 3, 3}, 2, 0, 0.1f), true);
    const Conv2dOptions o{.stride_h = stride, .stride_w = stride, .pad_h = 1, .pad_w = 1};
    std::vector<double> ms;
    for (int r = 0; r < repeats + 2; ++r) {
      Variable xv(x, true);
      const auto s = std::chrono::steady_clock::now();
      Variable y = conv2d(xv, w, {}, o);
      y.backward(Tensor::ones(y.shape()));
      const double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s).count();
      w.zero_grad();
      if (r >= 2) ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    fmt::print("{{\"name\": \"{}\", \"batch\": {}, \"threads\": {}, \"ms\": {:.3f}}}\n", field(obj, "name"), batch,
               threads, ms[ms.size() / 2]);
  }
  return 0;
}
