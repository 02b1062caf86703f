#include "engine/internal/clients.h"

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"

namespace tributary::internal {
namespace {

constexpr char kFencedPayload[] = "tributary/producer-fenced";

}  // namespace

absl::Status ProducerFencedError(std::string_view message) {
  absl::Status status = absl::FailedPreconditionError(Sv(message));
  status.SetPayload(kFencedPayload, absl::Cord());
  return status;
}

bool IsProducerFenced(const absl::Status& status) {
  return status.GetPayload(kFencedPayload).has_value();
}

}  // namespace tributary::internal
