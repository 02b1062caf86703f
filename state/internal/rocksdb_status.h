// Conversion of rocksdb::Status to absl::Status. Internal to state/.
// Thread-safety: pure function.
#pragma once

#include <string_view>

#include "absl/status/status.h"
#include "rocksdb/status.h"

namespace tributary::internal {

// Returns OK for an OK `status`; otherwise an absl::Status with the closest
// code and the message "<context>: <rocksdb message>". `context` should name
// the store and the operation, e.g. "rocksdb store 'orders' (/x/y): open".
absl::Status FromRocksDb(const rocksdb::Status& status,
                         std::string_view context);

}  // namespace tributary::internal
