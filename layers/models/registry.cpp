#include <fmt/format.h>

#include <functional>
#include <map>

#include "layers/models/zoo.h"
#include "neurite/error.h"

namespace neurite::layers::models {

namespace {
using Builder = std::function<std::shared_ptr<UnaryModule>(const ModelOptions&)>;

struct Entry {
  Builder build;
  ModelDefaults defaults;
};

const ModelDefaults kImageDefaults{};
const ModelDefaults kCifarDefaults{.options = {.in_channels = 3, .image_size = 32}};

std::map<std::string, Entry>& registry() {
  static std::map<std::string, Entry> table = {
      {"mlp", {detail::make_mlp, {.batch_size = 256}}},
      {"cnn", {detail::make_cnn, kImageDefaults}},
      {"resnet20", {[](const ModelOptions& o) { return detail::make_resnet(20, o); }, kCifarDefaults}},
      {"resnet32", {[](const ModelOptions& o) { return detail::make_resnet(32, o); }, kCifarDefaults}},
      {"resnet56", {[](const ModelOptions& o) { return detail::make_resnet(56, o); }, kCifarDefaults}},
      {"mobilenet", {detail::make_mobilenet, kImageDefaults}},
      {"vit-tiny", {detail::make_vit_tiny, {.optimizer = "adamw"}}},
      {"transformer", {detail::make_transformer, {.takes_tokens = true, .optimizer = "adamw", .batch_size = 32}}},
  };
  return table;
}

const Entry& entry(const std::string& name) {
  auto it = registry().find(name);
  check<ValueError>(it != registry().end(), "unknown model '{}', expected one of: {}", name,
                    fmt::join(model_names(), ", "));
  return it->second;
}
}  // namespace

const ModelDefaults& model_defaults(const std::string& name) { return entry(name).defaults; }

void register_model(const std::string& name, std::function<std::shared_ptr<UnaryModule>(const ModelOptions&)> build,
                    ModelDefaults defaults) {
  check<ValueError>(!name.empty() && !name.ends_with(".onnx") && build != nullptr,
                    "register_model: '{}' needs a name (not an .onnx file) and a builder", name);
  check<ValueError>(registry().count(name) == 0, "register_model: the model '{}' exists already", name);
  registry().emplace(name, Entry{std::move(build), std::move(defaults)});
}

std::shared_ptr<UnaryModule> make_model(const std::string& name, const ModelOptions& options) {
  const Builder& build = entry(name).build;
  check<ValueError>(options.in_channels >= 1 && options.image_size >= 1 && options.num_classes >= 1 &&
                        options.vocab_size >= 1 && options.seq_len >= 1,
                    "{}: in_channels, image_size, num_classes, vocab_size and seq_len must be positive", name);
  return build(options);
}

std::vector<std::string> model_names() {
  std::vector<std::string> names;
  for (const auto& [name, entry] : registry()) names.push_back(name);
  return names;
}

bool takes_tokens(const std::string& name) {
  auto it = registry().find(name);  // false for a name outside the zoo (an imported graph), as before the registry
  return it != registry().end() && it->second.defaults.takes_tokens;
}

}  // namespace neurite::layers::models
