// The modifier types the recipe reader knows, by YAML tag. A modifier type is
// a tag, the fields it accepts and a parser that reads and checks them into
// its Modifier subclass. Each lives in its own file in this folder (a family
// of near twins shares one), and registry.cpp declares and lists it.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "neurite/recipes/modifier.h"
#include "recipes/modifiers/field_reader.h"

namespace neurite::recipes::detail {

struct ModifierType {
  std::string tag;  // e.g. "GMPruningModifier"
  FieldSet fields;  // any other field is an error
  std::function<std::unique_ptr<Modifier>(const FieldReader&)> parse;
  FieldSet ignored = {};  // fields SparseML writes when it saves a recipe and then ignores
};

// The type tagged `tag`; ValueError naming `where` for an unknown tag or a
// SparseML modifier not supported yet.
const ModifierType& modifier_type(const std::string& tag, const std::string& where);

}  // namespace neurite::recipes::detail
