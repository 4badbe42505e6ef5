#include "neurite/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "neurite/error.h"

namespace neurite {

namespace fs = std::filesystem;

namespace {

// fsync of a file or folder; false with errno set on failure.
bool sync_path(const std::string& path, bool folder) {
  const int fd = ::open(path.c_str(), folder ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return false;
  const bool synced = ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  errno = saved;
  return synced;
}

}  // namespace

void write_atomically(const std::string& path, const std::function<void(const std::string& temporary)>& write) {
  const std::string temporary = path + ".tmp";
  try {
    write(temporary);
    check<IoError>(sync_path(temporary, false), "cannot flush {} to disk: {}", temporary, std::strerror(errno));
    std::error_code error;
    fs::rename(temporary, path, error);
    check<IoError>(!error, "cannot rename {} into place: {}", temporary, error.message());
  } catch (const std::exception& e) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    throw IoError(fmt::format("{}: not written ({}); the previous file, if any, is unchanged", path, e.what()));
  }
  const fs::path folder = fs::path(path).parent_path();
  sync_path(folder.empty() ? "." : folder.string(), true);  // the rename itself; a folder that cannot sync still holds it
}

void write_file_atomically(const std::string& path, std::string_view bytes) {
  write_atomically(path, [&](const std::string& temporary) {
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    check<IoError>(fd >= 0, "cannot create {}: {}", temporary, std::strerror(errno));
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const int saved = errno;
        ::close(fd);
        throw IoError(fmt::format("cannot write {}: {}", temporary, std::strerror(n < 0 ? saved : ENOSPC)));
      }
      done += static_cast<size_t>(n);
    }
    check<IoError>(::close(fd) == 0, "cannot close {}: {}", temporary, std::strerror(errno));
  });
}

}  // namespace neurite
