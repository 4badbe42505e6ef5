#include "neurite/train/checkpoint.h"
#include "neurite/engine/graph_module.h"
#include "neurite/engine/onnx.h"

#include <hdf5.h>
#include <zlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "neurite/error.h"
#include "neurite/files.h"
#include "neurite/layers/quantize.h"

namespace neurite::train {

namespace fs = std::filesystem;
using autograd::Dtype;
using autograd::Shape;

namespace {

constexpr const char* kFormat = "neurite-checkpoint-1";

// The file opens with HDF5's user block (which HDF5 and h5py skip): a line
// naming the format, then the CRC-32 and size of the HDF5 bytes after it.
// The checksum is verified before HDF5 reads a byte, so a damaged or
// truncated checkpoint is one clear error instead of whatever a damaged file
// does to the HDF5 library (whose reader is not hardened against it).
constexpr size_t kHeaderBytes = 512;
constexpr std::string_view kMagic = "NEURITE CHECKPOINT\n";

std::string header_for(std::string_view hdf5) {
  const auto crc = crc32_z(0, reinterpret_cast<const Bytef*>(hdf5.data()), hdf5.size());
  std::string header = fmt::format("{}crc32 {:08x} bytes {}\n", kMagic, crc, hdf5.size());
  header.resize(kHeaderBytes, '\0');
  return header;
}

// The file's HDF5 bytes, after checking its header against them.
std::string checked_hdf5_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  check<IoError>(in.good(), "{}: cannot open checkpoint", path);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  check<IoError>(!in.bad(), "{}: cannot read checkpoint", path);
  check<FormatError>(bytes.starts_with(kMagic),
                     "{}: not a Neurite checkpoint (it does not open with the line 'NEURITE CHECKPOINT')", path);
  check<FormatError>(bytes.size() >= kHeaderBytes, "{}: truncated checkpoint: {} bytes", path, bytes.size());
  const std::string_view hdf5 = std::string_view(bytes).substr(kHeaderBytes);
  const std::string expected = header_for(hdf5);
  check<FormatError>(bytes.compare(0, kHeaderBytes, expected) == 0,
                     "{}: damaged checkpoint: its header says '{}', its contents give '{}'", path,
                     std::string_view(bytes).substr(kMagic.size(), bytes.find('\n', kMagic.size()) - kMagic.size()),
                     std::string_view(expected).substr(kMagic.size(), expected.find('\n', kMagic.size()) - kMagic.size()));
  return bytes;
}

struct Handle {  // closes an HDF5 id on scope exit
  hid_t id;
  herr_t (*close)(hid_t);
  Handle(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
  Handle(const Handle&) = delete;
  ~Handle() {
    if (id >= 0) close(id);
  }
};

void write_tensor(hid_t parent, const std::string& name, const Tensor& t, const std::string& path) {
  std::vector<hsize_t> dims(t.shape().begin(), t.shape().end());
  Handle space(t.dim() == 0 ? H5Screate(H5S_SCALAR)
                            : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
               H5Sclose);
  const hid_t type = t.dtype() == Dtype::f32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT64;
  Handle set(H5Dcreate2(parent, name.c_str(), type, space.id, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  check<IoError>(set.id >= 0 && H5Dwrite(set.id, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.bytes()) >= 0,
                 "{}: cannot write '{}'", path, name);
}

// Bytes (a serialised ONNX graph) as a 1-D uint8 dataset.
void write_bytes(hid_t parent, const std::string& name, const std::string& bytes, const std::string& path) {
  const hsize_t size = bytes.size();
  Handle space(H5Screate_simple(1, &size, nullptr), H5Sclose);
  Handle set(H5Dcreate2(parent, name.c_str(), H5T_NATIVE_UCHAR, space.id, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
             H5Dclose);
  check<IoError>(set.id >= 0 && H5Dwrite(set.id, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()) >= 0,
                 "{}: cannot write '{}'", path, name);
}

// Every size a checkpoint's HDF5 metadata claims is checked against `limit`,
// the bytes of the file (Neurite writes no compressed datasets), before
// anything is allocated for it.
std::string read_bytes(hid_t parent, const std::string& name, const std::string& path, int64_t limit) {
  Handle set(H5Dopen2(parent, name.c_str(), H5P_DEFAULT), H5Dclose);
  check<FormatError>(set.id >= 0, "{}: cannot open dataset '{}'", path, name);
  Handle space(H5Dget_space(set.id), H5Sclose);
  hsize_t size = 0;
  check<FormatError>(H5Sget_simple_extent_ndims(space.id) == 1 && H5Sget_simple_extent_dims(space.id, &size, nullptr) == 1,
                     "{}: dataset '{}' is not a byte string", path, name);
  autograd::checked_bytes({static_cast<int64_t>(size)}, 1, limit, fmt::format("{}: dataset '{}'", path, name));
  std::string bytes(size, '\0');
  check<FormatError>(H5Dread(set.id, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()) >= 0,
                     "{}: cannot read dataset '{}'", path, name);
  return bytes;
}

Tensor read_tensor(hid_t parent, const std::string& name, const std::string& path, int64_t limit) {
  Handle set(H5Dopen2(parent, name.c_str(), H5P_DEFAULT), H5Dclose);
  check<FormatError>(set.id >= 0, "{}: cannot open dataset '{}'", path, name);
  Handle space(H5Dget_space(set.id), H5Sclose);
  Handle type(H5Dget_type(set.id), H5Tclose);
  const int rank = H5Sget_simple_extent_ndims(space.id);
  check<FormatError>(rank >= 0 && rank <= 8, "{}: dataset '{}' has rank {}", path, name, rank);
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.id, dims.data(), nullptr);
  const bool integer = H5Tget_class(type.id) == H5T_INTEGER;
  const Shape shape(dims.begin(), dims.end());
  // Stored as 4 or 8 bytes a value, or fewer (an integer type narrower than int64): at least one byte each.
  autograd::checked_bytes(shape, 1, limit, fmt::format("{}: dataset '{}'", path, name));
  Tensor t = Tensor::empty(shape, integer ? Dtype::i64 : Dtype::f32);
  check<FormatError>(H5Dread(set.id, integer ? H5T_NATIVE_INT64 : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                             t.bytes()) >= 0,
                     "{}: cannot read dataset '{}'", path, name);
  return t;
}

void write_attribute(hid_t object, const char* name, const std::string& value) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.id, std::max<size_t>(value.size(), 1));
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(object, name, type.id, space.id, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  H5Awrite(attr.id, type.id, value.empty() ? "" : value.data());
}

std::string read_attribute(hid_t object, const char* name, const std::string& path, int64_t limit) {
  check<FormatError>(H5Aexists(object, name) > 0, "{}: not a Neurite checkpoint (no attribute '{}')", path, name);
  Handle attr(H5Aopen(object, name, H5P_DEFAULT), H5Aclose);
  Handle type(H5Aget_type(attr.id), H5Tclose);
  check<FormatError>(H5Tget_class(type.id) == H5T_STRING && !H5Tis_variable_str(type.id),
                     "{}: attribute '{}' is not a fixed-length string", path, name);
  const auto size = static_cast<int64_t>(H5Tget_size(type.id));
  check<FormatError>(size > 0 && size <= limit, "{}: attribute '{}' claims {} bytes, the file has {}", path, name, size, limit);
  std::string value(static_cast<size_t>(size), '\0');
  H5Aread(attr.id, type.id, value.data());
  value.resize(std::strlen(value.c_str()));
  return value;
}

// The names of a group's members, in HDF5's order (sorted by name).
std::vector<std::string> members(hid_t group) {
  std::vector<std::string> names;
  H5Literate(
      group, H5_INDEX_NAME, H5_ITER_INC, nullptr,
      [](hid_t, const char* name, const H5L_info_t*, void* out) -> herr_t {
        static_cast<std::vector<std::string>*>(out)->push_back(name);
        return 0;
      },
      &names);
  return names;
}

nlohmann::json options_json(const layers::models::ModelOptions& o) {
  return {{"in_channels", o.in_channels}, {"image_size", o.image_size}, {"num_classes", o.num_classes},
          {"vocab_size", o.vocab_size},   {"seq_len", o.seq_len},       {"dropout", o.dropout}};
}

}  // namespace

void save_checkpoint(const std::string& path, const Checkpoint& c) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  // The file is built in memory (HDF5's core driver, no backing store) and
  // written by write_file_atomically: HDF5 never meets a failing disk, which
  // its library leaves in a state that crashes it at exit, and the file on
  // disk is the old one or the whole new one.
  static std::atomic<int64_t> saves{0};  // a name of its own each time: HDF5 knows open files by name
  const std::string temporary = fmt::format("{} (in memory, {})", path, saves++);
  std::string image;
  {
    Handle access(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
    check<IoError>(access.id >= 0 && H5Pset_fapl_core(access.id, size_t{1} << 20, 0) >= 0,
                   "{}: cannot set up HDF5's in-memory file", path);
    Handle creation(H5Pcreate(H5P_FILE_CREATE), H5Pclose);
    check<IoError>(creation.id >= 0 && H5Pset_userblock(creation.id, kHeaderBytes) >= 0,
                   "{}: cannot set up HDF5's user block", path);
    Handle file(H5Fcreate(temporary.c_str(), H5F_ACC_TRUNC, creation.id, access.id), H5Fclose);
    check<IoError>(file.id >= 0, "{}: cannot create checkpoint", temporary);
    write_attribute(file.id, "format", kFormat);
    write_attribute(file.id, "model", c.model);
    write_attribute(file.id, "model_options", options_json(c.options).dump());
    write_attribute(file.id, "optimizer", c.optimizer);
    write_attribute(file.id, "epoch", std::to_string(c.epoch));
    write_attribute(file.id, "step", std::to_string(c.step));
    if (c.batch > 0) {
      write_attribute(file.id, "batch", std::to_string(c.batch));
      write_attribute(file.id, "epoch_loss", fmt::format("{}", c.epoch_loss));
      write_attribute(file.id, "epoch_examples", std::to_string(c.epoch_examples));
    }
    write_attribute(file.id, "rng_state", std::to_string(c.rng_state));
    write_attribute(file.id, "recipe", c.recipe);
    if (!c.input_mean.empty())
      write_attribute(file.id, "input_normalization",
                      nlohmann::json{{"mean", c.input_mean}, {"std", c.input_std}}.dump());
    if (!c.graph.empty()) write_bytes(file.id, "graph", c.graph, temporary);
    Handle model(H5Gcreate2(file.id, "model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    for (const auto& [name, t] : c.state) {
      Handle group(H5Gcreate2(model.id, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
      check<IoError>(group.id >= 0, "{}: cannot write '{}'", temporary, name);
      write_tensor(group.id, "value", t, temporary);
      if (auto m = c.masks.find(name); m != c.masks.end()) write_tensor(group.id, "mask", m->second, temporary);
    }
    Handle optimizer(H5Gcreate2(file.id, "optimizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    for (const auto& [name, t] : c.optimizer_state) write_tensor(optimizer.id, name, t, temporary);
    check<IoError>(H5Fflush(file.id, H5F_SCOPE_GLOBAL) >= 0, "{}: cannot flush", temporary);
    for (Handle* group : {&model, &optimizer}) {
      group->close(group->id);
      group->id = -1;
    }
    check<IoError>(H5Fget_obj_count(file.id, H5F_OBJ_ALL) == 1, "{}: HDF5 objects left open", temporary);
    const ssize_t size = H5Fget_file_image(file.id, nullptr, 0);
    check<IoError>(size > 0, "{}: cannot take the file's image", temporary);
    image.resize(static_cast<size_t>(size));
    check<IoError>(H5Fget_file_image(file.id, image.data(), image.size()) == size, "{}: cannot take the file's image",
                   temporary);
  }
  // HDF5's image starts at the superblock, which records the user block before it.
  write_file_atomically(path, header_for(image) + image);
}

Checkpoint load_checkpoint(const std::string& path) {
  check<IoError>(fs::is_regular_file(path), "{}: no such checkpoint", path);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  std::string bytes = checked_hdf5_bytes(path);
  const auto limit = static_cast<int64_t>(bytes.size());
  // Opened from memory: the bytes checked are the bytes read.
  static std::atomic<int64_t> loads{0};  // a name of its own each time: HDF5 knows open files by name
  const std::string name = fmt::format("{} (in memory, {})", path, loads++);
  Handle access(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  check<IoError>(access.id >= 0 && H5Pset_fapl_core(access.id, size_t{1} << 20, 0) >= 0 &&
                     H5Pset_file_image(access.id, bytes.data(), bytes.size()) >= 0,
                 "{}: cannot set up HDF5's in-memory file", path);
  bytes = std::string();  // HDF5 holds its own copy
  Handle file(H5Fopen(name.c_str(), H5F_ACC_RDONLY, access.id), H5Fclose);
  check<FormatError>(file.id >= 0, "{}: cannot open as HDF5", path);
  const std::string format = read_attribute(file.id, "format", path, limit);
  check<FormatError>(format == kFormat, "{}: checkpoint format '{}', expected '{}'", path, format, kFormat);
  Checkpoint c;
  c.file = path;
  c.model = read_attribute(file.id, "model", path, limit);
  c.optimizer = read_attribute(file.id, "optimizer", path, limit);
  c.recipe = read_attribute(file.id, "recipe", path, limit);
  try {
    c.epoch = std::stoll(read_attribute(file.id, "epoch", path, limit));
    c.step = std::stoll(read_attribute(file.id, "step", path, limit));
    if (H5Aexists(file.id, "batch") > 0) {
      c.batch = std::stoll(read_attribute(file.id, "batch", path, limit));
      c.epoch_loss = std::stod(read_attribute(file.id, "epoch_loss", path, limit));
      c.epoch_examples = std::stoll(read_attribute(file.id, "epoch_examples", path, limit));
      check<FormatError>(c.batch > 0 && c.epoch_examples >= 0, "{}: batch {} with {} examples", path, c.batch,
                         c.epoch_examples);
    }
    c.rng_state = std::stoull(read_attribute(file.id, "rng_state", path, limit));
    const auto o = nlohmann::json::parse(read_attribute(file.id, "model_options", path, limit));
    c.options = {o.at("in_channels"), o.at("image_size"), o.at("num_classes"),
                 o.at("vocab_size"),  o.at("seq_len"),    o.at("dropout")};
    if (H5Aexists(file.id, "input_normalization") > 0) {
      const auto n = nlohmann::json::parse(read_attribute(file.id, "input_normalization", path, limit));
      c.input_mean = n.at("mean").get<std::vector<float>>();
      c.input_std = n.at("std").get<std::vector<float>>();
      check<FormatError>(!c.input_mean.empty() && c.input_mean.size() == c.input_std.size(),
                         "{}: input_normalization has {} means and {} deviations", path, c.input_mean.size(),
                         c.input_std.size());
    }
  } catch (const std::exception& e) {
    throw FormatError(fmt::format("{}: malformed checkpoint attributes: {}", path, e.what()));
  }
  if (H5Lexists(file.id, "graph", H5P_DEFAULT) > 0) c.graph = read_bytes(file.id, "graph", path, limit);
  check<FormatError>(H5Lexists(file.id, "model", H5P_DEFAULT) > 0, "{}: no /model group", path);
  Handle model(H5Gopen2(file.id, "model", H5P_DEFAULT), H5Gclose);
  for (const std::string& name : members(model.id)) {
    Handle group(H5Gopen2(model.id, name.c_str(), H5P_DEFAULT), H5Gclose);
    check<FormatError>(group.id >= 0, "{}: /model/{} is not a group", path, name);
    c.state.emplace(name, read_tensor(group.id, "value", path, limit));
    if (H5Lexists(group.id, "mask", H5P_DEFAULT) > 0) c.masks.emplace(name, read_tensor(group.id, "mask", path, limit));
  }
  if (H5Lexists(file.id, "optimizer", H5P_DEFAULT) > 0) {
    Handle optimizer(H5Gopen2(file.id, "optimizer", H5P_DEFAULT), H5Gclose);
    for (const std::string& name : members(optimizer.id))
      c.optimizer_state.emplace(name, read_tensor(optimizer.id, name, path, limit));
  }
  return c;
}

void capture_model(const layers::Module& model, Checkpoint& c) {
  c.state = model.state_dict();
  c.masks.clear();
  for (const auto& [name, p] : model.named_parameters())
    if (p->has_mask()) c.masks.emplace(name, p->mask().clone());
}

std::shared_ptr<layers::UnaryModule> build_model(const Checkpoint& c) {
  try {
    std::shared_ptr<layers::UnaryModule> model =
        c.graph.empty() ? layers::models::make_model(c.model, c.options)
                        : std::make_shared<engine::GraphModule>(engine::from_onnx(c.graph, c.model));
    layers::restore_quantizers(*model, c.state);
    model->load_state_dict(c.state);
    for (const auto& [name, p] : model->named_parameters())
      if (auto m = c.masks.find(name); m != c.masks.end()) p->set_mask(m->second.clone());
    return model;
  } catch (const ShapeError& e) {  // a tensor that does not fit the model: name the file it came from
    if (c.file.empty()) throw;
    throw FormatError(fmt::format("{}: {}", c.file, e.what()));
  }
}

}  // namespace neurite::train
