#include "engine/kafka_streams.h"

#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <system_error>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/ascii.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"
#include "engine/internal/dead_letter_log.h"
#include "engine/internal/kafka_stats.h"
#include "engine/kafka_clients.h"
#include "engine/internal/log.h"
#include "engine/internal/http_server.h"
#include "engine/internal/rdkafka_handles.h"
#include "engine/internal/shutdown_channel.h"
#include "engine/internal/standby_tasks.h"
#include "engine/internal/state_directory.h"
#include "engine/internal/stream_thread.h"
#include "engine/internal/task.h"
#include "spdlog/spdlog.h"
#include "state/rocksdb_store.h"

namespace tributary {
namespace {

using internal::KafkaHandle;
using internal::KafkaStatus;

constexpr int kAdminTimeoutMs = 30000;

// The admin client and the connection errors it reports (`handle`, declared
// last, is destroyed first).
struct AdminClient {
  std::unique_ptr<internal::ConnectionErrors> errors;
  KafkaHandle handle;
};

// An admin client that a broker has answered: its first request fails fast
// on wrong credentials or a TLS certificate it cannot verify, instead of
// waiting for the request timeout while librdkafka retries.
absl::StatusOr<AdminClient> NewAdminClient(const std::string& bootstrap,
                                           const std::map<std::string, std::string>& settings) {
  std::map<std::string, std::string> all = settings;
  all["bootstrap.servers"] = bootstrap;
  all.emplace("log_level", "4");
  AdminClient admin;
  admin.errors = std::make_unique<internal::ConnectionErrors>();
  internal::KafkaConf conf(rd_kafka_conf_new());
  admin.errors->Install(conf.get());
  TRIBUTARY_ASSIGN_OR_RETURN(admin.handle,
                             internal::NewKafkaClient(RD_KAFKA_PRODUCER, all, conf.release()));
  TRIBUTARY_RETURN_IF_ERROR(internal::AwaitBroker(admin.handle.get(), *admin.errors, bootstrap,
                                                  absl::Milliseconds(kAdminTimeoutMs)));
  return admin;
}

absl::StatusOr<std::map<std::string, int32_t>> PartitionCounts(rd_kafka_t* admin) {
  const rd_kafka_metadata_t* metadata = nullptr;
  TRIBUTARY_RETURN_IF_ERROR(
      KafkaStatus(rd_kafka_metadata(admin, 1, nullptr, &metadata, kAdminTimeoutMs),
                  "cluster metadata"));
  std::map<std::string, int32_t> counts;
  for (int i = 0; i < metadata->topic_cnt; ++i) {
    if (metadata->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      counts[metadata->topics[i].topic] = metadata->topics[i].partition_cnt;
    }
  }
  rd_kafka_metadata_destroy(metadata);
  return counts;
}

struct NewTopic {
  std::string name;
  int32_t partitions;
  bool compact;
};

absl::Status CreateTopics(rd_kafka_t* admin, MockCluster* mock,
                          const std::vector<NewTopic>& topics, int replication_factor) {
  if (topics.empty()) return absl::OkStatus();
  if (mock != nullptr) {
    for (const NewTopic& topic : topics) {
      TRIBUTARY_RETURN_IF_ERROR(mock->CreateTopic(topic.name, topic.partitions));
    }
    return absl::OkStatus();
  }
  char errstr[512];
  std::vector<rd_kafka_NewTopic_t*> requests;
  for (const NewTopic& topic : topics) {
    rd_kafka_NewTopic_t* request = rd_kafka_NewTopic_new(
        topic.name.c_str(), topic.partitions, replication_factor, errstr, sizeof(errstr));
    if (request == nullptr) {
      for (auto* r : requests) rd_kafka_NewTopic_destroy(r);
      return absl::InvalidArgumentError(absl::StrCat("topic ", topic.name, ": ", errstr));
    }
    if (topic.compact) rd_kafka_NewTopic_set_config(request, "cleanup.policy", "compact");
    requests.push_back(request);
  }
  internal::KafkaQueue queue(rd_kafka_queue_new(admin));
  rd_kafka_CreateTopics(admin, requests.data(), requests.size(), nullptr, queue.get());
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue.get(), kAdminTimeoutMs + 5000);
  for (auto* r : requests) rd_kafka_NewTopic_destroy(r);
  if (event == nullptr) return absl::DeadlineExceededError("CreateTopics: no answer");
  absl::Status status = KafkaStatus(rd_kafka_event_error(event), "CreateTopics");
  if (status.ok()) {
    size_t count = 0;
    const rd_kafka_topic_result_t** results =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count);
    for (size_t i = 0; i < count && status.ok(); ++i) {
      rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        status = absl::InternalError(absl::StrCat(
            "create topic ", rd_kafka_topic_result_name(results[i]), ": ",
            rd_kafka_topic_result_error_string(results[i])));
      }
    }
  }
  rd_kafka_event_destroy(event);
  TRIBUTARY_RETURN_IF_ERROR(status);
  // A new topic's partitions have no leader for a moment; the stream threads
  // query them at once, so wait (bounded) until every one has a leader.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  for (const NewTopic& topic : topics) {
    while (true) {
      rd_kafka_topic_t* handle = rd_kafka_topic_new(admin, topic.name.c_str(), nullptr);
      const rd_kafka_metadata_t* metadata = nullptr;
      rd_kafka_resp_err_t err = rd_kafka_metadata(admin, 0, handle, &metadata, 5000);
      rd_kafka_topic_destroy(handle);
      bool ready = err == RD_KAFKA_RESP_ERR_NO_ERROR && metadata->topic_cnt == 1 &&
                   metadata->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
                   metadata->topics[0].partition_cnt == topic.partitions;
      for (int p = 0; ready && p < metadata->topics[0].partition_cnt; ++p) {
        ready = metadata->topics[0].partitions[p].leader >= 0 &&
                metadata->topics[0].partitions[p].err == RD_KAFKA_RESP_ERR_NO_ERROR;
      }
      if (metadata != nullptr) rd_kafka_metadata_destroy(metadata);
      if (ready) break;
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat("topic ", topic.name, " has no leader for every partition after 30 s"));
      }
      absl::SleepFor(absl::Milliseconds(50));  // metadata has no wait-for-leader call
    }
  }
  return absl::OkStatus();
}

std::string NewProcessId() {
  std::random_device device;
  std::mt19937_64 rng((static_cast<uint64_t>(device()) << 32) ^ device());
  return absl::StrFormat("%016x", rng());
}

}  // namespace

KafkaStreams::KafkaStreams(Topology topology, StreamsConfig config)
    : topology_(std::move(topology)), config_(std::move(config)) {}

KafkaStreams::~KafkaStreams() {
  (void)Close();
  if (lock_fd_ >= 0) {
    flock(lock_fd_, LOCK_UN);
    close(lock_fd_);
  }
}

absl::StatusOr<std::unique_ptr<KafkaStreams>> KafkaStreams::Open(Topology topology,
                                                                 StreamsConfig config) {
  std::unique_ptr<KafkaStreams> streams(
      new KafkaStreams(std::move(topology), std::move(config)));
  TRIBUTARY_RETURN_IF_ERROR(streams->Prepare());
  return streams;
}

std::string KafkaStreams::TopicName(std::string_view topic) const {
  if (topology_.repartition_topics().count(std::string(topic)) > 0) {
    return absl::StrCat(config_.application_id(), "-", Sv(topic));
  }
  return std::string(topic);
}

absl::Status KafkaStreams::Prepare() {
  TRIBUTARY_RETURN_IF_ERROR(topology_.Build());
  spdlog::set_level(spdlog::level::from_str(config_.log_level()));
  metrics_ = std::make_unique<Metrics>();
  dead_letters_ = std::make_unique<internal::DeadLetterLog>(kRecentDeadLetters);
  if (config_.uses_mock_cluster()) {
    TRIBUTARY_ASSIGN_OR_RETURN(mock_cluster_,
                               MockCluster::Start(config_.mock_cluster_brokers()));
    bootstrap_servers_ = mock_cluster_->bootstrap_servers();
  } else {
    bootstrap_servers_ = config_.bootstrap_servers();
  }

  state_dir_ = absl::StrCat(config_.state_dir(), "/", config_.application_id());
  std::error_code ec;
  std::filesystem::create_directories(state_dir_, ec);
  if (ec) {
    return absl::Status(ec == std::errc::no_space_on_device ? absl::StatusCode::kResourceExhausted
                                                            : absl::StatusCode::kFailedPrecondition,
                        absl::StrCat("cannot create state.dir ", state_dir_, ": ", ec.message()));
  }
  state_directory_ = std::make_unique<internal::StateDirectory>(state_dir_);
  std::string lock_path = absl::StrCat(state_dir_, "/.lock");
  lock_fd_ = ::open(lock_path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  if (lock_fd_ < 0 || flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "state directory ", state_dir_,
        " is in use by another instance of this application; give each instance "
        "its own state.dir"));
  }
  std::string id_path = absl::StrCat(state_dir_, "/process-id");
  std::ifstream in(id_path);
  if (!(in >> process_id_) || process_id_.size() != 16) {
    process_id_ = NewProcessId();
    errno = 0;
    std::ofstream out(id_path, std::ios::trunc);
    out << process_id_ << "\n";
    out.close();  // the write happens here: a full disk fails it
    if (!out) {
      const std::string what = absl::StrCat("cannot write ", id_path);
      // A full disk is RESOURCE_EXHAUSTED, as a state store on it reports.
      return errno != 0 ? absl::ErrnoToStatus(errno, what) : absl::FailedPreconditionError(what);
    }
  }
  TRIBUTARY_ASSIGN_OR_RETURN(
      rocksdb_,
      RocksDbResources::Create(static_cast<size_t>(config_.rocksdb_block_cache_bytes()),
                               static_cast<size_t>(config_.rocksdb_block_cache_bytes() / 4)));
  return absl::OkStatus();
}

absl::Status KafkaStreams::CreateInternalTopics() {
  TRIBUTARY_ASSIGN_OR_RETURN(AdminClient admin_client,
                             NewAdminClient(bootstrap_servers_, config_.AdminSettings()));
  const KafkaHandle& admin = admin_client.handle;
  TRIBUTARY_ASSIGN_OR_RETURN(auto existing, PartitionCounts(admin.get()));
  const auto& repartition = topology_.repartition_topics();
  for (const auto& [topic, requirement] : topology_.partition_requirements()) {
    auto it = existing.find(topic);
    if (it != existing.end() && it->second != requirement.partitions) {
      return absl::FailedPreconditionError(absl::StrCat(
          "topic '", topic, "' has ", it->second, " partitions but must have ",
          requirement.partitions, ": ", requirement.reason));
    }
  }

  // Partition count of every sub-topology: its source topics' count, where a
  // repartition topic without a declared count takes its writer's count.
  std::map<int, int32_t> sub_partitions;
  std::map<std::string, int32_t> topic_partitions;
  for (const auto& [topic, count] : repartition) {
    if (count > 0) topic_partitions[TopicName(topic)] = count;
  }
  for (const auto& [topic, like] : topology_.repartition_partitions_like()) {
    auto it = existing.find(TopicName(like));
    if (it == existing.end()) {
      return absl::NotFoundError(absl::StrCat("topic '", TopicName(like), "' (which sizes '",
                                              TopicName(topic), "') does not exist"));
    }
    topic_partitions[TopicName(topic)] = it->second;
  }
  const auto& subs = topology_.subtopologies();
  for (size_t pass = 0; pass <= subs.size(); ++pass) {
    for (const auto& sub : subs) {
      if (sub_partitions.count(sub.id) > 0) continue;
      std::vector<std::pair<std::string, int32_t>> counts;
      bool known = true;
      for (const std::string& short_name : sub.source_topics) {
        std::string topic = TopicName(short_name);
        if (repartition.count(short_name) > 0) {
          auto it = topic_partitions.find(topic);
          if (it == topic_partitions.end()) {
            known = false;
            break;
          }
          counts.emplace_back(topic, it->second);
        } else {
          auto it = existing.find(topic);
          if (it == existing.end()) {
            return absl::NotFoundError(absl::StrCat(
                "source topic '", topic, "' does not exist on ", bootstrap_servers_,
                "; create it first (its partition count sets the parallelism)"));
          }
          counts.emplace_back(topic, it->second);
        }
      }
      if (!known) continue;
      for (const auto& [topic, count] : counts) {
        if (count != counts.front().second) {
          std::vector<std::string> parts;
          for (const auto& [t, c] : counts) parts.push_back(absl::StrCat(t, " (", c, ")"));
          return absl::InvalidArgumentError(absl::StrCat(
              "sub-topology ", sub.id, " is not co-partitioned: ",
              absl::StrJoin(parts, ", "),
              "; topics read by one sub-topology must have the same partition count"));
        }
      }
      int32_t count = counts.empty() ? 1 : counts.front().second;
      sub_partitions[sub.id] = count;
      for (const std::string& short_name : sub.sink_topics) {
        if (repartition.count(short_name) > 0) {
          topic_partitions.emplace(TopicName(short_name), count);
        }
      }
    }
  }
  if (sub_partitions.size() != subs.size()) {
    return absl::InvalidArgumentError(
        "cannot derive the partition count of every repartition topic (a cycle?)");
  }
  subtopology_partitions_ = sub_partitions;

  std::vector<NewTopic> create;
  auto want = [&](const std::string& topic, int32_t partitions, bool compact) -> absl::Status {
    auto it = existing.find(topic);
    if (it == existing.end()) {
      create.push_back({topic, partitions, compact});
    } else if (it->second != partitions) {
      return absl::FailedPreconditionError(absl::StrCat(
          "internal topic '", topic, "' has ", it->second, " partitions, expected ",
          partitions, "; delete it or reset the application"));
    }
    return absl::OkStatus();
  };
  for (const auto& [topic, count] : topic_partitions) {
    TRIBUTARY_RETURN_IF_ERROR(want(topic, count, /*compact=*/false));
  }
  for (const auto& sub : subs) {
    for (const std::string& store : sub.stores) {
      if (topology_.store(store)->logging) {
        TRIBUTARY_RETURN_IF_ERROR(want(
            internal::ChangelogTopic(config_.application_id(), store), sub_partitions[sub.id],
            /*compact=*/true));
      }
    }
  }
  if (config_.processing_error_policy() == ErrorPolicy::kContinue &&
      existing.count(config_.dead_letter_topic()) == 0) {
    create.push_back({config_.dead_letter_topic(), config_.dead_letter_topic_partitions(), false});
  }
  // --- Lifecycle: the shutdown channel's topic (kShutdownApplication) ---
  if (existing.count(internal::ControlTopic(config_.application_id())) == 0) {
    create.push_back({internal::ControlTopic(config_.application_id()), 1, false});
  }
  TRIBUTARY_RETURN_IF_ERROR(
      CreateTopics(admin.get(), mock_cluster_.get(), create, config_.replication_factor()));
  for (const NewTopic& topic : create) {
    internal::EngineLogger()->info("created topic {} ({} partitions{})", topic.name,
                                   topic.partitions, topic.compact ? ", compacted" : "");
  }
  return absl::OkStatus();
}

absl::Status KafkaStreams::Start() {
  if (const State now = state(); now != State::kCreated || close_started_) {
    return absl::FailedPreconditionError(
        absl::StrCat("KafkaStreams::Start in state ", StateName(now)));
  }
  // The effective configuration, secrets masked.
  internal::EngineLogger()->info("{}: {}", config_.application_id(),
                                 Sv(absl::StripTrailingAsciiWhitespace(config_.ToString())));
  TRIBUTARY_RETURN_IF_ERROR(StartMetricsEndpoint());  // binds first: a taken port fails Start
  if (absl::Status status = StartQueryEndpoint(); !status.ok()) {
    metrics_server_.reset();
    return status;
  }
  absl::Status prepared = CreateInternalTopics();
  if (prepared.ok()) prepared = OpenShutdownChannel();
  if (!prepared.ok()) {
    metrics_server_.reset();
    query_server_.reset();
    return prepared;
  }
  if (config_.num_standby_replicas() > 0) {
    internal::StandbyOptions standby;
    standby.replicas = config_.num_standby_replicas();
    standby.application_id = config_.application_id();
    standby.bootstrap_servers = bootstrap_servers_;
    standby.process_id = process_id_;
    standby.state_dir = state_dir_;
    standby.rocksdb_wal = config_.rocksdb_wal_enabled();
    standby.consumer_settings = config_.RestoreConsumerSettings();
    standby.admin_settings = config_.AdminSettings();
    standby.topology = &topology_;
    standby.topic_name = [this](std::string_view topic) { return TopicName(topic); };
    standby.state_directory = state_directory_.get();
    standby.rocksdb = rocksdb_.get();
    standby.metrics = metrics_.get();
    absl::StatusOr<std::unique_ptr<internal::StandbyTasks>> started =
        internal::StandbyTasks::Start(std::move(standby));
    if (!started.ok()) {
      metrics_server_.reset();
      query_server_.reset();
      return started.status();
    }
    standby_ = *std::move(started);
  }
  for (int i = 0; i < config_.num_stream_threads(); ++i) {
    internal::StreamThreadOptions options;
    options.index = i;
    options.application_id = config_.application_id();
    options.bootstrap_servers = bootstrap_servers_;
    options.exactly_once = config_.exactly_once();
    options.commit_interval = config_.commit_interval();
    options.poll_timeout = config_.poll_interval();
    options.repartition_purge_interval = config_.repartition_purge_interval();
    options.admin_settings = config_.AdminSettings();
    options.max_poll_records = config_.max_poll_records();
    options.state_dir = state_dir_;
    options.process_id = process_id_;
    options.rocksdb_wal = config_.rocksdb_wal_enabled();
    // Each thread gets an equal share of the record cache and splits it among
    // the stores of its tasks (Kafka Streams divides cache.max.bytes among
    // threads the same way).
    options.cache_bytes = static_cast<size_t>(config_.cache_max_bytes()) /
                          static_cast<size_t>(config_.num_stream_threads());
    options.error_policy = config_.processing_error_policy();
    options.dead_letter_topic = config_.dead_letter_topic();
    options.dead_letters = dead_letters_.get();
    options.consumer_settings = config_.ConsumerSettings();
    options.restore_consumer_settings = config_.RestoreConsumerSettings();
    options.state_directory = state_directory_.get();
    options.standby = standby_.get();
    options.producer_settings = config_.ProducerSettings();
    options.producer_settings.emplace(
        "transaction.timeout.ms",
        absl::StrCat(absl::ToInt64Milliseconds(config_.transaction_timeout())));
    options.topology = &topology_;
    options.rocksdb = rocksdb_.get();
    options.metrics = metrics_.get();
    options.kafka_stats = kafka_stats_.get();
    options.topic_name = [this](std::string_view topic) { return TopicName(topic); };
    options.application_server = application_server_;
    // --- Lifecycle (kafka_streams_lifecycle.cc) ---
    options.on_state_change = [this](int index, internal::ThreadState old_state,
                                     internal::ThreadState new_state) {
      OnThreadStateChange(index, old_state, new_state);
    };
    options.on_uncaught_error = [this, i](const absl::Status& error) {
      return OnUncaughtError(i, error);
    };
    options.max_replacements_in_a_row = max_replacements_in_a_row_;
    threads_.push_back(std::make_unique<internal::StreamThread>(std::move(options)));
  }
  SetState(State::kRebalancing);  // RUNNING once every thread runs
  for (auto& thread : threads_) thread->Start();
  started_ = absl::Now();
  threads_started_.store(true, std::memory_order_release);
  cleaner_ = std::thread([this] { CleanStateDirectory(); });
  internal::EngineLogger()->info("{} started with {} stream thread(s) on {}",
                                 config_.application_id(), threads_.size(),
                                 bootstrap_servers_);
  return absl::OkStatus();
}

void KafkaStreams::CleanStateDirectory() {
  const absl::Duration delay = config_.state_cleanup_delay();
  const absl::Duration period = std::max(delay, absl::Seconds(1));
  absl::MutexLock lock(&cleaner_mu_);
  while (!cleaner_mu_.AwaitWithTimeout(absl::Condition(&cleaner_stop_), period)) {
    cleaner_mu_.Unlock();
    state_directory_->CleanUnused(delay, absl::Now());
    cleaner_mu_.Lock();
  }
}

std::vector<DeadLetterInfo> KafkaStreams::RecentDeadLetters() const {
  return dead_letters_ != nullptr ? dead_letters_->Recent() : std::vector<DeadLetterInfo>{};
}

std::vector<ThreadStatus> KafkaStreams::ThreadStatuses() const {
  std::vector<ThreadStatus> all;
  if (!threads_started_.load(std::memory_order_acquire)) return all;
  for (const auto& thread : threads_) all.push_back(thread->status());
  return all;
}

std::vector<TaskId> KafkaStreams::tasks() const {
  std::vector<TaskId> all;
  for (const auto& thread : threads_) {
    auto ids = thread->task_ids();
    all.insert(all.end(), ids.begin(), ids.end());
  }
  std::sort(all.begin(), all.end());
  return all;
}

}  // namespace tributary
