// KafkaStreams: runs a Topology against a Kafka cluster, like Kafka Streams'
// class of the same name: num.stream.threads StreamThreads in the consumer
// group application.id, internal topics (repartition, changelog) created on
// Start, state under state.dir, exactly-once v2 by default. With no
// bootstrap.servers (or "mock://") it starts librdkafka's in-process mock
// cluster and runs on that.
// Thread-safety: Open/Start/Close and the Set* calls from one thread;
// state(), error(), metrics(), tasks(), RecentDeadLetters(),
// ThreadStatuses() and the interactive queries from any thread.
#pragma once

#include <atomic>
#include <functional>
#include <map>
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
struct HttpRequest;
struct HttpResponse;
class DeadLetterLog;
class KafkaStats;
class HttpServer;
class ShutdownChannel;
class StateDirectory;
class StandbyTasks;
class StreamThread;
enum class ThreadState;
}
class RocksDbResources;
class KafkaAdmin;

// A health or readiness probe's answer: `text` says why when not ok.
struct ProbeResult {
  bool ok = true;
  std::string text;
};

class KafkaStreams {
 public:
  // As Kafka Streams' KafkaStreams.State. Transitions (anything else is
  // refused): CREATED -> REBALANCING (Start), PENDING_SHUTDOWN (Close);
  // REBALANCING <-> RUNNING (RUNNING: every stream thread runs with its
  // assignment and nothing to restore); REBALANCING, RUNNING ->
  // PENDING_SHUTDOWN (Close), PENDING_ERROR (a thread's uncaught error, or
  // another instance's kShutdownApplication); PENDING_SHUTDOWN -> NOT_RUNNING
  // (every thread ended); PENDING_ERROR -> ERROR (every thread ended).
  // NOT_RUNNING and ERROR are final.
  enum class State {
    kCreated,
    kRebalancing,
    kRunning,
    kPendingShutdown,
    kNotRunning,
    kPendingError,
    kError
  };
  using StateListener = std::function<void(State new_state, State old_state)>;
  using UncaughtErrorHandler = std::function<StreamThreadErrorResponse(const absl::Status&)>;

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
  // --- Lifecycle (kafka_streams_lifecycle.cc) ---
  // Stops every stream thread after its current poll: each commits, writes
  // its tasks' checkpoints and leaves the group (closes its consumer). Waits
  // at most `timeout`. Returns OK when every thread ended in time and none
  // with an error; DEADLINE_EXCEEDED naming the threads still closing when
  // `timeout` passed (state() stays PENDING_SHUTDOWN, they go on closing; a
  // later Close, or the destructor, waits again); else error(). Whether it
  // finished: state() is NOT_RUNNING or ERROR. Idempotent.
  absl::Status Close(absl::Duration timeout = absl::InfiniteDuration());

  State state() const;
  // The first error a stream thread stopped with; else, when another
  // instance's request stopped this one (kShutdownApplication), ABORTED
  // naming it; OK if neither.
  absl::Status error() const;

  // Called at every state transition with the new and the old state, in
  // transition order, on the thread that makes it: the caller of Start and
  // Close, a stream thread (rebalances, its error), or the shutdown channel's
  // thread (another instance's kShutdownApplication). Transitions wait while
  // it runs. REQUIRES: state() == kCreated; the listener returns quickly and
  // calls nothing of this instance but state() and error().
  void SetStateListener(StateListener listener);
  // Decides, on the failed stream thread, what an error that ends a stream
  // thread leads to (not errors of a close, nor a failed producer the thread
  // restarts itself after). Default (none set): kShutdownClient. With
  // kReplaceThread a new thread takes the failed one's index (its
  // transactional.id: the new producer fences the old one), at most
  // `max_replacements_in_a_row` times in a row without a commit in between;
  // then the client shuts down.
  // kShutdownApplication writes a request to `<application.id>-control`
  // that stops every instance (internal/shutdown_channel.h), then shuts down
  // this one. REQUIRES: state() == kCreated; the same rules as the listener.
  void SetUncaughtErrorHandler(UncaughtErrorHandler handler, int max_replacements_in_a_row = 5);

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

  // --- Interactive queries (query.port; kafka_streams_queries.cc) ---
  // Where a key of a query (Topology::AddQuery) lives, as Kafka Streams'
  // KeyQueryMetadata.
  struct KeyQueryMetadata {
    TaskId task;          // the task owning the key
    bool local = false;   // this instance runs it
    std::string server;   // the owner's application.server (this one's when local)
  };
  // Which instance owns `key` (a store key, e.g. QuerySpec::key's answer) of
  // query `query` now. Another instance is found in the consumer group's
  // assignment (cached; refreshed after a local rebalance and on a miss).
  // NotFound: no such query; Unavailable: not started, the group is
  // rebalancing, or no instance with an application.server owns the task.
  absl::StatusOr<KeyQueryMetadata> QueryMetadataForKey(std::string_view query,
                                                       std::string_view key);
  // The answer of `query` for `key` from this instance's task that owns it,
  // read on that task's stream thread between two records (so it may include
  // work of the open Kafka transaction); nullopt: none. NotFound: no such
  // query; FailedPrecondition: this instance does not own the key;
  // Unavailable: the task is restoring or the ownership is changing.
  absl::StatusOr<std::optional<std::string>> QueryLocal(std::string_view query,
                                                        std::string_view key);
  // The port the query endpoint is served on (the bound one when query.port
  // is 0), or -1 when there is none. Set by Start.
  int query_port() const;
  // What the other instances are told: application.server, or
  // query.host:<bound port>; empty without a query endpoint. Set by Start.
  const std::string& application_server() const { return application_server_; }

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
  std::unique_ptr<internal::HttpServer> metrics_server_;
  // Set (release) once threads_ is complete; the endpoint's handlers read
  // threads_ only after seeing it (acquire).
  std::atomic<bool> threads_started_{false};
  absl::Time started_;  // written before threads_started_ is set

  // --- Interactive queries (kafka_streams_queries.cc) ---
  // With query.port set: binds query.host:query.port, sets
  // application_server_.
  absl::Status StartQueryEndpoint();
  internal::HttpResponse AnswerQuery(const QuerySpec& query, const internal::HttpRequest& request);
  // owners_ from the group's description. REQUIRES: owners_mu_ held.
  absl::Status RefreshOwners(uint64_t rebalances);
  std::unique_ptr<internal::HttpServer> query_server_;
  std::string application_server_;
  // Partitions of each sub-topology (by id); set before threads_started_.
  std::map<int, int32_t> subtopology_partitions_;
  absl::Mutex owners_mu_;
  std::unique_ptr<KafkaAdmin> owners_admin_ ABSL_GUARDED_BY(owners_mu_);
  // (topic, partition) -> application.server of its owner ("": the owner has
  // none), as of the last description of the group.
  std::map<std::pair<std::string, int32_t>, std::string> owners_ ABSL_GUARDED_BY(owners_mu_);
  std::string owners_problem_ ABSL_GUARDED_BY(owners_mu_);  // why owners_ is empty
  uint64_t owners_rebalances_ ABSL_GUARDED_BY(owners_mu_) = ~uint64_t{0};
  absl::Time owners_fetched_ ABSL_GUARDED_BY(owners_mu_) = absl::InfinitePast();

  // Deletes task directories no thread has used for state.cleanup.delay.ms,
  // every state.cleanup.delay.ms (at least each second) until Close.
  void CleanStateDirectory();
  std::unique_ptr<internal::StateDirectory> state_directory_;
  absl::Mutex cleaner_mu_;
  bool cleaner_stop_ ABSL_GUARDED_BY(cleaner_mu_) = false;
  std::thread cleaner_;

  // --- Lifecycle (kafka_streams_lifecycle.cc) ---
  // Moves to `next` if the transition is allowed, then tells the listener.
  bool SetState(State next) ABSL_LOCKS_EXCLUDED(transition_mu_);
  bool SetStateLocked(State next) ABSL_EXCLUSIVE_LOCKS_REQUIRED(transition_mu_);
  // The hooks of each stream thread (StreamThreadOptions).
  void OnThreadStateChange(int index, internal::ThreadState old_state,
                           internal::ThreadState new_state);
  StreamThreadErrorResponse OnUncaughtError(int index, const absl::Status& error);
  void OnThreadDead(int index);
  // A request read from the control topic (any instance's, this one's too).
  void OnShutdownRequested(const std::string& from, const std::string& reason);
  // PENDING_ERROR, and every thread asked to stop. False if not allowed.
  bool ShutDownOnErrorLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(transition_mu_);
  // Opens the shutdown channel (after the control topic exists).
  absl::Status OpenShutdownChannel();
  bool AllThreadsDead() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(threads_mu_) {
    return threads_dead_ == threads_.size();
  }

  StateListener state_listener_;
  UncaughtErrorHandler error_handler_;
  int max_replacements_in_a_row_ = 5;
  // Serializes transitions and the listener's calls (held across both).
  absl::Mutex transition_mu_;
  mutable absl::Mutex state_mu_;
  State state_ ABSL_GUARDED_BY(state_mu_) = State::kCreated;
  // Why another instance's request stopped this one.
  absl::Status shutdown_request_error_ ABSL_GUARDED_BY(state_mu_);
  absl::Mutex threads_mu_;
  size_t threads_dead_ ABSL_GUARDED_BY(threads_mu_) = 0;
  std::unique_ptr<internal::ShutdownChannel> shutdown_channel_;
  bool close_started_ = false;   // Close's caller only
  bool close_finished_ = false;  // Close's caller only
};

const char* StateName(KafkaStreams::State state);
// RUNNING or REBALANCING: started, and not stopping.
bool IsRunningOrRebalancing(KafkaStreams::State state);
const char* ErrorResponseName(StreamThreadErrorResponse response);

}  // namespace tributary
