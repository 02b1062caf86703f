#include "state/internal/rocksdb_status.h"

#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"

namespace tributary::internal {

absl::StatusCode CodeOf(const rocksdb::Status& status) {
  using Code = rocksdb::Status::Code;
  switch (status.code()) {
    case Code::kOk:
      return absl::StatusCode::kOk;
    case Code::kNotFound:
      return absl::StatusCode::kNotFound;
    case Code::kCorruption:
      return absl::StatusCode::kDataLoss;
    case Code::kNotSupported:
      return absl::StatusCode::kUnimplemented;
    case Code::kInvalidArgument:
      return absl::StatusCode::kInvalidArgument;
    case Code::kIOError:
      return status.IsNoSpace() ? absl::StatusCode::kResourceExhausted
                                : absl::StatusCode::kInternal;
    case Code::kBusy:
    case Code::kTimedOut:
    case Code::kTryAgain:
      return absl::StatusCode::kUnavailable;
    case Code::kAborted:
      return absl::StatusCode::kAborted;
    case Code::kShutdownInProgress:
      return absl::StatusCode::kCancelled;
    default:
      return absl::StatusCode::kInternal;
  }
}

absl::Status FromRocksDb(const rocksdb::Status& status,
                         std::string_view context) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(CodeOf(status),
                      absl::StrCat(Sv(context), ": ", status.ToString()));
}

}  // namespace tributary::internal
