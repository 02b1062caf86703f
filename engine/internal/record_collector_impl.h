// RecordCollectorImpl: the runtime's RecordCollector. A task's sinks,
// changelog writes and dead letters go through the stream thread's
// StreamsProducer, so that under exactly-once they join its transaction.
// Thread-safety: used by its stream thread only.
#pragma once

#include "engine/internal/record_collector.h"
#include "engine/internal/streams_producer.h"

namespace tributary::internal {

class RecordCollectorImpl final : public RecordCollector {
 public:
  // REQUIRES: `producer` outlives the collector.
  explicit RecordCollectorImpl(StreamsProducer* producer) : producer_(producer) {}
  RecordCollectorImpl(const RecordCollectorImpl&) = delete;
  RecordCollectorImpl& operator=(const RecordCollectorImpl&) = delete;

  absl::Status Send(std::string_view topic, const Record& record,
                    std::optional<Partition> partition) override;
  void PrepareTopic(std::string_view topic) override;
  absl::StatusOr<int32_t> PartitionCount(std::string_view topic) override;

 private:
  StreamsProducer* producer_;
};

}  // namespace tributary::internal
