// ChangelogWriter: where a change-logging store sends every write so that the
// store can be rebuilt elsewhere. The engine implements it on top of the
// task's (transactional) producer; the state layer knows nothing of Kafka.
// ChangelogRecord: one change read back from the changelog, for restoring.
// Thread-safety: called only from the thread that owns the store.
#pragma once

#include <optional>
#include <string_view>

#include "absl/status/status.h"

namespace tributary {

class ChangelogWriter {
 public:
  virtual ~ChangelogWriter() = default;
  // Records that `key` now maps to `value` (nullopt: deleted). The writer
  // copies both before returning.
  virtual absl::Status Append(std::string_view key,
                              std::optional<std::string_view> value) = 0;
};

// One changelog entry as the restorer reads it: a Kafka record's key and value
// (a null value, i.e. a tombstone, is nullopt).
// Lifetime: views into the consumer's batch; valid until that batch is
// released.
struct ChangelogRecord {
  std::string_view key;
  std::optional<std::string_view> value;
};

}  // namespace tributary
