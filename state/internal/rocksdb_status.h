// Conversion of rocksdb::Status to absl::Status. Internal to state/.
// Thread-safety: pure functions.
#pragma once

#include <string_view>

#include "absl/status/status.h"
#include "rocksdb/status.h"

namespace tributary::internal {

// The absl code closest to `status`'s: a full disk (IOError NoSpace) is
// RESOURCE_EXHAUSTED, other I/O errors INTERNAL. OK for an OK `status`.
absl::StatusCode CodeOf(const rocksdb::Status& status);

// Returns OK for an OK `status`; otherwise an absl::Status of CodeOf(status)
// and the message "<context>: <rocksdb message>". `context` should name the
// store and the operation, e.g. "rocksdb store 'orders' (/x/y): open".
absl::Status FromRocksDb(const rocksdb::Status& status,
                         std::string_view context);

}  // namespace tributary::internal
