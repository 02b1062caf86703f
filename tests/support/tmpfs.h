// A small tmpfs that a test mounts over a directory of its own, to give a
// store or a child program a disk that fills up; and the filler that fills
// it. Mounting needs CAP_SYS_ADMIN (root here): without it Mount returns
// PermissionDenied, which tests turn into GTEST_SKIP, never a failure.
// Single-threaded: the test's thread only.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tributary::testing {

class Tmpfs {
 public:
  // Mounts a tmpfs of `size_bytes` over `directory` (created if missing).
  // PermissionDenied without the privilege to mount.
  static absl::StatusOr<std::unique_ptr<Tmpfs>> Mount(std::string directory,
                                                      size_t size_bytes);
  // Unmounts (lazily if the mount is still busy).
  ~Tmpfs();
  Tmpfs(const Tmpfs&) = delete;
  Tmpfs& operator=(const Tmpfs&) = delete;

  const std::string& path() const { return path_; }

  // Appends to "<path>/filler" until the tmpfs has no block left; OK once it
  // is full (also when it already was). Call again to take what others freed.
  absl::Status Fill();
  // Removes the filler: the space comes back.
  absl::Status Free();

 private:
  explicit Tmpfs(std::string path) : path_(std::move(path)) {}

  std::string path_;
};

}  // namespace tributary::testing
