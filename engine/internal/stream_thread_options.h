// Options of a StreamThread, shared by the parts it drives (TaskManager,
// ChangelogReader, StreamsProducer). Plain data; set before the thread starts.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/internal/clients.h"
#include "engine/internal/dead_letter_log.h"
#include "engine/internal/kafka_stats.h"
#include "engine/internal/standby_tasks.h"
#include "engine/internal/state_directory.h"
#include "engine/metrics.h"
#include "engine/streams_config.h"
#include "engine/topology.h"
#include "engine/types.h"
#include "state/rocksdb_store.h"

namespace tributary::internal {

enum class ThreadState;  // stream_thread.h

struct StreamThreadOptions {
  int index = 0;
  std::string application_id;
  std::string bootstrap_servers;
  bool exactly_once = true;
  absl::Duration commit_interval = absl::Milliseconds(100);
  absl::Duration poll_timeout = absl::Milliseconds(100);
  // Repartition records below the committed offsets are deleted at most this
  // often, after a commit.
  absl::Duration repartition_purge_interval = absl::Seconds(30);
  std::map<std::string, std::string> admin_settings;  // librdkafka pass-through
  int max_poll_records = 1000;
  std::string state_dir;         // <state.dir>/<application.id>
  std::string process_id;        // stable per state dir: names the producer
  bool rocksdb_wal = false;
  // Record cache budget of this thread (its share of cache.max.bytes), split
  // evenly among the stores of the tasks it owns after each assignment; 0:
  // stores are not cached.
  size_t cache_bytes = 0;
  ErrorPolicy error_policy = ErrorPolicy::kFail;
  std::string dead_letter_topic;
  // Told of every dead letter the thread's tasks send; nullptr: not kept.
  DeadLetterLog* dead_letters = nullptr;      // REQUIRES: outlives the thread
  std::map<std::string, std::string> consumer_settings;  // librdkafka pass-through
  // The restore consumer's: consumer.* overridden by restore.consumer.*.
  std::map<std::string, std::string> restore_consumer_settings;
  std::map<std::string, std::string> producer_settings;
  // Which task directories of state_dir are in use, over all threads (the
  // state cleaner leaves those alone); nullptr: not tracked.
  StateDirectory* state_directory = nullptr;  // REQUIRES: outlives the thread
  // The instance's standby tasks (num.standby.replicas > 0), told when a task
  // becomes active here and when it stops being; nullptr: none.
  StandbyTasks* standby = nullptr;             // REQUIRES: outlives the thread
  const Topology* topology = nullptr;           // REQUIRES: outlives the thread
  RocksDbResources* rocksdb = nullptr;          // REQUIRES: outlives the thread
  Metrics* metrics = nullptr;                   // REQUIRES: outlives the thread
  // Gets the librdkafka clients' statistics (every kStatisticsIntervalMs);
  // nullptr: no statistics.
  KafkaStats* kafka_stats = nullptr;            // REQUIRES: outlives the thread
  std::function<std::string(std::string_view)> topic_name;
  // The instance's application.server (host:port), or empty: appended to the
  // group consumer's client.id as "@<host:port>", where the other instances
  // find it (see kafka_streams_queries.cc).
  std::string application_server;
  // Changelog records restored per loop iteration, between polls of the
  // group consumer.
  size_t restore_records_per_poll = 10000;
  // Creates the thread's clients; null: librdkafka clients on
  // bootstrap_servers (tests pass fakes).
  std::function<absl::StatusOr<ThreadClients>(const StreamThreadOptions& options,
                                              const std::string& thread_name)>
      clients;

  // --- Lifecycle (KafkaStreams' state listener and uncaught-error handler) ---
  // Called at every change of the thread's state, on the thread making it
  // (the stream thread; Start's caller for kCreated -> kStarting). Null: none.
  std::function<void(int index, ThreadState old_state, ThreadState new_state)> on_state_change;
  // Called on the stream thread when its run ends with an error that no
  // restart inside the thread covers (not after RequestShutdown); answers
  // what to do. Null: kShutdownClient.
  std::function<StreamThreadErrorResponse(const absl::Status& error)> on_uncaught_error;
  // kReplaceThread at most this many times in a row, counting runs that
  // ended in an error before their first commit; then kShutdownClient.
  int max_replacements_in_a_row = 5;
};

// Between the group consumer's client.id and its application.server.
inline constexpr char kApplicationServerSeparator[] = "@";

// The producer's transactional.id under exactly-once (stable per state dir
// and thread index, so that a restarted instance fences its predecessor).
std::string TransactionalId(const StreamThreadOptions& options);

}  // namespace tributary::internal
