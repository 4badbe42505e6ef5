#include <fmt/format.h>

#include <functional>
#include <map>

#include "layers/models/zoo.h"
#include "neurite/error.h"

namespace neurite::layers::models {

namespace {
using Builder = std::function<std::shared_ptr<UnaryModule>(const ModelOptions&)>;

const std::map<std::string, Builder>& builders() {
  static const std::map<std::string, Builder> table = {
      {"mlp", detail::make_mlp},
      {"cnn", detail::make_cnn},
      {"resnet20", [](const ModelOptions& o) { return detail::make_resnet(20, o); }},
      {"resnet32", [](const ModelOptions& o) { return detail::make_resnet(32, o); }},
      {"resnet56", [](const ModelOptions& o) { return detail::make_resnet(56, o); }},
      {"mobilenet", detail::make_mobilenet},
      {"vit-tiny", detail::make_vit_tiny},
      {"transformer", detail::make_transformer},
  };
  return table;
}
}  // namespace

std::shared_ptr<UnaryModule> make_model(const std::string& name, const ModelOptions& options) {
  auto it = builders().find(name);
  check<ValueError>(it != builders().end(), "unknown model '{}', expected one of: {}", name,
                    fmt::join(model_names(), ", "));
  check<ValueError>(options.in_channels >= 1 && options.image_size >= 1 && options.num_classes >= 1 &&
                        options.vocab_size >= 1 && options.seq_len >= 1,
                    "{}: in_channels, image_size, num_classes, vocab_size and seq_len must be positive", name);
  return it->second(options);
}

std::vector<std::string> model_names() {
  std::vector<std::string> names;
  for (const auto& [name, builder] : builders()) names.push_back(name);
  return names;
}

bool takes_tokens(const std::string& name) { return name == "transformer"; }

}  // namespace neurite::layers::models
