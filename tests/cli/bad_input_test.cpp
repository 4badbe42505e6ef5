// The bad-input matrix of docs/bad-input.md: every kind of file the command
// line reads, each missing, empty, cut in half, with a header byte flipped,
// of the wrong kind, claiming a huge size, of the wrong type and of the wrong
// shape. Each gets one line naming the file and what is wrong, and exit 1:
// never a crash, a hang or numbers. One test per kind of file.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <fstream>
#include <functional>
#include <iterator>
#include <opencv2/imgcodecs.hpp>

#include "neurite/train/checkpoint.h"
#include "support/temp_dir.h"
#include "tests/cli/cli_support.h"

namespace {

using namespace neurite::testing;

std::string bytes_of(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// Writes `good` with its first `from` replaced by `to`.
std::function<void(const fs::path&)> edit(const std::string& good, const std::string& from, const std::string& to) {
  return [good, from, to](const fs::path& p) {
    std::string bytes = good;
    const size_t at = bytes.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) bytes.replace(at, from.size(), to);
    write(p, bytes);
  };
}

// A row of the matrix: how the file is damaged and a piece of the message.
struct Damage {
  std::string name;
  std::function<void(const fs::path&)> apply;  // to the good file at the path
  std::string message;
};

// The generic damages of a file whose good bytes are `good`; the rest are the format's own.
std::vector<Damage> common(const std::string& good, size_t header_byte, const std::string& other_kind,
                           const std::vector<std::string>& messages) {
  std::string flipped = good;
  flipped[header_byte] = static_cast<char>(flipped[header_byte] ^ 0xFF);
  return {
      {"missing", [](const fs::path& p) { fs::remove(p); }, messages[0]},
      {"empty", [](const fs::path& p) { write(p, ""); }, messages[1]},
      {"truncated at 50 %", [good](const fs::path& p) { write(p, good.substr(0, good.size() / 2)); }, messages[2]},
      {"header byte flipped", [flipped](const fs::path& p) { write(p, flipped); }, messages[3]},
      {"wrong kind of file", [other_kind](const fs::path& p) { write(p, other_kind); }, messages[4]},
  };
}

// Runs `command` on each damaged copy of `file` (restored to `good` between rows).
void check_rows(const fs::path& file, const std::string& good, const std::string& command,
                const std::vector<Damage>& rows) {
  for (const Damage& d : rows) {
    write(file, good);
    d.apply(file);
    const Result r = neurite_cli(command);
    EXPECT_EQ(r.code, 1) << d.name << ": " << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << d.name << ": " << r.out;
    EXPECT_NE(r.out.find(d.message), std::string::npos) << d.name << ": '" << d.message << "' not in " << r.out;
    std::cout << "| " << file.filename().string() << " | " << d.name << " | " << r.out.substr(0, r.out.size() - 1)
              << " |\n";
  }
  write(file, good);
}

// What every test starts from: the bands data set and a cnn trained on it for one epoch.
struct Fixture {
  fs::path dir;
  std::string data, checkpoint;
};

Fixture trained(const std::string& name) {
  Fixture f{temp_dir(name), {}, {}};
  f.data = write_bands(f.dir, 60, 81);
  const Result r = neurite_cli("train cnn --data h5:" + f.data + " --epochs 1 --threads 1 --out " + (f.dir / "run").string());
  EXPECT_EQ(r.code, 0) << r.out;
  f.checkpoint = (f.dir / "run" / "checkpoint.h5").string();
  return f;
}

TEST(BadInput, Checkpoint) {
  const Fixture f = trained("bad_checkpoint");
  const fs::path file = f.dir / "model.h5";
  const std::string good = bytes_of(f.checkpoint);
  auto edited = [&](const std::function<void(neurite::train::Checkpoint&)>& edit) {
    return [&, edit](const fs::path& p) {
      auto c = neurite::train::load_checkpoint(f.checkpoint);
      edit(c);
      neurite::train::save_checkpoint(p.string(), c);
    };
  };
  std::vector<Damage> rows = common(good, 0, bytes_of(f.data),
                                    {"no such checkpoint", "not a Neurite checkpoint", "damaged checkpoint",
                                     "not a Neurite checkpoint", "not a Neurite checkpoint"});
  std::string huge = good;
  const size_t at = huge.find("bytes ") + 6;
  huge.replace(at, huge.find('\n', at) - at, "1000000000000000");
  rows.push_back({"huge claimed size", [huge](const fs::path& p) { write(p, huge); }, "damaged checkpoint"});
  rows.push_back({"wrong dtype",
                  edited([](auto& c) { c.state.at("features.0.weight") = c.state.at("features.0.weight").to(neurite::autograd::Dtype::i64); }),
                  "model.h5: load_state_dict: 'features.0.weight' is int64 [32,1,3,3] in the state, float32"});
  rows.push_back({"wrong shape", edited([](auto& c) { c.state.at("features.0.weight") = Tensor::zeros({3, 3}); }),
                  "model.h5: load_state_dict: 'features.0.weight' is float32 [3,3] in the state"});
  check_rows(file, good, "eval " + file.string() + " --data h5:" + f.data, rows);
}

TEST(BadInput, OnnxModel) {
  const fs::path dir = temp_dir("bad_onnx"), file = dir / "model.onnx";
  const std::string golden = std::string(NEURITE_SOURCE_DIR) + "/tests/golden/";
  const std::string good = bytes_of(golden + "onnx/mlp_opset17.onnx");
  const std::string input = golden + "onnx/mlp_input.npy";
  std::vector<Damage> rows = common(good, 0, bytes_of(input),
                                    {"cannot open", "has no graph", "not an ONNX model", "not an ONNX model",
                                     "not an ONNX model"});
  auto copy_of = [](const std::string& from) { return [from](const fs::path& p) { write(p, bytes_of(from)); }; };
  rows.push_back({"huge claimed size", copy_of(golden + "bad/huge_initializer.onnx"), "needs 4398046511104 bytes"});
  rows.push_back({"wrong dtype", copy_of(golden + "bad/double_initializer.onnx"), "has ONNX type 11"});
  rows.push_back({"wrong shape", copy_of(golden + "onnx/qat_opset17.onnx"), "input"});
  check_rows(file, good, "infer " + file.string() + " --input " + input + " --out " + (dir / "out.npy").string(), rows);
}

TEST(BadInput, Recipe) {
  const fs::path dir = temp_dir("bad_recipe"), file = dir / "recipe.yaml";
  const std::string good = bytes_of(std::string(NEURITE_SOURCE_DIR) + "/recipes/library/gmp90_transfer.yaml");
  std::vector<Damage> rows = common(good, 0, std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16),
                                    {"no such recipe", "a recipe must be a YAML mapping", "no modifiers found",
                                     "a recipe must be a YAML mapping", "malformed YAML"});
  const auto replaced = [good](const std::string& from, const std::string& to) { return edit(good, from, to); };
  rows.push_back({"huge claimed size", replaced("num_epochs: 8", "num_epochs: 1e12"), "a recipe may reach epoch 100000 at most"});
  rows.push_back({"wrong dtype", replaced("final_sparsity: 0.9", "final_sparsity: high"), "final_sparsity"});
  rows.push_back({"wrong shape", replaced("__ALL_PRUNABLE__", "[no.such.weight]"), "no.such.weight"});
  check_rows(file, good, "recipe check " + file.string() + " --model mlp", rows);
}

// An HDF5 data file with dataset x as `make` writes it (and y).
void write_h5(const fs::path& path, const std::function<void(hid_t)>& make) {
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  make(file);
  const hsize_t n = 4;
  const hid_t space = H5Screate_simple(1, &n, nullptr);
  const hid_t y = H5Dcreate2(file, "y", H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  const int64_t labels[4] = {0, 1, 2, 0};
  H5Dwrite(y, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels);
  H5Dclose(y);
  H5Sclose(space);
  H5Fclose(file);
}

TEST(BadInput, Hdf5Data) {
  const Fixture f = trained("bad_h5");
  const fs::path file = f.dir / "data.h5";
  const std::string good = bytes_of(f.data);
  std::vector<Damage> rows = common(good, 0, bytes_of(f.checkpoint),
                                    {"no such file", "not an HDF5 file", "not an HDF5 file", "not an HDF5 file",
                                     "no dataset 'x'"});
  rows.push_back({"huge claimed size",
                  [](const fs::path& p) {
                    write_h5(p, [](hid_t file) {  // chunked: HDF5 stores none of the 10^13 claimed values
                      const hsize_t dims[4] = {4, 1, 1000000, 10000000}, chunk[4] = {1, 1, 1, 1024};
                      const hid_t space = H5Screate_simple(4, dims, nullptr), plist = H5Pcreate(H5P_DATASET_CREATE);
                      H5Pset_chunk(plist, 4, chunk);
                      H5Dclose(H5Dcreate2(file, "x", H5T_NATIVE_FLOAT, space, H5P_DEFAULT, plist, H5P_DEFAULT));
                      H5Pclose(plist);
                      H5Sclose(space);
                    });
                  },
                  "more than the"});
  rows.push_back({"wrong dtype",
                  [](const fs::path& p) {
                    write_h5(p, [](hid_t file) {
                      const hsize_t dims[1] = {4};
                      const hid_t space = H5Screate_simple(1, dims, nullptr), type = H5Tcopy(H5T_C_S1);
                      H5Tset_size(type, 8);
                      H5Dclose(H5Dcreate2(file, "x", type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
                      H5Tclose(type);
                      H5Sclose(space);
                    });
                  },
                  "'x' must be float or integer"});
  rows.push_back({"wrong shape",
                  [](const fs::path& p) {
                    neurite::data::save_h5(p.string(), Tensor::rand({4, 1, 5, 5}, 1), Tensor::randint({4}, 2, 0, 3));
                  },
                  "5"});
  check_rows(file, good, "eval " + f.checkpoint + " --data h5:" + file.string(), rows);
}

std::string idx_images(uint32_t n, uint32_t h, uint32_t w, uint8_t type = 8, bool with_pixels = true) {
  std::string bytes{0, 0, static_cast<char>(type), 3};
  for (uint32_t d : {n, h, w})
    for (int shift : {24, 16, 8, 0}) bytes.push_back(static_cast<char>((d >> shift) & 0xFF));
  if (with_pixels) bytes.append(static_cast<size_t>(n) * h * w, '\x40');
  return bytes;
}

TEST(BadInput, Idx) {
  const Fixture f = trained("bad_idx");
  const fs::path file = f.dir / "set-images-idx3-ubyte";
  std::string labels{0, 0, 8, 1, 0, 0, 0, 4, 0, 1, 2, 0};
  write(f.dir / "set-labels-idx1-ubyte", labels);
  const std::string good = idx_images(4, 12, 12);
  std::vector<Damage> rows = common(good, 2, bytes_of(f.checkpoint),
                                    {"no such file", "not an unsigned-byte IDX file", "truncated: the header announces",
                                     "not an unsigned-byte IDX file", "not an unsigned-byte IDX file"});
  rows.push_back({"huge claimed size", [](const fs::path& p) { write(p, idx_images(1u << 20, 1u << 20, 1u << 20, 8, false)); },
                  "more than the"});
  rows.push_back({"wrong dtype", [](const fs::path& p) { write(p, idx_images(4, 12, 12, 0x0D)); },
                  "not an unsigned-byte IDX file"});
  rows.push_back({"wrong shape", [](const fs::path& p) { write(p, idx_images(4, 5, 5)); }, "5"});
  check_rows(file, good, "eval " + f.checkpoint + " --data idx:" + (f.dir / "set").string(), rows);
}

TEST(BadInput, ImageFolder) {
  const Fixture f = trained("bad_images");
  for (const char* c : {"a", "b", "c"}) {
    fs::create_directories(f.dir / "images" / c);
    cv::imwrite((f.dir / "images" / c / "1.png").string(), cv::Mat(12, 12, CV_8UC1, cv::Scalar(60)));
  }
  const fs::path file = f.dir / "images" / "a" / "0.png";
  cv::imwrite(file.string(), cv::Mat(12, 12, CV_8UC1, cv::Scalar(90)));
  const std::string good = bytes_of(file);
  std::vector<Damage> rows = common(good, 1, "a line of text\n",
                                    {"", "cannot decode image", "cannot decode image", "cannot decode image",
                                     "cannot decode image"});
  rows.erase(rows.begin());  // missing: the folder (a missing image is not one of the folder's)
  const Result missing = neurite_cli("eval " + f.checkpoint + " --data folder:" + (f.dir / "none").string());
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.out.find("none: no such folder"), std::string::npos) << missing.out;
  std::string huge = good;  // IHDR's width and height (bytes 16-23) claim 100000 x 100000
  for (int k : {16, 20}) huge.replace(k, 4, std::string("\x00\x01\x86\xa0", 4));
  rows.push_back({"huge claimed size", [huge](const fs::path& p) { write(p, huge); }, "claims 100000 x 100000 pixels"});
  check_rows(file, good, "eval " + f.checkpoint + " --data folder:" + (f.dir / "images").string(), rows);
}

TEST(BadInput, NpyInput) {
  const fs::path dir = temp_dir("bad_npy"), file = dir / "input.npy";
  const std::string golden = std::string(NEURITE_SOURCE_DIR) + "/tests/golden/onnx/";
  const std::string good = bytes_of(golden + "mlp_input.npy");
  std::vector<Damage> rows = common(good, 1, bytes_of(golden + "mlp_opset17.onnx"),
                                    {"cannot open", "not a .npy file", "needs 768 bytes, more than the 320 there are",
                                     "not a .npy file", "not a .npy file"});
  const auto header = [good](const std::string& from, const std::string& to) { return edit(good, from, to); };
  rows.push_back({"huge claimed size", header("'shape': (", "'shape': (1000000000, "), "more than the"});
  rows.push_back({"wrong dtype", header("<f4", "<f8"), "dtype '<f8' is not supported"});
  rows.push_back({"wrong shape", [](const fs::path& p) { neurite::autograd::save_npy(p.string(), Tensor::rand({2, 3}, 1)); },
                  "input"});
  check_rows(file, good, "infer " + golden + "mlp_opset17.onnx --input " + file.string() + " --out " + (dir / "o.npy").string(),
             rows);
}

TEST(BadInput, RunArguments) {
  const Fixture f = trained("bad_args");
  const fs::path file = f.dir / "run" / "args.json";
  const std::string good = bytes_of(file);
  std::vector<Damage> rows = common(good, 0, bytes_of(f.checkpoint),
                                    {"no args.json", "not a JSON object", "not a JSON object", "not a JSON object",
                                     "not a JSON object"});
  const auto replaced = [good](const std::string& from, const std::string& to) { return edit(good, from, to); };
  rows.push_back({"huge claimed size", replaced("\"threads\": 1", "\"threads\": 100000000"), "threads"});
  rows.push_back({"wrong dtype", replaced("\"seed\": 0", "\"seed\": \"zero\""), "args.json has 'seed': \"zero\""});
  rows.push_back({"wrong shape", [](const fs::path& p) { write(p, "[1, 2, 3]"); }, "not a JSON object"});
  check_rows(file, good, "train --resume " + (f.dir / "run").string() + " --epochs 2", rows);
}

}  // namespace
