// KafkaStreams: runs a Topology against a Kafka cluster, like Kafka Streams'
// class of the same name: num.stream.threads StreamThreads in the consumer
// group application.id, internal topics (repartition, changelog) created on
// Start, state under state.dir, exactly-once v2 by default. With no
// bootstrap.servers (or "mock://") it starts librdkafka's in-process mock
// cluster and runs on that.
// Thread-safety: Open/Start/Close from one thread; state(), error(),
// metrics() and tasks() from any thread.
#pragma once

#include <memory>
#include <thread>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "engine/metrics.h"
#include "engine/mock_cluster.h"
#include "engine/streams_config.h"
#include "engine/topology.h"
#include "engine/types.h"

namespace tributary {

namespace internal {
class StateDirectory;
class StreamThread;
}
class RocksDbResources;

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
  std::vector<std::unique_ptr<internal::StreamThread>> threads_;
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
