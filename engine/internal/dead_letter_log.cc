#include "engine/internal/dead_letter_log.h"

#include <cassert>
#include <utility>

namespace tributary::internal {

std::string CutUtf8(std::string text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t end = max_bytes;
  // Back to the first byte of a character (continuation bytes are 10xxxxxx).
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  text.resize(end);
  text += "...";
  return text;
}

DeadLetterLog::DeadLetterLog(size_t capacity) : capacity_(capacity) {
  assert(capacity > 0);
  ring_.reserve(capacity);
}

void DeadLetterLog::Add(DeadLetterInfo info) {
  info.error = CutUtf8(std::move(info.error), DeadLetterInfo::kMaxErrorBytes);
  absl::MutexLock lock(&mu_);
  ++total_;
  if (ring_.size() < capacity_) {
    ring_.push_back(std::move(info));
    return;
  }
  ring_[next_] = std::move(info);
  next_ = (next_ + 1) % capacity_;
}

std::vector<DeadLetterInfo> DeadLetterLog::Recent() const {
  absl::MutexLock lock(&mu_);
  std::vector<DeadLetterInfo> out;
  out.reserve(ring_.size());
  // Oldest at next_ once full (else at 0); newest just before it.
  for (size_t i = 0; i < ring_.size(); ++i) {
    out.push_back(ring_[(next_ + ring_.size() - 1 - i) % ring_.size()]);
  }
  return out;
}

int64_t DeadLetterLog::total() const {
  absl::MutexLock lock(&mu_);
  return total_;
}

}  // namespace tributary::internal
