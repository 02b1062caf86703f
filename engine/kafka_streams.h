// KafkaStreams: runs a Topology against a Kafka cluster, like Kafka Streams'
// class of the same name: num.stream.threads StreamThreads in the consumer
// group application.id, internal topics (repartition, changelog) created on
// Start, state under state.dir, exactly-once v2 by default. With no
// bootstrap.servers (or "mock://") it starts librdkafka's in-process mock
// cluster and runs on that.
// Thread-safety: Open/Start/Close from one thread; state(), error(),
// metrics(), tasks(), RecentDeadLetters() and ThreadStatuses() from any
// thread.
#pragma once

#include <atomic>
#include <memory>
#include <thread>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/metrics.h"
#include "engine/mock_cluster.h"
#include "engine/streams_config.h"
#include "engine/streams_status.h"
#include "engine/topology.h"
#include "engine/types.h"

namespace tributary {

namespace internal {
class DeadLetterLog;
class KafkaStats;
class MetricsServer;
class StateDirectory;
class StandbyTasks;
class StreamThread;
}
class RocksDbResources;

// A health or readiness probe's answer: `text` says why when not ok.
struct ProbeResult {
  bool ok = true;
  std::string text;
};

class KafkaStreams {
 public:
  enum class State { kCreated, kRunning, kNotRunning, kError };

  // Builds the topology, validates it against the config and prepares the
  // state directory (locked against a second instance using it).
  static absl::StatusOr<std::unique_ptr<KafkaStreams>> Open(Topology topology,
                                                            StreamsConfig config);
  ~KafkaStreams();
  KafkaStreams(const KafkaStreams&) = delete;
  KafkaStreams& operator=(const KafkaStreams&) = delete;

  // Creates missing internal topics, checks co-partitioning and starts the
  // stream threads. REQUIRES: state() == kCreated.
  absl::Status Start();
  // Commits, writes checkpoints, leaves the group and stops every thread.
  // Returns the first error any thread stopped with. Idempotent.
  absl::Status Close();

  // kError as soon as any stream thread has stopped with an error.
  State state() const;
  // The first error a stream thread stopped with (OK if none).
  absl::Status error() const;

  Metrics& metrics() { return *metrics_; }
  const Topology& topology() const { return topology_; }
  const StreamsConfig& config() const { return config_; }
  // The cluster actually used (the mock cluster's address when embedded).
  const std::string& bootstrap_servers() const { return bootstrap_servers_; }
  // The embedded mock cluster, or nullptr when running against a real one.
  MockCluster* mock_cluster() { return mock_cluster_.get(); }
  // The real name of a topic the topology names (internal topics prefixed).
  std::string TopicName(std::string_view topic) const;
  // Tasks currently owned by this instance, over all threads.
  std::vector<TaskId> tasks() const;

  // How many dead letters RecentDeadLetters keeps.
  static constexpr size_t kRecentDeadLetters = 20;
  // The last kRecentDeadLetters records this instance sent to the
  // dead-letter topic, newest first.
  std::vector<DeadLetterInfo> RecentDeadLetters() const;
  // Each stream thread's tasks (state, records processed, restore progress),
  // at most about a second old; empty before Start.
  std::vector<ThreadStatus> ThreadStatuses() const;

  // --- Metrics endpoint (metrics.port; kafka_streams_endpoint.cc) ---
  // The port GET /metrics, /health and /ready are served on (the bound one
  // when metrics.port is 0), or -1 when there is no endpoint. Set by Start.
  int metrics_port() const;
  // What /metrics serves: the registry's metrics and, with the endpoint on,
  // librdkafka's consumer lag and producer queue depth, in Prometheus text.
  std::string PrometheusMetrics() const;
  // GET /health: ok while started and no stream thread is dead.
  ProbeResult Health() const;
  // GET /ready: ok when healthy, every thread has its assignment and no task
  // is restoring; else the reasons.
  ProbeResult Ready() const;
  // GET /: the status page (internal/status_page.h): state, uptime, the
  // sub-topologies and their tasks, consumer lag, pending transactions and
  // the recent dead letters, as HTML.
  std::string StatusPage() const;

 private:
  KafkaStreams(Topology topology, StreamsConfig config);
  absl::Status Prepare();
  absl::Status CreateInternalTopics();

  Topology topology_;
  StreamsConfig config_;
  std::unique_ptr<MockCluster> mock_cluster_;
  std::string bootstrap_servers_;
  std::string state_dir_;
  std::string process_id_;
  int lock_fd_ = -1;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<RocksDbResources> rocksdb_;
  // Declared before threads_ (destroyed after): their clients report to it.
  std::unique_ptr<internal::KafkaStats> kafka_stats_;  // metrics endpoint
  std::unique_ptr<internal::DeadLetterLog> dead_letters_;  // made by Prepare
  // num.standby.replicas > 0: the instance's standby tasks; reset by Close
  // once the threads have stopped (it uses state_directory_ and rocksdb_).
  std::unique_ptr<internal::StandbyTasks> standby_;
  std::vector<std::unique_ptr<internal::StreamThread>> threads_;

  // --- Metrics endpoint (kafka_streams_endpoint.cc) ---
  // With metrics.port set: binds metrics.host:metrics.port, creates
  // kafka_stats_.
  absl::Status StartMetricsEndpoint();
  std::unique_ptr<internal::MetricsServer> metrics_server_;
  // Set (release) once threads_ is complete; the endpoint's handlers read
  // threads_ only after seeing it (acquire).
  std::atomic<bool> threads_started_{false};
  absl::Time started_;  // written before threads_started_ is set
  State state_ = State::kCreated;
  bool closed_ = false;

  // Deletes task directories no thread has used for state.cleanup.delay.ms,
  // every state.cleanup.delay.ms (at least each second) until Close.
  void CleanStateDirectory();
  std::unique_ptr<internal::StateDirectory> state_directory_;
  absl::Mutex cleaner_mu_;
  bool cleaner_stop_ ABSL_GUARDED_BY(cleaner_mu_) = false;
  std::thread cleaner_;
};

const char* StateName(KafkaStreams::State state);

}  // namespace tributary
