// The builders behind models::make_model, one per family.
#pragma once

#include <memory>

#include "neurite/layers/models.h"

namespace neurite::layers::models::detail {

std::shared_ptr<UnaryModule> make_mlp(const ModelOptions& o);
std::shared_ptr<UnaryModule> make_cnn(const ModelOptions& o);
std::shared_ptr<UnaryModule> make_resnet(int64_t depth, const ModelOptions& o);
std::shared_ptr<UnaryModule> make_mobilenet(const ModelOptions& o);
std::shared_ptr<UnaryModule> make_vit_tiny(const ModelOptions& o);
std::shared_ptr<UnaryModule> make_transformer(const ModelOptions& o);

}  // namespace neurite::layers::models::detail
