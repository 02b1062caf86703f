#include "engine/internal/streams_producer.h"

#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"
#include "engine/internal/log.h"

namespace tributary::internal {
namespace {

constexpr int kAttempts = 5;  // of a transactional call failing retriably

bool IsAbortable(const absl::Status& status) {
  return !IsProducerFenced(status) &&
         (absl::IsAborted(status) || absl::IsUnavailable(status) ||
          absl::IsDeadlineExceeded(status));
}

}  // namespace

StreamsProducer::StreamsProducer(std::unique_ptr<Producer> producer,
                                 std::string transactional_id, std::string name)
    : producer_(std::move(producer)),
      transactional_id_(std::move(transactional_id)),
      name_(std::move(name)),
      log_(EngineLogger()) {}

absl::Status StreamsProducer::Fail(absl::Status status) {
  if (status.ok() || !fatal_.ok()) return fatal_.ok() ? status : fatal_;
  if (IsProducerFenced(status)) {
    // transactional.id holds a random process id: another instance has it
    // only as this process's zombie; mostly the coordinator aborted the
    // transaction itself and bumped the epoch.
    fatal_ = ProducerFencedError(absl::StrCat(
        "producer fenced: transactional.id '", transactional_id_,
        "' has a newer epoch (the broker aborted a transaction open longer than "
        "transaction.timeout.ms, e.g. across a broker outage, or this thread was stopped that "
        "long); nothing of its open transaction is committed, a restart goes on from the last "
        "commit: ", status.message()));
  } else {
    fatal_ = status;
  }
  log_->error("{}: {}", name_, fatal_.ToString());
  return fatal_;
}

absl::Status StreamsProducer::Init() {
  if (!exactly_once()) return absl::OkStatus();
  absl::Status status = producer_->InitTransactions();
  return status.ok() ? status : Fail(status);
}

absl::Status StreamsProducer::EnsureTransaction() {
  if (in_transaction_) return absl::OkStatus();
  absl::Status status = producer_->BeginTransaction();
  if (!status.ok()) return Fail(status);
  in_transaction_ = true;
  return absl::OkStatus();
}

absl::Status StreamsProducer::Send(std::string_view topic, const Record& record,
                                   std::optional<Partition> partition) {
  if (!fatal_.ok()) return fatal_;
  if (exactly_once() && !in_transaction_) TRIBUTARY_RETURN_IF_ERROR(EnsureTransaction());
  absl::Status status = producer_->Send(topic, record, partition);
  if (status.ok()) return status;  // per record: nothing more to look at
  if (IsProducerFenced(status) || absl::IsFailedPrecondition(status)) return Fail(status);
  return status;
}

absl::Status StreamsProducer::CommitTransaction(const OffsetMap& offsets, Consumer& consumer) {
  TRIBUTARY_RETURN_IF_ERROR(fatal_);
  TRIBUTARY_RETURN_IF_ERROR(EnsureTransaction());
  absl::Status status;
  if (!offsets.empty()) {
    absl::StatusOr<std::string> metadata = consumer.GroupMetadata();
    status = metadata.status();
    for (int attempt = 1; status.ok(); ++attempt) {
      status = producer_->SendOffsetsToTransaction(offsets, *metadata);
      if (!absl::IsUnavailable(status) || attempt == kAttempts) break;
      log_->warn("{}: {} (attempt {} of {})", name_, status.ToString(), attempt, kAttempts);
      status = absl::OkStatus();
    }
  }
  // Committed only once the offsets are in the transaction: outputs without
  // their offsets would be produced again after a restart.
  for (int attempt = 1; status.ok(); ++attempt) {
    status = producer_->CommitTransaction();
    if (!absl::IsUnavailable(status) || attempt == kAttempts) break;
    log_->warn("{}: {} (attempt {} of {})", name_, status.ToString(), attempt, kAttempts);
    status = absl::OkStatus();
  }
  if (status.ok()) {
    in_transaction_ = false;
    return producer_->TakeDeliveryError();
  }
  if (!IsAbortable(status)) return Fail(status);
  log_->warn("{}: aborting transaction: {}", name_, status.ToString());
  absl::Status aborted = producer_->AbortTransaction();
  in_transaction_ = false;
  (void)producer_->TakeDeliveryError();  // of the aborted records: they are gone anyway
  if (!aborted.ok()) {
    return Fail(aborted.code() == absl::StatusCode::kAborted
                    ? absl::InternalError(aborted.message())  // not abortable again
                    : aborted);
  }
  return absl::AbortedError(status.message());
}

absl::Status StreamsProducer::AbortTransaction() {
  TRIBUTARY_RETURN_IF_ERROR(fatal_);
  if (!in_transaction_) return absl::OkStatus();
  in_transaction_ = false;
  absl::Status status = producer_->AbortTransaction();
  (void)producer_->TakeDeliveryError();  // of the aborted records
  return status.ok() ? status : Fail(status);
}

absl::Status StreamsProducer::Flush() {
  TRIBUTARY_RETURN_IF_ERROR(fatal_);
  TRIBUTARY_RETURN_IF_ERROR(producer_->Flush());
  return producer_->TakeDeliveryError();
}

}  // namespace tributary::internal
