#include "tests/support/tmpfs.h"

#include <sys/mount.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"

namespace tributary::testing {

absl::StatusOr<std::unique_ptr<Tmpfs>> Tmpfs::Mount(std::string directory,
                                                    size_t size_bytes) {
  std::error_code error;
  std::filesystem::create_directories(directory, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("mkdir ", directory, ": ", error.message()));
  }
  const std::string data = absl::StrCat("size=", size_bytes);
  if (mount("tmpfs", directory.c_str(), "tmpfs", 0, data.c_str()) != 0) {
    const int mount_error = errno;
    const std::string message =
        absl::StrCat("mount -t tmpfs -o ", data, " tmpfs ", directory, ": ",
                     std::strerror(mount_error));
    if (mount_error == EPERM || mount_error == EACCES) {
      return absl::PermissionDeniedError(message);
    }
    return absl::InternalError(message);
  }
  return std::unique_ptr<Tmpfs>(new Tmpfs(std::move(directory)));
}

Tmpfs::~Tmpfs() {
  if (umount(path_.c_str()) != 0) umount2(path_.c_str(), MNT_DETACH);
}

absl::Status Tmpfs::Fill() {
  const std::string filler = absl::StrCat(path_, "/filler");
  std::FILE* file = std::fopen(filler.c_str(), "a");
  if (file == nullptr) {
    if (errno == ENOSPC) return absl::OkStatus();  // not even room to open
    return absl::InternalError(
        absl::StrCat("open ", filler, ": ", std::strerror(errno)));
  }
  std::setvbuf(file, nullptr, _IONBF, 0);
  const std::string block(4096, '\0');
  // Bounded by the tmpfs's size: every round takes one more block.
  while (std::fwrite(block.data(), 1, block.size(), file) == block.size()) {
  }
  const int write_error = errno;
  std::fclose(file);
  if (write_error != ENOSPC) {
    return absl::InternalError(
        absl::StrCat("filling ", filler, ": ", std::strerror(write_error)));
  }
  return absl::OkStatus();
}

absl::Status Tmpfs::Free() {
  std::error_code error;
  std::filesystem::remove(absl::StrCat(path_, "/filler"), error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("remove filler in ", path_, ": ", error.message()));
  }
  return absl::OkStatus();
}

}  // namespace tributary::testing
