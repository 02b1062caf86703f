// KafkaStats: what the metrics endpoint takes from librdkafka's statistics
// (the JSON its stats callback gets every statistics.interval.ms): per stream
// thread, its group consumer's lag on each assigned partition and its
// producer's queue depth. Each thread's figures are replaced by its clients'
// latest statistics.
// Thread-safety: thread-safe. The On* calls come from the stream threads
// (librdkafka serves the callback inside their polls), Samples from the
// endpoint's threads.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "engine/metrics.h"
#include "engine/internal/clients.h"

namespace tributary::internal {

// How often the clients emit statistics while the endpoint is on.
inline constexpr int kStatisticsIntervalMs = 1000;

class KafkaStats {
 public:
  KafkaStats() = default;
  KafkaStats(const KafkaStats&) = delete;
  KafkaStats& operator=(const KafkaStats&) = delete;

  // A group consumer's statistics: `thread`'s lag figures become those of
  // the partitions it fetches (fetch_state other than "none"). Lag = end
  // (ls_offset, else hi_offset) - position (max of app_offset and
  // committed_offset); librdkafka's own consumer_lag when the position is not
  // known yet; a partition with neither is left out. On a parse error the
  // figures stay as they were. Also the consumer's rxmsgs and rxmsg_bytes.
  absl::Status OnConsumerStats(std::string_view thread, std::string_view json);
  // A producer's statistics: `thread`'s msg_cnt and msg_size, txmsgs and
  // txmsg_bytes.
  absl::Status OnProducerStats(std::string_view thread, std::string_view json);

  // Gauges metric_names::kConsumerLag (tags thread, topic, partition),
  // kProducerQueueMessages and kProducerQueueBytes (tag thread); counters
  // kRecordsConsumedTotal, kBytesConsumedTotal, kRecordsProducedTotal and
  // kBytesProducedTotal (tag thread).
  std::vector<MetricSample> Samples() const;

 private:
  struct ProducerQueue {
    int64_t messages = 0;
    int64_t bytes = 0;
    int64_t sent_records = 0;  // txmsgs
    int64_t sent_bytes = 0;    // txmsg_bytes
    bool has_sent = false;     // the statistics had them
  };
  struct Received {
    int64_t records = 0;  // rxmsgs
    int64_t bytes = 0;    // rxmsg_bytes
  };

  mutable std::mutex mutex_;
  // thread -> (topic, partition) -> lag
  std::map<std::string, std::map<TopicPartition, int64_t>> lag_;  // guarded by mutex_
  std::map<std::string, ProducerQueue> producer_;                // guarded by mutex_
  std::map<std::string, Received> received_;                     // guarded by mutex_
};

}  // namespace tributary::internal
