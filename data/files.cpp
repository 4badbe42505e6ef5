// CIFAR-10 binary batches, HDF5 arrays and image folders.
#include <hdf5.h>
#include <fmt/format.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <vector>

#include "neurite/error.h"
#include "neurite/data/readers.h"

namespace neurite::data {

namespace fs = std::filesystem;
using autograd::Dtype;

std::shared_ptr<TensorDataset> load_cifar10(const std::vector<std::string>& files) {
  constexpr int64_t kImage = 3 * 32 * 32, kRecord = 1 + kImage;
  std::vector<uint8_t> bytes;
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    check<IoError>(in.good(), "{}: cannot open", path);
    std::vector<uint8_t> chunk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    check<FormatError>(!chunk.empty() && chunk.size() % kRecord == 0,
                       "{}: {} bytes is not a whole number of {}-byte CIFAR-10 records", path, chunk.size(), kRecord);
    bytes.insert(bytes.end(), chunk.begin(), chunk.end());
  }
  const int64_t n = static_cast<int64_t>(bytes.size()) / kRecord;
  Tensor x = Tensor::empty({n, 3, 32, 32}), y = Tensor::empty({n}, Dtype::i64);
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* record = bytes.data() + i * kRecord;
    check<FormatError>(record[0] < 10, "{}: record {} has label {}, expected 0-9", files.front(), i, record[0]);
    y.data<int64_t>()[i] = record[0];
    for (int64_t k = 0; k < kImage; ++k) x.data<float>()[i * kImage + k] = record[1 + k] * (1.0f / 255.0f);
  }
  return std::make_shared<TensorDataset>(x, y, 10, files.front());
}

namespace {

// Closes an HDF5 handle on scope exit.
struct H5Handle {
  hid_t id;
  herr_t (*close)(hid_t);
  ~H5Handle() {
    if (id >= 0) close(id);
  }
};

Tensor read_h5_dataset(hid_t file, const std::string& path, const char* name, bool labels) {
  check<FormatError>(H5Lexists(file, name, H5P_DEFAULT) > 0, "{}: no dataset '{}'", path, name);
  H5Handle set{H5Dopen2(file, name, H5P_DEFAULT), H5Dclose};
  H5Handle space{H5Dget_space(set.id), H5Sclose};
  H5Handle type{H5Dget_type(set.id), H5Tclose};
  const int rank = H5Sget_simple_extent_ndims(space.id);
  check<FormatError>(rank >= 1 && rank <= 8, "{}: dataset '{}' has rank {}", path, name, rank);
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.id, dims.data(), nullptr);
  Shape shape(dims.begin(), dims.end());
  // The values claimed against the bytes stored for them (zlib, HDF5's
  // usual filter, shrinks data 1032:1 at most) and against memory, before
  // allocating: a damaged header can claim any shape.
  const auto stored = static_cast<int64_t>(H5Dget_storage_size(set.id));
  autograd::checked_bytes(shape, 1, std::min(autograd::memory_bytes() / 8, stored * 1032 + 4096),
                          fmt::format("{}: dataset '{}' ({} bytes stored)", path, name, stored));
  const H5T_class_t cls = H5Tget_class(type.id);
  if (labels) {
    check<FormatError>(cls == H5T_INTEGER && rank == 1, "{}: '{}' must be a 1-D integer dataset", path, name);
    Tensor y = Tensor::empty(shape, Dtype::i64);
    check<FormatError>(H5Dread(set.id, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, y.bytes()) >= 0,
                       "{}: cannot read '{}'", path, name);
    return y;
  }
  check<FormatError>(cls == H5T_FLOAT || cls == H5T_INTEGER, "{}: '{}' must be float or integer", path, name);
  if (cls == H5T_INTEGER && H5Tget_size(type.id) > 1) {  // token ids (N, L), for sequence models
    Tensor tokens = Tensor::empty(shape, Dtype::i64);
    check<FormatError>(H5Dread(set.id, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, tokens.bytes()) >= 0,
                       "{}: cannot read '{}'", path, name);
    return tokens;
  }
  Tensor x = Tensor::empty(shape);
  if (cls == H5T_FLOAT) {
    check<FormatError>(H5Dread(set.id, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x.bytes()) >= 0,
                       "{}: cannot read '{}'", path, name);
  } else {
    std::vector<uint8_t> raw(static_cast<size_t>(x.numel()));
    check<FormatError>(H5Dread(set.id, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()) >= 0,
                       "{}: cannot read '{}'", path, name);
    for (size_t i = 0; i < raw.size(); ++i) x.data<float>()[i] = raw[i] * (1.0f / 255.0f);
  }
  return x;
}

// A bound on labels that keeps a damaged file from sizing a classifier of
// billions of outputs; far above any real label set.
constexpr int64_t kMaxClasses = int64_t{1} << 24;

// Images larger than this (8192 x 8192) are refused: a damaged header can
// claim any size, which OpenCV would allocate before reading a pixel.
constexpr int64_t kMaxPixels = int64_t{1} << 26;

uint32_t big_endian(const unsigned char* p, int bytes) {
  uint32_t v = 0;
  for (int i = 0; i < bytes; ++i) v = v << 8 | p[i];
  return v;
}

// The width and height a PNG, JPEG or BMP header claims; nullopt for other
// formats and headers that do not parse (OpenCV judges those).
std::optional<std::pair<int64_t, int64_t>> claimed_size(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char h[26] = {};
  in.read(reinterpret_cast<char*>(h), sizeof h);
  const auto n = in.gcount();
  if (n >= 24 && std::memcmp(h, "\x89PNG\r\n\x1a\n", 8) == 0 && std::memcmp(h + 12, "IHDR", 4) == 0)
    return std::pair<int64_t, int64_t>{big_endian(h + 16, 4), big_endian(h + 20, 4)};
  if (n >= 26 && h[0] == 'B' && h[1] == 'M') {
    auto le32 = [&](int at) { return static_cast<int32_t>(h[at] | h[at + 1] << 8 | h[at + 2] << 16 | uint32_t{h[at + 3]} << 24); };
    return std::pair<int64_t, int64_t>{std::abs(int64_t{le32(18)}), std::abs(int64_t{le32(22)})};
  }
  if (n >= 2 && h[0] == 0xFF && h[1] == 0xD8) {
    // JPEG: the first start-of-frame marker, found as libjpeg finds it (bytes
    // between segments skipped), in the first 4 MB.
    in.clear();
    in.seekg(0);
    std::vector<unsigned char> b(size_t{4} << 20);
    in.read(reinterpret_cast<char*>(b.data()), static_cast<std::streamsize>(b.size()));
    const auto end = static_cast<size_t>(in.gcount());
    for (size_t i = 2; i + 9 <= end;) {
      const int marker = b[i + 1];
      if (b[i] != 0xFF || marker == 0xFF) {
        ++i;
      } else if (marker == 0x00 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD9)) {
        i += 2;
      } else if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) {
        return std::pair<int64_t, int64_t>{big_endian(&b[i + 7], 2), big_endian(&b[i + 5], 2)};
      } else {
        i += 2 + big_endian(&b[i + 2], 2);
      }
    }
  }
  return std::nullopt;
}

// Whether a PNG's chunks run whole to its IEND: a cut file is refused here,
// before libpng (which prints its own line about it) reads it.
bool png_complete(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char h[8];
  if (!in.read(reinterpret_cast<char*>(h), 8) || std::memcmp(h, "\x89PNG\r\n\x1a\n", 8) != 0) return true;  // not a PNG
  while (in.read(reinterpret_cast<char*>(h), 8)) {
    if (std::memcmp(h + 4, "IEND", 4) == 0) return true;
    in.seekg(static_cast<std::streamoff>(big_endian(h, 4)) + 4, std::ios::cur);  // data and CRC
  }
  return false;
}

// OpenCV reports some damaged images (a size past its limits) by throwing.
cv::Mat read_image(const std::string& path, int flags) {
  check<FormatError>(png_complete(path), "{}: cannot decode image: a PNG cut short (no IEND chunk)", path);
  if (const auto size = claimed_size(path))
    check<FormatError>(size->first <= kMaxPixels && size->second <= kMaxPixels &&  // no overflow in the product
                           size->first * size->second <= kMaxPixels,
                       "{}: the image claims {} x {} pixels, more than the {} Neurite reads", path, size->first,
                       size->second, kMaxPixels);
  try {
    return cv::imread(path, flags);
  } catch (const cv::Exception& e) {
    throw FormatError(fmt::format("{}: cannot decode image: {}", path, e.err));
  }
}

}  // namespace

std::shared_ptr<TensorDataset> load_h5(const std::string& path) {
  check<IoError>(fs::is_regular_file(path), "{}: no such file", path);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors become exceptions, not prints
  H5Handle file{H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose};
  check<FormatError>(file.id >= 0, "{}: not an HDF5 file", path);
  Tensor x = read_h5_dataset(file.id, path, "x", false), y = read_h5_dataset(file.id, path, "y", true);
  std::vector<Tensor> more_inputs;
  for (int k = 2; H5Lexists(file.id, fmt::format("x{}", k).c_str(), H5P_DEFAULT) > 0; ++k)
    more_inputs.push_back(read_h5_dataset(file.id, path, fmt::format("x{}", k).c_str(), false));
  int64_t classes = 0;
  for (int64_t i = 0; i < y.numel(); ++i) {
    const int64_t label = y.data<int64_t>()[i];
    check<FormatError>(label >= 0 && label < kMaxClasses, "{}: y[{}] is {}: labels are class indices in [0, {})", path, i,
                       label, kMaxClasses);
    classes = std::max(classes, label + 1);
  }
  return std::make_shared<TensorDataset>(x, y, classes, path, std::move(more_inputs));
}

void save_h5(const std::string& path, const Tensor& x, const Tensor& y, const std::vector<Tensor>& more_inputs) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  H5Handle file{H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose};
  check<IoError>(file.id >= 0, "{}: cannot create", path);
  auto write = [&](const char* name, const Tensor& t, hid_t type) {
    std::vector<hsize_t> dims(t.shape().begin(), t.shape().end());
    H5Handle space{H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose};
    H5Handle set{H5Dcreate2(file.id, name, type, space.id, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose};
    check<IoError>(set.id >= 0 && H5Dwrite(set.id, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.bytes()) >= 0,
                   "{}: cannot write '{}'", path, name);
  };
  auto write_input = [&](const std::string& name, const Tensor& t) {  // token ids stay integers
    write(name.c_str(), t, t.dtype() == Dtype::i64 ? H5T_NATIVE_INT64 : H5T_NATIVE_FLOAT);
  };
  write_input("x", x);
  for (size_t k = 0; k < more_inputs.size(); ++k) write_input(fmt::format("x{}", k + 2), more_inputs[k]);
  write("y", y, H5T_NATIVE_INT64);
}

ImageFolder::ImageFolder(const std::string& root) {
  check<IoError>(fs::is_directory(root), "{}: no such folder", root);
  for (const auto& entry : fs::directory_iterator(root))
    if (entry.is_directory()) classes_.push_back(entry.path().filename().string());
  std::sort(classes_.begin(), classes_.end());
  check<FormatError>(!classes_.empty(), "{}: no class subfolders", root);
  const std::set<std::string> image_types = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp"};
  for (size_t c = 0; c < classes_.size(); ++c) {
    std::vector<std::string> files;
    for (const auto& entry : fs::directory_iterator(fs::path(root) / classes_[c])) {
      std::string ext = entry.path().extension().string();
      std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
      if (entry.is_regular_file() && image_types.count(ext)) files.push_back(entry.path().string());
    }
    std::sort(files.begin(), files.end());
    for (auto& f : files) {
      files_.push_back(f);
      labels_.push_back(static_cast<int64_t>(c));
    }
  }
  check<FormatError>(!files_.empty(), "{}: no images in its class subfolders", root);
  const cv::Mat first = read_image(files_.front(), cv::IMREAD_UNCHANGED);
  check<FormatError>(!first.empty(), "{}: cannot decode image", files_.front());
  channels_ = first.channels() == 1 ? 1 : 3;
  height_ = first.rows;
  width_ = first.cols;
}

Example ImageFolder::get(int64_t index) const {
  const std::string& path = files_.at(static_cast<size_t>(index));
  cv::Mat image = read_image(path, channels_ == 1 ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR);
  check<FormatError>(!image.empty(), "{}: cannot decode image", path);
  if (image.rows != height_ || image.cols != width_)
    cv::resize(image, image, cv::Size(static_cast<int>(width_), static_cast<int>(height_)), 0, 0, cv::INTER_AREA);
  if (channels_ == 3) cv::cvtColor(image, image, cv::COLOR_BGR2RGB);
  Tensor x = Tensor::empty({channels_, height_, width_});
  float* p = x.data<float>();
  const int64_t plane = height_ * width_;
  for (int64_t r = 0; r < height_; ++r) {
    const uint8_t* row = image.ptr<uint8_t>(static_cast<int>(r));
    for (int64_t col = 0; col < width_; ++col)
      for (int64_t ch = 0; ch < channels_; ++ch)
        p[ch * plane + r * width_ + col] = row[col * channels_ + ch] * (1.0f / 255.0f);
  }
  return {x, labels_[static_cast<size_t>(index)]};
}

}  // namespace neurite::data
