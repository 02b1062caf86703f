// RdKafkaRecordsDeleter: RecordsDeleter over a librdkafka admin client of its
// own (rd_kafka_DeleteRecords on a private queue, polled without waiting).
// Thread-safety: as RecordsDeleter (one thread).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/internal/clients.h"
#include "engine/internal/rdkafka_handles.h"

namespace tributary::internal {

class RdKafkaRecordsDeleter final : public RecordsDeleter {
 public:
  // A client configured with `settings` (librdkafka names, bootstrap.servers
  // included); a request waits at most `timeout_ms` for the broker.
  static absl::StatusOr<std::unique_ptr<RdKafkaRecordsDeleter>> Create(
      const std::map<std::string, std::string>& settings, int timeout_ms = 30000);
  // A request still in flight is abandoned (its answer is dropped).
  ~RdKafkaRecordsDeleter() override;
  RdKafkaRecordsDeleter(const RdKafkaRecordsDeleter&) = delete;
  RdKafkaRecordsDeleter& operator=(const RdKafkaRecordsDeleter&) = delete;

  bool Start(const OffsetMap& before) override;
  std::vector<Result> TakeResults() override;

 private:
  RdKafkaRecordsDeleter(KafkaHandle handle, int timeout_ms);
  void Drain();

  KafkaHandle handle_;
  KafkaQueue queue_;
  int timeout_ms_;
  bool in_flight_ = false;
  std::vector<Result> results_;
};

}  // namespace tributary::internal
