#include "state/internal/rocksdb_status.h"

#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"

namespace tributary::internal {

absl::Status FromRocksDb(const rocksdb::Status& status,
                         std::string_view context) {
  if (status.ok()) return absl::OkStatus();
  const std::string message =
      absl::StrCat(Sv(context), ": ", status.ToString());
  using Code = rocksdb::Status::Code;
  switch (status.code()) {
    case Code::kNotFound:
      return absl::NotFoundError(message);
    case Code::kCorruption:
      return absl::DataLossError(message);
    case Code::kNotSupported:
      return absl::UnimplementedError(message);
    case Code::kInvalidArgument:
      return absl::InvalidArgumentError(message);
    case Code::kIOError:
      if (status.IsNoSpace()) return absl::ResourceExhaustedError(message);
      return absl::InternalError(message);
    case Code::kBusy:
    case Code::kTimedOut:
    case Code::kTryAgain:
      return absl::UnavailableError(message);
    case Code::kAborted:
      return absl::AbortedError(message);
    case Code::kShutdownInProgress:
      return absl::CancelledError(message);
    default:
      return absl::InternalError(message);
  }
}

}  // namespace tributary::internal
