// DeadLetterLog: the last dead letters an instance wrote, for its status
// page. A bounded ring: Add keeps the newest `capacity`, dropping the
// oldest.
// Thread-safety: thread-safe. Add from the stream threads (where a task
// sends a dead letter), Recent and total from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "engine/streams_status.h"

namespace tributary::internal {

class DeadLetterLog {
 public:
  // REQUIRES: capacity > 0.
  explicit DeadLetterLog(size_t capacity);
  DeadLetterLog(const DeadLetterLog&) = delete;
  DeadLetterLog& operator=(const DeadLetterLog&) = delete;

  // Cuts info.error to DeadLetterInfo::kMaxErrorBytes.
  void Add(DeadLetterInfo info);
  // The kept ones, newest first.
  std::vector<DeadLetterInfo> Recent() const;
  // Every one added since construction.
  int64_t total() const;

 private:
  const size_t capacity_;
  mutable absl::Mutex mu_;
  std::vector<DeadLetterInfo> ring_ ABSL_GUARDED_BY(mu_);  // up to capacity_
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;  // where the next one goes, once full
  int64_t total_ ABSL_GUARDED_BY(mu_) = 0;
};

// "text" cut to at most `max_bytes` bytes at a UTF-8 character boundary,
// "..." appended when it was cut.
std::string CutUtf8(std::string text, size_t max_bytes);

}  // namespace tributary::internal
