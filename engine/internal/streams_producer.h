// StreamsProducer: a stream thread's producer as Kafka Streams has it. Under
// exactly-once it owns the thread's Kafka transaction: opens one on the first
// send after a commit, commits it together with the consumed offsets
// (send_offsets_to_transaction with the group metadata, EOS v2), and sorts
// failures into abortable (the transaction is aborted, the caller rebuilds
// state) and fatal (fenced by a newer instance with the same
// transactional.id, ...). A fatal error is sticky: afterwards nothing is sent
// or committed. Under at-least-once it only sends and flushes.
// Thread-safety: used by its stream thread only.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "engine/internal/clients.h"
#include "spdlog/spdlog.h"

namespace tributary::internal {

class StreamsProducer {
 public:
  // `transactional_id` empty: at-least-once. `name` prefixes log lines.
  StreamsProducer(std::unique_ptr<Producer> producer, std::string transactional_id,
                  std::string name);
  StreamsProducer(const StreamsProducer&) = delete;
  StreamsProducer& operator=(const StreamsProducer&) = delete;

  bool exactly_once() const { return !transactional_id_.empty(); }
  bool in_transaction() const { return in_transaction_; }
  // The sticky fatal error, OK while there is none.
  const absl::Status& fatal_error() const { return fatal_; }

  // Under exactly-once: init_transactions (fences older instances).
  absl::Status Init();
  // Under exactly-once opens a transaction if none is open.
  absl::Status Send(std::string_view topic, const Record& record,
                    std::optional<Partition> partition);

  // REQUIRES: exactly-once. Commits the open transaction (opening one if none
  // is) with `offsets` as the group's offsets (consumer's group metadata).
  // OK; Aborted after an abortable error, the transaction then aborted (its
  // outputs and offsets are gone); any other error is fatal and sticky.
  absl::Status CommitTransaction(const OffsetMap& offsets, Consumer& consumer);
  // Aborts the open transaction, if any (on the way out after an error).
  absl::Status AbortTransaction();
  // At-least-once: waits for every send; the first delivery failure, if any.
  absl::Status Flush();

  Producer& producer() { return *producer_; }

 private:
  absl::Status EnsureTransaction();
  // Remembers a fatal `status` (fencing gets a clear message); returns it.
  absl::Status Fail(absl::Status status);

  std::unique_ptr<Producer> producer_;
  std::string transactional_id_;
  std::string name_;
  std::shared_ptr<spdlog::logger> log_;
  bool in_transaction_ = false;
  absl::Status fatal_;
};

}  // namespace tributary::internal
