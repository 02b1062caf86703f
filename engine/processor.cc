#include "engine/processor.h"

#include <utility>

#include "absl/strings/cord.h"
#include "base/absl_compat.h"

namespace tributary {
namespace {

// Payload type URLs; the transaction payload's value is the transaction id.
constexpr std::string_view kBadInputUrl = "tributary.dev/bad-input";
constexpr std::string_view kTransactionUrl = "tributary.dev/bad-input/transaction";

}  // namespace

absl::Status MarkBadInput(absl::Status status, std::string_view transaction) {
  if (status.ok()) return status;
  status.SetPayload(Sv(kBadInputUrl), absl::Cord());
  if (!transaction.empty()) status.SetPayload(Sv(kTransactionUrl), absl::Cord(Sv(transaction)));
  return status;
}

bool IsBadInput(const absl::Status& status) {
  return !status.ok() && status.GetPayload(Sv(kBadInputUrl)).has_value();
}

std::optional<std::string> BadInputTransaction(const absl::Status& status) {
  auto transaction = status.GetPayload(Sv(kTransactionUrl));  // absl::optional
  if (!transaction.has_value()) return std::nullopt;
  return std::string(*transaction);
}

}  // namespace tributary
