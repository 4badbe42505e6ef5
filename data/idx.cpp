// IDX: a big-endian header (0, 0, type, dims, then each extent as uint32)
// followed by the data. zlib's gz* functions read plain and gzip files alike.
#include <zlib.h>

#include <filesystem>
#include <vector>

#include "neurite/error.h"
#include "neurite/data/readers.h"

namespace neurite::data {

namespace {

struct IdxFile {
  std::vector<int64_t> dims;
  std::vector<uint8_t> bytes;
};

IdxFile read_idx(const std::string& path, size_t want_dims) {
  check<IoError>(std::filesystem::is_regular_file(path), "{}: no such file", path);
  gzFile f = gzopen(path.c_str(), "rb");
  check<IoError>(f != nullptr, "{}: cannot open", path);
  auto read = [&](void* into, size_t n) { return gzread(f, into, static_cast<unsigned>(n)) == static_cast<int>(n); };
  IdxFile out;
  uint8_t magic[4];
  bool ok = read(magic, 4) && magic[0] == 0 && magic[1] == 0 && magic[2] == 0x08 && magic[3] == want_dims;
  if (!ok) {
    gzclose(f);
    throw FormatError(fmt::format("{}: not an unsigned-byte IDX file with {} dimensions", path, want_dims));
  }
  for (size_t d = 0; d < want_dims && ok; ++d) {
    uint8_t be[4];
    ok = read(be, 4);
    out.dims.push_back((int64_t{be[0]} << 24) | (be[1] << 16) | (be[2] << 8) | be[3]);
  }
  size_t total = 0;
  try {
    // Floats of 4 bytes each are made of the bytes: no header may claim more than memory holds.
    if (ok) total = static_cast<size_t>(autograd::checked_bytes(out.dims, 4, autograd::memory_bytes(), path)) / 4;
  } catch (...) {
    gzclose(f);
    throw;
  }
  // Read as the data comes, in chunks: a header that claims more than the
  // file holds is found out before all of it is allocated.
  for (size_t done = 0; ok && done < total;) {
    const size_t chunk = std::min<size_t>(total - done, size_t{1} << 26);
    out.bytes.resize(done + chunk);
    ok = read(out.bytes.data() + done, chunk);
    done += chunk;
  }
  gzclose(f);
  check<FormatError>(ok, "{}: truncated: the header announces {} bytes of data", path, total);
  return out;
}

std::string with_gz(const std::string& path) {
  return std::filesystem::exists(path) || !std::filesystem::exists(path + ".gz") ? path : path + ".gz";
}

}  // namespace

Tensor read_idx_images(const std::string& path) {
  const IdxFile f = read_idx(path, 3);
  Tensor x = Tensor::empty({f.dims[0], 1, f.dims[1], f.dims[2]});
  float* p = x.data<float>();
  for (size_t i = 0; i < f.bytes.size(); ++i) p[i] = static_cast<float>(f.bytes[i]) * (1.0f / 255.0f);
  return x;
}

Tensor read_idx_labels(const std::string& path) {
  const IdxFile f = read_idx(path, 1);
  Tensor y = Tensor::empty({f.dims[0]}, autograd::Dtype::i64);
  for (size_t i = 0; i < f.bytes.size(); ++i) y.data<int64_t>()[i] = f.bytes[i];
  return y;
}

std::shared_ptr<TensorDataset> load_idx(const std::string& prefix) {
  const std::string images = with_gz(prefix + "-images-idx3-ubyte"), labels = with_gz(prefix + "-labels-idx1-ubyte");
  Tensor y = read_idx_labels(labels);
  int64_t classes = 0;
  for (int64_t i = 0; i < y.numel(); ++i) classes = std::max(classes, y.data<int64_t>()[i] + 1);
  return std::make_shared<TensorDataset>(read_idx_images(images), y, classes, images);
}

}  // namespace neurite::data
