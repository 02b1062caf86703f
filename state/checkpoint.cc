#include "state/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"

namespace tributary {
namespace {

constexpr absl::string_view kVersion = "0";

absl::Status ErrnoError(int error, std::string_view what,
                        const std::string& path) {
  return absl::ErrnoToStatus(error,
                             absl::StrCat("checkpoint ", Sv(what), " ", path));
}

// Closes a file descriptor when it goes out of scope.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }
  // Closes now and reports the error close() may return (e.g. on NFS).
  int Close() {
    const int result = ::close(fd_);
    fd_ = -1;
    return result;
  }

 private:
  int fd_;
};

absl::StatusOr<std::string> ReadAll(int fd, const std::string& path) {
  std::string content;
  char buffer[4096];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "read", path);
    }
    if (n == 0) return content;
    content.append(buffer, static_cast<size_t>(n));
  }
}

absl::Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "write", path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status SyncDirectory(const std::string& file_path) {
  const std::filesystem::path parent =
      std::filesystem::path(file_path).parent_path();
  const std::string directory =
      parent.empty() ? std::string(".") : parent.string();
  ScopedFd fd(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoError(errno, "open directory", directory);
  if (::fsync(fd.get()) != 0)
    return ErrnoError(errno, "fsync directory", directory);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CheckpointFile::Offsets> CheckpointFile::Read() const {
  ScopedFd fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return Offsets{};
    return ErrnoError(errno, "open", path_);
  }
  TRIBUTARY_ASSIGN_OR_RETURN(const std::string content,
                             ReadAll(fd.get(), path_));

  std::vector<absl::string_view> lines = absl::StrSplit(content, '\n');
  // A final newline leaves one empty element; nothing else may be empty.
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  auto corrupt = [this](size_t line_number, absl::string_view why) {
    return absl::DataLossError(absl::StrCat("corrupt checkpoint file ", path_,
                                            " line ", line_number, ": ", why));
  };
  if (lines.empty()) return corrupt(1, "empty file");
  if (lines[0] != kVersion) {
    return corrupt(1, absl::StrCat("unsupported version '", lines[0], "'"));
  }
  size_t count = 0;
  if (lines.size() < 2 || !absl::SimpleAtoi(lines[1], &count)) {
    return corrupt(2, "expected an entry count");
  }
  if (lines.size() - 2 != count) {
    return corrupt(
        lines.size(),
        absl::StrCat("expected ", count, " entries, found ", lines.size() - 2));
  }
  Offsets offsets;
  for (size_t i = 2; i < lines.size(); ++i) {
    const std::vector<absl::string_view> fields = absl::StrSplit(lines[i], ' ');
    TopicPartition topic_partition;
    int64_t offset = 0;
    if (fields.size() != 3 || fields[0].empty() ||
        !absl::SimpleAtoi(fields[1], &topic_partition.partition) ||
        !absl::SimpleAtoi(fields[2], &offset)) {
      return corrupt(
          i + 1, absl::StrCat("expected '<topic> <partition> <offset>', got '",
                              lines[i], "'"));
    }
    topic_partition.topic = std::string(fields[0]);
    if (!offsets.emplace(std::move(topic_partition), offset).second) {
      return corrupt(i + 1, "duplicate topic partition");
    }
  }
  return offsets;
}

absl::Status CheckpointFile::Write(const Offsets& offsets) const {
  std::string content = absl::StrCat(kVersion, "\n", offsets.size(), "\n");
  for (const auto& [topic_partition, offset] : offsets) {
    if (topic_partition.topic.empty() ||
        topic_partition.topic.find_first_of(" \t\r\n") != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("checkpoint ", path_, ": invalid topic name '",
                       topic_partition.topic, "'"));
    }
    absl::StrAppend(&content, topic_partition.topic, " ",
                    topic_partition.partition, " ", offset, "\n");
  }

  const std::string temp_path = path_ + ".tmp";
  absl::Status status = [&]() -> absl::Status {
    ScopedFd fd(::open(temp_path.c_str(),
                       O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) return ErrnoError(errno, "create", temp_path);
    TRIBUTARY_RETURN_IF_ERROR(WriteAll(fd.get(), content, temp_path));
    if (::fsync(fd.get()) != 0) return ErrnoError(errno, "fsync", temp_path);
    if (fd.Close() != 0) return ErrnoError(errno, "close", temp_path);
    if (::rename(temp_path.c_str(), path_.c_str()) != 0) {
      return ErrnoError(errno, "rename to " + path_ + " from", temp_path);
    }
    return absl::OkStatus();
  }();
  if (!status.ok()) {
    // Best effort: the temp file is garbage either way, and the next Write
    // truncates it, so a failed unlink is deliberately ignored.
    (void)::unlink(temp_path.c_str());
    return status;
  }
  return SyncDirectory(path_);
}

absl::Status CheckpointFile::Delete() const {
  if (::unlink(path_.c_str()) != 0 && errno != ENOENT) {
    return ErrnoError(errno, "delete", path_);
  }
  return absl::OkStatus();
}

}  // namespace tributary
