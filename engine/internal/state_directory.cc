#include "engine/internal/state_directory.h"

#include <chrono>
#include <filesystem>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/internal/log.h"

namespace tributary::internal {
namespace {

// The task of a directory name "<subtopology>_<partition>", if it is one.
std::optional<TaskId> TaskOfDir(const std::string& name) {
  std::vector<std::string> parts = absl::StrSplit(name, '_');
  TaskId id;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &id.subtopology) ||
      !absl::SimpleAtoi(parts[1], &id.partition) || id.subtopology < 0 || id.partition < 0 ||
      id.ToString() != name) {
    return std::nullopt;
  }
  return id;
}

// When `path` last changed, as absl::Time; nullopt when it is not there.
std::optional<absl::Time> LastWrite(const std::filesystem::path& path) {
  std::error_code ec;
  const std::filesystem::file_time_type t = std::filesystem::last_write_time(path, ec);
  if (ec) return std::nullopt;
  return absl::FromChrono(std::chrono::time_point_cast<std::chrono::microseconds>(
      std::chrono::file_clock::to_sys(t)));
}

}  // namespace

std::string StateDirectory::TaskDir(TaskId id) const {
  return absl::StrCat(root_, "/", id.ToString());
}

void StateDirectory::Claim(TaskId id) {
  absl::MutexLock lock(&mu_);
  ++claims_[id];
}

void StateDirectory::Release(TaskId id) {
  absl::MutexLock lock(&mu_);
  auto it = claims_.find(id);
  if (it != claims_.end() && --it->second <= 0) claims_.erase(it);
}

std::vector<std::string> StateDirectory::CleanUnused(absl::Duration delay, absl::Time now) {
  std::vector<std::pair<TaskId, std::filesystem::path>> dirs;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(root_, ec), end; !ec && it != end;
       it.increment(ec)) {
    std::error_code type;
    const std::optional<TaskId> id = TaskOfDir(it->path().filename().string());
    if (id && it->is_directory(type)) dirs.emplace_back(*id, it->path());
  }
  std::vector<std::string> deleted;
  for (const auto& [id, path] : dirs) {
    // Held while deleting: a thread claiming it now waits, then finds it
    // gone and restores the task from its changelogs.
    absl::MutexLock lock(&mu_);
    if (claims_.count(id) > 0) continue;
    std::optional<absl::Time> changed = LastWrite(path);
    if (std::optional<absl::Time> checkpoint = LastWrite(path / ".checkpoint")) {
      changed = changed ? std::max(*changed, *checkpoint) : checkpoint;
    }
    if (!changed || now - *changed <= delay) continue;
    std::error_code removed;
    std::filesystem::remove_all(path, removed);
    if (removed) {
      EngineLogger()->warn("cannot delete the unused state directory {}: {}", path.string(),
                           removed.message());
      continue;
    }
    EngineLogger()->info("deleted the state directory {}: no task of this instance used it in "
                         "the last {} (state.cleanup.delay.ms)",
                         path.string(), absl::FormatDuration(now - *changed));
    deleted.push_back(path.filename().string());
  }
  return deleted;
}

}  // namespace tributary::internal
