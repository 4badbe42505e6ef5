// neurite/files.h — writing files so that nothing is lost: a crash, a kill
// or a full disk leaves either the old file or the new one, never a torn one.
//
//   write_file_atomically("run/summary.json", text);
//   write_atomically("run/checkpoint.h5", [&](const std::string& tmp) { write_hdf5(tmp); });
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace neurite {

// `write` fills PATH.tmp, which is then flushed to the disk (fsync), renamed
// over PATH, and the folder synced so that the rename survives a power cut.
// On any failure (an exception from `write`, a full disk) the temporary is
// removed, PATH is left as it was, and IoError names PATH and the cause.
void write_atomically(const std::string& path, const std::function<void(const std::string& temporary)>& write);
// `bytes` as the whole of PATH, the same way.
void write_file_atomically(const std::string& path, std::string_view bytes);

}  // namespace neurite
