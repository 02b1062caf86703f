// Metrics: a small registry of named, tagged counters, gauges and latency
// recorders, readable from code (Snapshot) and printable (ToString, ToJson).
// Thread-safety: Metrics is thread-safe. Counter and Gauge may be updated and
// read from any thread. A LatencyRecorder takes one writer at a time (the
// owning stream thread) and readers from any thread; a reader may see a
// record's count before its sum, so a summary taken during writes is
// approximate by at most the records in flight.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace tributary {

// The names and tags the engine emits (Kafka Streams' names where it has
// one); the operators add theirs to this namespace in their own headers.
namespace metric_names {
// Tags.
inline constexpr std::string_view kThreadTag = "thread";      // stream thread name
inline constexpr std::string_view kTaskTag = "task";          // e.g. "0_1"
inline constexpr std::string_view kOperatorTag = "operator";  // an operator's name

// Per stream thread (tag kThreadTag).
inline constexpr std::string_view kProcessTotal = "process-total";
inline constexpr std::string_view kProcessBatchLatency = "process-batch-latency";
inline constexpr std::string_view kCommitTotal = "commit-total";
inline constexpr std::string_view kCommitLatency = "commit-latency";
inline constexpr std::string_view kAbortTotal = "abort-total";
inline constexpr std::string_view kPunctuateTotal = "punctuate-total";
inline constexpr std::string_view kRestoreRecordsTotal = "restore-records-total";
inline constexpr std::string_view kRecordsDeadLetteredTotal = "records-dead-lettered-total";
// Starts of the thread again after its producer failed (a new producer, the
// tasks restored from their changelogs).
inline constexpr std::string_view kThreadRestartsTotal = "thread-restarts-total";
// Replacements of the thread after an error the uncaught-error handler
// answered with kReplaceThread (KafkaStreams::SetUncaughtErrorHandler).
inline constexpr std::string_view kThreadReplacementsTotal = "thread-replacements-total";
// Repartition partitions whose records below the committed offset the thread
// deleted (one per partition and purge), and the purges of a partition that
// failed (logged; never fatal).
inline constexpr std::string_view kRepartitionPurgeTotal = "repartition-purge-total";
inline constexpr std::string_view kRepartitionPurgeErrorsTotal = "repartition-purge-errors-total";
// Gets answered by the record cache (CachingStore) of the thread's stores,
// and gets that read the store below it.
inline constexpr std::string_view kRecordCacheHitsTotal = "record-cache-hits-total";
inline constexpr std::string_view kRecordCacheMissesTotal = "record-cache-misses-total";

// Reported by operators that hold transactions (operators/
// transaction_aggregate.h; tags kTaskTag, kOperatorTag); named here because
// the status page (GET /) shows them.
inline constexpr std::string_view kCdcTransactionsPending = "cdc-transactions-pending";  // gauge
inline constexpr std::string_view kCdcOldestPendingAgeMs = "cdc-oldest-pending-age-ms";  // gauge

// Per instance (num.standby.replicas): the standby tasks it keeps, their lag
// (records between what they read and their changelogs' ends, summed), and
// the changelog records they applied.
inline constexpr std::string_view kStandbyTasks = "standby-tasks";
inline constexpr std::string_view kStandbyLag = "standby-lag";
inline constexpr std::string_view kStandbyRecordsTotal = "standby-records-total";

// From librdkafka's statistics (statistics.interval.ms), while the metrics
// endpoint is on (metrics.port); served by /metrics, not in the registry.
inline constexpr std::string_view kTopicTag = "topic";
inline constexpr std::string_view kPartitionTag = "partition";
// Per assigned input partition of a thread's group consumer (tags kThreadTag,
// kTopicTag, kPartitionTag): records between the consumer's position and the
// partition's end (its last stable offset, read_committed).
inline constexpr std::string_view kConsumerLag = "consumer-lag";
// Per thread: messages and bytes in its producer's queues (not yet
// acknowledged by the broker), librdkafka's msg_cnt and msg_size.
inline constexpr std::string_view kProducerQueueMessages = "producer-queue-messages";
inline constexpr std::string_view kProducerQueueBytes = "producer-queue-bytes";
// Per thread, since its clients started (a thread restart starts them at 0
// again): records and bytes its group consumer received (librdkafka rxmsgs,
// rxmsg_bytes) and its producer sent, outputs, changelogs and repartition
// topics alike (txmsgs, txmsg_bytes).
inline constexpr std::string_view kRecordsConsumedTotal = "records-consumed-total";
inline constexpr std::string_view kBytesConsumedTotal = "bytes-consumed-total";
inline constexpr std::string_view kRecordsProducedTotal = "records-produced-total";
inline constexpr std::string_view kBytesProducedTotal = "bytes-produced-total";
// Per task of a thread (tags kThreadTag, kTaskTag): changelog records still
// to restore (0 once running); read at each scrape.
inline constexpr std::string_view kRestoreRemainingRecords = "restore-remaining-records";
// Per RocksDB store of a task this instance owns (tags kTaskTag, kStoreTag):
// bytes of its SST files on disk, read from the file system at each scrape.
inline constexpr std::string_view kStoreTag = "store";
inline constexpr std::string_view kStateStoreSstBytes = "state-store-sst-bytes";
}  // namespace metric_names

// Tags of a metric, e.g. {{"thread-id", "t0"}, {"task-id", "0_1"}}.
using MetricTags = std::map<std::string, std::string>;

class Counter {
 public:
  void Add(int64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

class Gauge {
 public:
  void Set(int64_t value) { value_.store(value, std::memory_order_relaxed); }
  void Add(int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

struct LatencySummary {
  int64_t count = 0;
  absl::Duration sum;  // of every recorded duration (as clamped)
  absl::Duration mean;
  absl::Duration max;
  absl::Duration p50;
  absl::Duration p99;
};

// Records durations into a fixed histogram of 16 buckets per power of two of
// nanoseconds: a reported percentile is within 1/32 (about 3%) of a recorded
// value (exact below 16 ns), and is never above the recorded maximum.
// Durations are clamped to [0, 24h].
class LatencyRecorder {
 public:
  LatencyRecorder() = default;
  LatencyRecorder(const LatencyRecorder&) = delete;
  LatencyRecorder& operator=(const LatencyRecorder&) = delete;

  void Record(absl::Duration duration);
  LatencySummary Summary() const;
  // The value below which a fraction `q` (in [0, 1]) of recorded durations
  // fall, at bucket precision (Percentile(1) is the exact maximum); zero
  // when nothing was recorded.
  absl::Duration Percentile(double q) const;

 private:
  static constexpr int64_t kMaxNanos = int64_t{24} * 3600 * 1000 * 1000 * 1000;
  static constexpr int kMaxBit = 46;  // 2^46 <= kMaxNanos < 2^47
  static constexpr int kSubBucketBits = 4;
  static constexpr int kSubBuckets = 1 << kSubBucketBits;
  // Exact buckets 0..15, then 16 per power of two from 2^4 to 2^kMaxBit.
  static constexpr int kBuckets =
      kSubBuckets + (kMaxBit + 1 - kSubBucketBits) * kSubBuckets;

  static int BucketOf(int64_t nanos);
  // Midpoint of the bucket's range.
  static int64_t BucketValue(int bucket);

  std::array<std::atomic<int64_t>, kBuckets> buckets_{};
  std::atomic<int64_t> count_{0};
  std::atomic<int64_t> sum_nanos_{0};
  std::atomic<int64_t> max_nanos_{0};
};

enum class MetricKind { kCounter, kGauge, kLatency };

// One metric's value at Snapshot() time.
struct MetricSample {
  std::string name;
  MetricTags tags;
  MetricKind kind = MetricKind::kCounter;
  int64_t value = 0;       // kCounter, kGauge
  LatencySummary latency;  // kLatency
};

class Metrics {
 public:
  Metrics() = default;
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Get-or-create. The pointer stays valid for the lifetime of this Metrics.
  // REQUIRES: a (name, tags) pair is used with one kind only.
  Counter* GetCounter(std::string_view name, const MetricTags& tags = {});
  Gauge* GetGauge(std::string_view name, const MetricTags& tags = {});
  LatencyRecorder* GetLatency(std::string_view name,
                              const MetricTags& tags = {});

  // Every metric, sorted by name, then tags.
  std::vector<MetricSample> Snapshot() const;
  // One line per metric: `name{k=v,...} value` or, for latencies,
  // `name{...} count=N mean=... p50=... p99=... max=...`.
  std::string ToString() const;
  // A JSON array of {"name", "tags", "type", and "value" or
  // "count"/"mean_ns"/"p50_ns"/"p99_ns"/"max_ns"}.
  std::string ToJson() const;

 private:
  struct Entry {
    MetricKind kind = MetricKind::kCounter;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<LatencyRecorder> latency;
  };
  using Key = std::pair<std::string, MetricTags>;

  Entry& GetOrCreate(std::string_view name, const MetricTags& tags,
                     MetricKind kind);

  mutable std::mutex mutex_;
  std::map<Key, Entry> entries_;  // guarded by mutex_
};

}  // namespace tributary
