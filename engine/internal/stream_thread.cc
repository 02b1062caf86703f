#include "engine/internal/stream_thread.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>

#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"
#include "engine/internal/kafka_collector.h"
#include "engine/internal/log.h"
#include "engine/internal/rdkafka_handles.h"
#include "state/checkpoint.h"
#include "state/in_memory_store.h"

namespace tributary::internal {
namespace {

constexpr int kKafkaTimeoutMs = 30000;
constexpr int kCommitAttempts = 5;
constexpr size_t kRestoreBatch = 10000;
constexpr absl::Duration kRestoreDeadline = absl::Minutes(10);

TimestampMs WallClock() { return TimestampMs{absl::ToUnixMillis(absl::Now())}; }

Record ViewOf(const rd_kafka_message_t* message, std::vector<Header>& headers) {
  Record record;
  if (message->key != nullptr) {
    record.key = std::string_view(static_cast<const char*>(message->key), message->key_len);
  }
  if (message->payload != nullptr) {
    record.value =
        std::string_view(static_cast<const char*>(message->payload), message->len);
  }
  record.timestamp = TimestampMs{rd_kafka_message_timestamp(message, nullptr)};
  record.topic = rd_kafka_topic_name(message->rkt);
  record.partition = Partition{message->partition};
  record.offset = Offset{message->offset};
  rd_kafka_headers_t* raw = nullptr;
  headers.clear();
  if (rd_kafka_message_headers(message, &raw) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* name = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    for (size_t i = 0; rd_kafka_header_get_all(raw, i, &name, &value, &size) ==
                       RD_KAFKA_RESP_ERR_NO_ERROR;
         ++i) {
      Header header{name, std::nullopt};
      if (value != nullptr) header.value = std::string_view(static_cast<const char*>(value), size);
      headers.push_back(header);
    }
  }
  record.headers = headers;
  return record;
}

// The low and high watermarks of a partition (for a read_committed client
// the high one is the last stable offset). Retries the errors a freshly
// created or moving partition gives (no leader yet, unknown topic, timeout)
// until `timeout`.
absl::Status QueryWatermarks(rd_kafka_t* client, const std::string& topic,
                             int32_t partition, int64_t& low, int64_t& high,
                             absl::Duration timeout = absl::Seconds(60)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
        client, topic.c_str(), partition, &low, &high, kKafkaTimeoutMs);
    const bool retriable = err == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
                           err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
                           err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                           err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
                           err == RD_KAFKA_RESP_ERR__TIMED_OUT ||
                           err == RD_KAFKA_RESP_ERR__TRANSPORT;
    if (!retriable || absl::Now() > deadline) {
      return KafkaStatus(err, absl::StrCat("end offset of ", topic, "[", partition, "]"));
    }
    absl::SleepFor(absl::Milliseconds(100));  // back off before asking again
  }
}

}  // namespace

const char* ThreadStateName(ThreadState state) {
  switch (state) {
    case ThreadState::kCreated: return "CREATED";
    case ThreadState::kStarting: return "STARTING";
    case ThreadState::kPartitionsAssigned: return "PARTITIONS_ASSIGNED";
    case ThreadState::kRunning: return "RUNNING";
    case ThreadState::kPendingShutdown: return "PENDING_SHUTDOWN";
    case ThreadState::kDead: return "DEAD";
  }
  return "?";
}

class StreamThread::Impl {
 public:
  Impl(StreamThread* owner, const StreamThreadOptions& options)
      : owner_(owner), options_(options), log_(EngineLogger()) {
    for (const auto& sub : options_.topology->subtopologies()) {
      for (const std::string& topic : sub.source_topics) {
        subtopology_of_topic_[options_.topic_name(topic)] = sub.id;
      }
    }
    name_ = absl::StrCat(options_.application_id, "-", options_.process_id,
                         "-StreamThread-", options_.index);
    if (options_.metrics != nullptr) {
      namespace m = metric_names;
      MetricTags tags{{std::string(m::kThreadTag), name_}};
      processed_ = options_.metrics->GetCounter(m::kProcessTotal, tags);
      commits_ = options_.metrics->GetCounter(m::kCommitTotal, tags);
      aborts_ = options_.metrics->GetCounter(m::kAbortTotal, tags);
      punctuations_ = options_.metrics->GetCounter(m::kPunctuateTotal, tags);
      restored_ = options_.metrics->GetCounter(m::kRestoreRecordsTotal, tags);
      dead_lettered_ = options_.metrics->GetCounter(m::kRecordsDeadLetteredTotal, tags);
      commit_latency_ = options_.metrics->GetLatency(m::kCommitLatency, tags);
      process_latency_ = options_.metrics->GetLatency(m::kProcessBatchLatency, tags);
    }
  }

  ~Impl() { ClearFastRoute(); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  absl::Status Run();

 private:
  absl::Status Setup();
  absl::Status PollOnce();
  absl::Status Commit();
  absl::Status CommitTransactional(rd_kafka_topic_partition_list_t* offsets);
  absl::Status RecoverFromAbort();
  absl::Status CreateTasks(const rd_kafka_topic_partition_list_t* assigned);
  absl::Status CreateTask(TaskId id);
  absl::Status RestoreTask(Task& task, const CheckpointFile::Offsets& checkpoint);
  absl::Status CloseTasks(bool clean);
  absl::Status WriteCheckpoint(Task& task);
  std::string TaskDir(TaskId id) const {
    return absl::StrCat(options_.state_dir, "/", id.ToString());
  }
  void PublishTaskIds();
  void OnRebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions);
  static void RebalanceCallback(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                rd_kafka_topic_partition_list_t* partitions,
                                void* opaque) {
    (void)rk;
    static_cast<Impl*>(opaque)->OnRebalance(err, partitions);
  }
  void CountTaskDeltas();
  Task* RouteOf(rd_kafka_topic_t* topic, int32_t partition);
  absl::Status RewindToCommitted();
  void ClearFastRoute();
  void PublishCounters(Task& task);
  absl::StatusOr<SourceProgress> QuerySourceProgress(const std::string& topic,
                                                     Partition partition);
  absl::Status RefreshEndOffsets();

  StreamThread* owner_;
  const StreamThreadOptions& options_;
  std::shared_ptr<spdlog::logger> log_;
  std::string name_;
  KafkaHandle consumer_;
  KafkaHandle producer_;
  KafkaHandle restore_consumer_;
  std::unique_ptr<KafkaRecordCollector> collector_;
  std::map<TaskId, std::unique_ptr<Task>> tasks_;
  std::map<std::pair<std::string, int32_t>, Task*, std::less<>> route_;
  std::map<std::string, int, std::less<>> subtopology_of_topic_;
  // route_ by topic handle: no string per record. Holds a reference to each
  // handle (held_topics_) so that an address always means the same topic.
  absl::flat_hash_map<std::pair<const rd_kafka_topic_t*, int32_t>, Task*> fast_route_;
  std::vector<rd_kafka_topic_t*> held_topics_;
  KafkaQueue consumer_queue_;
  std::vector<rd_kafka_message_t*> batch_;
  uint64_t rebalances_ = 0;
  absl::Time last_commit_ = absl::Now();
  bool uncommitted_ = false;
  size_t cache_bytes_per_store_ = 0;
  absl::Status rebalance_error_;
  std::vector<Header> header_scratch_;
  // End offsets of the assigned source partitions, asked for together.
  std::map<std::pair<std::string, int32_t>, int64_t> end_offsets_;
  TimestampMs end_offsets_as_of_{-1};

  Counter* processed_ = nullptr;
  Counter* commits_ = nullptr;
  Counter* aborts_ = nullptr;
  Counter* punctuations_ = nullptr;
  Counter* restored_ = nullptr;
  Counter* dead_lettered_ = nullptr;
  LatencyRecorder* commit_latency_ = nullptr;
  LatencyRecorder* process_latency_ = nullptr;
};

absl::Status StreamThread::Impl::Setup() {
  std::map<std::string, std::string> consumer = {
      {"session.timeout.ms", "10000"},
      {"heartbeat.interval.ms", "1000"},
      {"auto.offset.reset", "earliest"},
      {"log_level", "4"},
  };
  for (const auto& [key, value] : options_.consumer_settings) consumer[key] = value;
  consumer["bootstrap.servers"] = options_.bootstrap_servers;
  consumer["group.id"] = options_.application_id;
  consumer["client.id"] = absl::StrCat(name_, "-consumer");
  consumer["enable.auto.commit"] = "false";
  consumer["enable.auto.offset.store"] = "false";
  consumer["isolation.level"] = "read_committed";
  consumer["partition.assignment.strategy"] = "range";
  KafkaConf consumer_conf(rd_kafka_conf_new());
  rd_kafka_conf_set_rebalance_cb(consumer_conf.get(), &Impl::RebalanceCallback);
  rd_kafka_conf_set_opaque(consumer_conf.get(), this);
  TRIBUTARY_ASSIGN_OR_RETURN(consumer_,
                             NewKafkaClient(RD_KAFKA_CONSUMER, consumer, consumer_conf.release()));
  rd_kafka_poll_set_consumer(consumer_.get());
  consumer_queue_.reset(rd_kafka_queue_get_consumer(consumer_.get()));

  std::map<std::string, std::string> producer = {
      {"linger.ms", "5"},
      {"log_level", "4"},
  };
  for (const auto& [key, value] : options_.producer_settings) producer[key] = value;
  producer["bootstrap.servers"] = options_.bootstrap_servers;
  producer["client.id"] = absl::StrCat(name_, "-producer");
  producer["partitioner"] = "murmur2_random";
  producer["enable.idempotence"] = "true";
  if (options_.exactly_once) {
    producer["transactional.id"] =
        absl::StrCat(options_.application_id, "-", options_.process_id, "-", options_.index);
  }
  // The delivery report callback finds the collector through the opaque.
  collector_ = std::make_unique<KafkaRecordCollector>(options_.exactly_once);
  KafkaConf producer_conf(rd_kafka_conf_new());
  rd_kafka_conf_set_dr_msg_cb(producer_conf.get(), &KafkaRecordCollector::DeliveryReport);
  rd_kafka_conf_set_opaque(producer_conf.get(), collector_.get());
  TRIBUTARY_ASSIGN_OR_RETURN(producer_,
                             NewKafkaClient(RD_KAFKA_PRODUCER, producer, producer_conf.release()));
  collector_->set_producer(producer_.get());
  if (options_.exactly_once) {
    TRIBUTARY_RETURN_IF_ERROR(KafkaStatus(
        rd_kafka_init_transactions(producer_.get(), kKafkaTimeoutMs), "init_transactions"));
  }

  std::map<std::string, std::string> restore = {{"log_level", "4"}};
  for (const auto& [key, value] : options_.consumer_settings) restore[key] = value;
  restore["bootstrap.servers"] = options_.bootstrap_servers;
  restore["client.id"] = absl::StrCat(name_, "-restore-consumer");
  restore["group.id"] = absl::StrCat(options_.application_id, "-restore");
  restore["enable.auto.commit"] = "false";
  restore["enable.partition.eof"] = "true";
  restore.emplace("fetch.wait.max.ms", "10");  // restore ends on EOF: ask often
  restore["isolation.level"] = "read_committed";
  TRIBUTARY_ASSIGN_OR_RETURN(restore_consumer_, NewKafkaClient(RD_KAFKA_CONSUMER, restore));

  PartitionList topics(rd_kafka_topic_partition_list_new(
      static_cast<int>(subtopology_of_topic_.size())));
  for (const auto& [topic, sub] : subtopology_of_topic_) {
    rd_kafka_topic_partition_list_add(topics.get(), topic.c_str(), RD_KAFKA_PARTITION_UA);
  }
  return KafkaStatus(rd_kafka_subscribe(consumer_.get(), topics.get()), "subscribe");
}

void StreamThread::Impl::OnRebalance(rd_kafka_resp_err_t err,
                                     rd_kafka_topic_partition_list_t* partitions) {
  ++rebalances_;
  ClearFastRoute();
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    owner_->state_ = ThreadState::kPartitionsAssigned;
    rd_kafka_assign(consumer_.get(), partitions);
    absl::Status status = CreateTasks(partitions);
    if (!status.ok() && rebalance_error_.ok()) rebalance_error_ = status;
    owner_->state_ = ThreadState::kRunning;
  } else {
    // Eager protocol: everything is revoked. Commit what was processed, then
    // close the tasks cleanly so that they can move.
    absl::Status status = Commit();
    if (absl::IsAborted(status)) {
      (void)CloseTasks(/*clean=*/false);
    } else {
      if (!status.ok() && rebalance_error_.ok()) rebalance_error_ = status;
      absl::Status closed = CloseTasks(/*clean=*/status.ok());
      if (!closed.ok() && rebalance_error_.ok()) rebalance_error_ = closed;
    }
    rd_kafka_assign(consumer_.get(), nullptr);
  }
  PublishTaskIds();
}

void StreamThread::Impl::PublishTaskIds() {
  std::lock_guard<std::mutex> lock(owner_->tasks_mutex_);
  owner_->task_ids_.clear();
  for (const auto& [id, task] : tasks_) owner_->task_ids_.push_back(id);
}

absl::Status StreamThread::Impl::CreateTasks(const rd_kafka_topic_partition_list_t* assigned) {
  std::set<TaskId> wanted;
  for (int i = 0; i < assigned->cnt; ++i) {
    auto it = subtopology_of_topic_.find(assigned->elems[i].topic);
    if (it == subtopology_of_topic_.end()) continue;
    wanted.insert(TaskId{it->second, assigned->elems[i].partition});
  }
  // Split the thread's record cache among the stores of all its tasks. Under
  // the eager protocol every assignment recreates all tasks, so the split
  // holds for each of them.
  size_t stores = 0;
  for (const auto& [id, task] : tasks_) wanted.insert(id);
  for (TaskId id : wanted) {
    stores += options_.topology->subtopologies()[id.subtopology].stores.size();
  }
  cache_bytes_per_store_ = options_.cache_bytes / std::max<size_t>(1, stores);
  for (TaskId id : wanted) {
    if (tasks_.count(id) == 0) TRIBUTARY_RETURN_IF_ERROR(CreateTask(id));
  }
  return absl::OkStatus();
}

absl::Status StreamThread::Impl::CreateTask(TaskId id) {
  const std::string dir = TaskDir(id);
  CheckpointFile checkpoint(absl::StrCat(dir, "/.checkpoint"));
  absl::StatusOr<CheckpointFile::Offsets> offsets = checkpoint.Read();
  if (!offsets.ok()) {
    log_->warn("{}: task {}: unreadable checkpoint, restoring from scratch: {}", name_,
               id.ToString(), offsets.status().ToString());
    offsets = CheckpointFile::Offsets{};
  }
  std::error_code ec;
  if (offsets->empty()) {
    // No valid checkpoint: the local state may be ahead of the changelog
    // (an unclean shutdown); wipe it and restore everything.
    std::filesystem::remove_all(dir, ec);
  }
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot create task dir ", dir, ": ", ec.message()));
  }

  TaskOptions task_options;
  task_options.id = id;
  task_options.topology = options_.topology;
  task_options.application_id = options_.application_id;
  task_options.topic_name = options_.topic_name;
  task_options.collector = collector_.get();
  task_options.wall_clock = &WallClock;
  task_options.error_policy = options_.error_policy;
  task_options.dead_letter_topic = options_.dead_letter_topic;
  task_options.metrics = options_.metrics;
  task_options.cache_bytes_per_store = cache_bytes_per_store_;
  task_options.query_source_progress = [this](const std::string& topic, Partition partition) {
    return QuerySourceProgress(topic, partition);
  };
  RocksDbResources* rocksdb = options_.rocksdb;
  bool wal = options_.rocksdb_wal;
  task_options.open_store = [dir, rocksdb, wal](const StoreSpec& spec, TaskId)
      -> absl::StatusOr<std::unique_ptr<KeyValueStore>> {
    if (spec.type == StoreType::kInMemory) return InMemoryStore::Create(spec.name);
    RocksDbStoreOptions store_options;
    store_options.disable_wal = !wal;
    TRIBUTARY_ASSIGN_OR_RETURN(
        std::unique_ptr<RocksDbStore> store,
        RocksDbStore::Open(spec.name, absl::StrCat(dir, "/rocksdb/", spec.name), *rocksdb,
                           store_options));
    return std::unique_ptr<KeyValueStore>(std::move(store));
  };
  TRIBUTARY_ASSIGN_OR_RETURN(std::unique_ptr<Task> task, Task::Create(std::move(task_options)));
  if (options_.exactly_once) {
    // From here on the local state runs ahead of any checkpoint; only a clean
    // close writes a new one.
    TRIBUTARY_RETURN_IF_ERROR(checkpoint.Delete());
  }
  TRIBUTARY_RETURN_IF_ERROR(RestoreTask(*task, *offsets));
  TRIBUTARY_RETURN_IF_ERROR(task->Start());
  for (const std::string& topic : task->source_topics()) {
    route_[{topic, id.partition}] = task.get();
  }
  log_->info("{}: task {} running ({} records restored)", name_, id.ToString(),
             task->counters().restored);
  PublishCounters(*task);
  tasks_[id] = std::move(task);
  return absl::OkStatus();
}

absl::Status StreamThread::Impl::RefreshEndOffsets() {
  PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(route_.size())));
  for (const auto& [tp, task] : route_) {
    // Timestamp -1 (Kafka's LATEST): each partition's end offset, all in one
    // ListOffsets request per broker.
    rd_kafka_topic_partition_list_add(list.get(), tp.first.c_str(), tp.second)->offset = -1;
  }
  const TimestampMs asked = WallClock();
  // Through the restore consumer (read_committed, idle between restores):
  // on the main consumer the request waits behind its fetches.
  TRIBUTARY_RETURN_IF_ERROR(
      KafkaStatus(rd_kafka_offsets_for_times(restore_consumer_.get(), list.get(), 5000),
                  "end offsets of the source partitions"));
  end_offsets_.clear();
  for (int i = 0; i < list->cnt; ++i) {
    const rd_kafka_topic_partition_t& tp = list->elems[i];
    if (tp.err == RD_KAFKA_RESP_ERR_NO_ERROR && tp.offset >= 0) {
      end_offsets_[{tp.topic, tp.partition}] = tp.offset;
    }
  }
  end_offsets_as_of_ = asked;
  return absl::OkStatus();
}

absl::StatusOr<SourceProgress> StreamThread::Impl::QuerySourceProgress(
    const std::string& topic, Partition partition) {
  constexpr int64_t kMaxAgeMs = 250;
  auto end = end_offsets_.find({topic, partition.value});
  if (end == end_offsets_.end() || WallClock().value - end_offsets_as_of_.value > kMaxAgeMs) {
    TRIBUTARY_RETURN_IF_ERROR(RefreshEndOffsets());
    end = end_offsets_.find({topic, partition.value});
    if (end == end_offsets_.end()) {
      return absl::UnavailableError(
          absl::StrCat("no end offset of ", topic, "[", partition.value, "]"));
    }
  }
  const int64_t high = end->second;
  // The consumer's position: after the last record it returned; before the
  // first one, the committed offset; with none committed, the start
  // (auto.offset.reset=earliest).
  PartitionList list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition.value);
  int64_t position = -1;
  if (rd_kafka_position(consumer_.get(), list.get()) == RD_KAFKA_RESP_ERR_NO_ERROR &&
      list->elems[0].offset >= 0) {
    position = list->elems[0].offset;
  } else if (rd_kafka_committed(consumer_.get(), list.get(), 5000) ==
                 RD_KAFKA_RESP_ERR_NO_ERROR &&
             list->elems[0].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
             list->elems[0].offset >= 0) {
    position = list->elems[0].offset;
  }
  return SourceProgress{Offset{position}, Offset{high}, end_offsets_as_of_};
}

absl::Status StreamThread::Impl::RestoreTask(Task& task,
                                             const CheckpointFile::Offsets& checkpoint) {
  if (task.changelogs().empty()) return absl::OkStatus();
  TRIBUTARY_RETURN_IF_ERROR(task.BeginRestore());
  PartitionList assignment(rd_kafka_topic_partition_list_new(
      static_cast<int>(task.changelogs().size())));
  std::map<std::pair<std::string, int32_t>, std::string> store_of;
  std::map<std::pair<std::string, int32_t>, int64_t> end_offsets;
  for (const Task::Changelog& changelog : task.changelogs()) {
    int64_t low = 0, high = 0;
    TRIBUTARY_RETURN_IF_ERROR(QueryWatermarks(restore_consumer_.get(), changelog.topic,
                                              changelog.partition.value, low, high));
    int64_t start = RD_KAFKA_OFFSET_BEGINNING;
    auto it = checkpoint.find({changelog.topic, changelog.partition.value});
    if (it != checkpoint.end() && it->second >= low && it->second <= high) start = it->second;
    if ((start == RD_KAFKA_OFFSET_BEGINNING ? low : start) >= high) continue;
    rd_kafka_topic_partition_list_add(assignment.get(), changelog.topic.c_str(),
                                      changelog.partition.value)
        ->offset = start;
    store_of[{changelog.topic, changelog.partition.value}] = changelog.store;
    end_offsets[{changelog.topic, changelog.partition.value}] = high;
  }
  if (assignment->cnt == 0) return absl::OkStatus();
  TRIBUTARY_RETURN_IF_ERROR(
      KafkaStatus(rd_kafka_assign(restore_consumer_.get(), assignment.get()), "restore assign"));
  std::map<std::pair<std::string, int32_t>, WriteBatch> batches;
  size_t open = end_offsets.size();
  absl::Time deadline = absl::Now() + kRestoreDeadline;
  size_t since_position_check = 0;
  absl::Status status;
  auto flush = [&](const std::pair<std::string, int32_t>& tp) -> absl::Status {
    WriteBatch& batch = batches[tp];
    if (batch.empty()) return absl::OkStatus();
    absl::Status s = task.Restore(store_of[tp], batch);
    batch.Clear();
    return s;
  };
  while (open > 0 && status.ok()) {
    if (absl::Now() > deadline) {
      status = absl::DeadlineExceededError(absl::StrCat(
          "restoring task ", task.id().ToString(), " did not finish in ",
          absl::FormatDuration(kRestoreDeadline)));
      break;
    }
    KafkaMessage message(rd_kafka_consumer_poll(restore_consumer_.get(), 100));
    if (!message || ++since_position_check >= kRestoreBatch) {
      // Under exactly-once a changelog ends with a commit marker, so the last
      // record's offset + 1 stays below the end offset: compare positions.
      since_position_check = 0;
      for (auto it = end_offsets.begin(); it != end_offsets.end() && status.ok();) {
        PartitionList position(rd_kafka_topic_partition_list_new(1));
        rd_kafka_topic_partition_list_add(position.get(), it->first.first.c_str(),
                                          it->first.second);
        rd_kafka_position(restore_consumer_.get(), position.get());
        if (position->elems[0].offset >= it->second) {
          status = flush(it->first);
          it = end_offsets.erase(it);
          --open;
        } else {
          ++it;
        }
      }
    }
    if (!message) continue;
    std::pair<std::string, int32_t> tp{
        message->rkt ? rd_kafka_topic_name(message->rkt) : "", message->partition};
    if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (end_offsets.erase(tp) > 0) {
        status = flush(tp);
        --open;
      }
      continue;
    }
    if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      status = KafkaStatus(message->err, "restore consume");
      break;
    }
    if (end_offsets.count(tp) == 0) continue;
    std::string_view key(static_cast<const char*>(message->key), message->key_len);
    WriteBatch& batch = batches[tp];
    if (message->payload == nullptr) {
      batch.Delete(key);
    } else {
      batch.Put(key, std::string_view(static_cast<const char*>(message->payload),
                                      message->len));
    }
    if (batch.size() >= kRestoreBatch) status = flush(tp);
    if (message->offset + 1 >= end_offsets[tp]) {
      if (status.ok()) status = flush(tp);
      end_offsets.erase(tp);
      --open;
    }
  }
  rd_kafka_assign(restore_consumer_.get(), nullptr);
  return status;
}

absl::Status StreamThread::Impl::WriteCheckpoint(Task& task) {
  if (task.changelogs().empty()) return absl::OkStatus();
  TRIBUTARY_RETURN_IF_ERROR(task.FlushStores());
  CheckpointFile::Offsets offsets;
  for (const Task::Changelog& changelog : task.changelogs()) {
    int64_t low = 0, high = 0;
    TRIBUTARY_RETURN_IF_ERROR(QueryWatermarks(producer_.get(), changelog.topic,
                                              changelog.partition.value, low, high));
    offsets[{changelog.topic, changelog.partition.value}] = high;
  }
  return CheckpointFile(absl::StrCat(TaskDir(task.id()), "/.checkpoint")).Write(offsets);
}

absl::Status StreamThread::Impl::CloseTasks(bool clean) {
  absl::Status first;
  for (auto& [id, task] : tasks_) {
    if (clean) first.Update(WriteCheckpoint(*task));
    first.Update(task->Close());
    PublishCounters(*task);
  }
  tasks_.clear();
  route_.clear();
  ClearFastRoute();
  return first;
}

absl::Status StreamThread::Impl::Commit() {
  CountTaskDeltas();
  // Cached store writes become store writes and changelog records (in the
  // open transaction under exactly-once) before anything is committed; done
  // even with nothing processed, since punctuators write too.
  for (auto& [id, task] : tasks_) TRIBUTARY_RETURN_IF_ERROR(task->PrepareCommit());
  if (!uncommitted_ && !(collector_ && collector_->in_transaction())) {
    last_commit_ = absl::Now();
    return absl::OkStatus();
  }
  absl::Time start = absl::Now();
  PartitionList offsets(rd_kafka_topic_partition_list_new(8));
  for (auto& [id, task] : tasks_) {
    for (const auto& [tp, next] : task->consumed_offsets()) {
      rd_kafka_topic_partition_list_add(offsets.get(), tp.first.c_str(), tp.second)
          ->offset = next;
    }
    task->clear_commit_request();
  }
  absl::Status status;
  if (options_.exactly_once) {
    status = CommitTransactional(offsets.get());
  } else {
    status = KafkaStatus(rd_kafka_flush(producer_.get(), kKafkaTimeoutMs), "flush");
    if (status.ok()) status = collector_->TakeError();
    for (auto& [id, task] : tasks_) {
      if (status.ok()) status = WriteCheckpoint(*task);
    }
    if (status.ok() && offsets->cnt > 0) {
      status = KafkaStatus(rd_kafka_commit(consumer_.get(), offsets.get(), 0), "commit offsets");
    }
  }
  if (status.ok()) {
    uncommitted_ = false;
    if (commits_ != nullptr) commits_->Add(1);
    if (commit_latency_ != nullptr) commit_latency_->Record(absl::Now() - start);
  }
  last_commit_ = absl::Now();
  return status;
}

absl::Status StreamThread::Impl::CommitTransactional(
    rd_kafka_topic_partition_list_t* offsets) {
  TRIBUTARY_RETURN_IF_ERROR(collector_->EnsureTransaction());
  absl::Status status;
  if (offsets->cnt > 0) {
    GroupMetadata metadata(rd_kafka_consumer_group_metadata(consumer_.get()));
    status = KafkaStatus(rd_kafka_send_offsets_to_transaction(producer_.get(), offsets,
                                                              metadata.get(), kKafkaTimeoutMs),
                         "send_offsets_to_transaction");
  }
  for (int attempt = 1; status.ok() || absl::IsUnavailable(status); ++attempt) {
    status = KafkaStatus(rd_kafka_commit_transaction(producer_.get(), kKafkaTimeoutMs),
                         "commit_transaction");
    if (status.ok() || !absl::IsUnavailable(status) || attempt == kCommitAttempts) break;
    log_->warn("{}: {} (attempt {} of {})", name_, status.ToString(), attempt,
               kCommitAttempts);
  }
  if (status.ok()) {
    collector_->TransactionEnded();
    return collector_->TakeError();
  }
  if (absl::IsAborted(status) || absl::IsUnavailable(status) ||
      absl::IsDeadlineExceeded(status)) {
    log_->warn("{}: aborting transaction: {}", name_, status.ToString());
    absl::Status aborted =
        KafkaStatus(rd_kafka_abort_transaction(producer_.get(), kKafkaTimeoutMs),
                    "abort_transaction");
    collector_->TransactionEnded();
    (void)collector_->TakeError();
    if (aborts_ != nullptr) aborts_->Add(1);
    if (!aborted.ok()) return aborted;
    return absl::AbortedError(status.message());
  }
  return status;  // fatal: fenced, unauthorized, ...
}

absl::Status StreamThread::Impl::RecoverFromAbort() {
  // The aborted transaction's outputs, changelog writes and offsets are gone:
  // rebuild every task from its changelog and rewind to the committed offsets.
  TRIBUTARY_RETURN_IF_ERROR(CloseTasks(/*clean=*/false));
  rd_kafka_topic_partition_list_t* raw = nullptr;
  TRIBUTARY_RETURN_IF_ERROR(KafkaStatus(rd_kafka_assignment(consumer_.get(), &raw), "assignment"));
  PartitionList assignment(raw);
  if (assignment->cnt == 0) return absl::OkStatus();
  TRIBUTARY_RETURN_IF_ERROR(KafkaStatus(
      rd_kafka_committed(consumer_.get(), assignment.get(), kKafkaTimeoutMs), "committed"));
  for (int i = 0; i < assignment->cnt; ++i) {
    if (assignment->elems[i].offset < 0) assignment->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  // rd_kafka_assign with explicit offsets repositions and drops prefetched data.
  TRIBUTARY_RETURN_IF_ERROR(
      KafkaStatus(rd_kafka_assign(consumer_.get(), assignment.get()), "re-assign"));
  TRIBUTARY_RETURN_IF_ERROR(CreateTasks(assignment.get()));
  PublishTaskIds();
  uncommitted_ = false;
  return absl::OkStatus();
}

absl::Status StreamThread::Impl::RewindToCommitted() {
  rd_kafka_topic_partition_list_t* raw = nullptr;
  TRIBUTARY_RETURN_IF_ERROR(KafkaStatus(rd_kafka_assignment(consumer_.get(), &raw), "assignment"));
  PartitionList assignment(raw);
  if (assignment->cnt == 0) return absl::OkStatus();
  for (int i = 0; i < assignment->cnt; ++i) {
    assignment->elems[i].offset = RD_KAFKA_OFFSET_INVALID;  // the committed offset
  }
  return KafkaStatus(rd_kafka_assign(consumer_.get(), assignment.get()), "re-assign");
}

Task* StreamThread::Impl::RouteOf(rd_kafka_topic_t* topic, int32_t partition) {
  auto fast = fast_route_.find({topic, partition});
  if (fast != fast_route_.end()) return fast->second;
  auto it = route_.find(std::pair<std::string, int32_t>(rd_kafka_topic_name(topic), partition));
  if (it == route_.end()) return nullptr;
  // Keep a reference to the handle so that its address stays this topic's.
  rd_kafka_topic_t* held = rd_kafka_topic_new(consumer_.get(), rd_kafka_topic_name(topic), nullptr);
  if (held == nullptr) return it->second;
  held_topics_.push_back(held);
  fast_route_[{held, partition}] = it->second;
  return it->second;
}

void StreamThread::Impl::ClearFastRoute() {
  fast_route_.clear();
  for (rd_kafka_topic_t* topic : held_topics_) rd_kafka_topic_destroy(topic);
  held_topics_.clear();
}

void StreamThread::Impl::CountTaskDeltas() {
  for (const auto& [id, task] : tasks_) PublishCounters(*task);
}

void StreamThread::Impl::PublishCounters(Task& task) {
  TaskCounters delta = task.TakeCounterDeltas();
  if (dead_lettered_ != nullptr) dead_lettered_->Add(delta.dead_lettered);
  if (punctuations_ != nullptr) punctuations_->Add(delta.punctuations);
  if (restored_ != nullptr) restored_->Add(delta.restored);
}

absl::Status StreamThread::Impl::PollOnce() {
  absl::Time batch_start = absl::Now();
  int64_t processed = 0;
  batch_.resize(static_cast<size_t>(options_.max_poll_records));
  const uint64_t rebalances_before = rebalances_;
  ssize_t count = rd_kafka_consume_batch_queue(
      consumer_queue_.get(), static_cast<int>(absl::ToInt64Milliseconds(options_.poll_timeout)),
      batch_.data(), batch_.size());
  // Own every message first, so that an early return releases them all.
  std::vector<KafkaMessage> messages;
  messages.reserve(count > 0 ? static_cast<size_t>(count) : 0);
  for (ssize_t i = 0; i < count; ++i) messages.emplace_back(batch_[i]);
  TRIBUTARY_RETURN_IF_ERROR(std::exchange(rebalance_error_, absl::OkStatus()));
  if (count < 0) return KafkaStatus(rd_kafka_last_error(), "consume batch");
  // A rebalance served inside this call may have put messages fetched before
  // it (which the new tasks will read again from the committed offsets) next
  // to messages fetched after it. Drop the whole batch and restart every
  // assigned partition from its committed offset: nothing after the
  // assignment was processed, so that position is exact.
  if (rebalances_ != rebalances_before && !messages.empty()) {
    messages.clear();
    TRIBUTARY_RETURN_IF_ERROR(RewindToCommitted());
  }
  for (KafkaMessage& message : messages) {
    if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) continue;
      absl::Status error = KafkaStatus(message->err, "consume");
      if (message->err == RD_KAFKA_RESP_ERR__FATAL) return error;
      log_->warn("{}: {}", name_, error.ToString());
      continue;
    }
    Task* task = RouteOf(message->rkt, message->partition);
    if (task == nullptr) continue;  // revoked meanwhile; the new owner reads it
    Record record = ViewOf(message.get(), header_scratch_);
    TRIBUTARY_RETURN_IF_ERROR(task->Process(record));
    uncommitted_ = true;
    ++processed;
  }
  if (processed > 0) {
    if (processed_ != nullptr) processed_->Add(processed);
    if (process_latency_ != nullptr) process_latency_->Record(absl::Now() - batch_start);
  }
  TimestampMs now = WallClock();
  for (auto& [id, task] : tasks_) {
    TRIBUTARY_RETURN_IF_ERROR(task->PunctuateWallClock(now));
  }
  bool requested = false;
  for (auto& [id, task] : tasks_) requested = requested || task->commit_requested();
  if (requested || absl::Now() - last_commit_ >= options_.commit_interval) {
    absl::Status status = Commit();
    if (absl::IsAborted(status)) return RecoverFromAbort();
    return status;
  }
  return absl::OkStatus();
}

absl::Status StreamThread::Impl::Run() {
  TRIBUTARY_RETURN_IF_ERROR(Setup());
  owner_->state_ = ThreadState::kRunning;
  log_->info("{}: started", name_);
  absl::Status status;
  while (status.ok() && !owner_->shutdown_requested_) {
    status = PollOnce();
  }
  owner_->state_ = ThreadState::kPendingShutdown;
  if (status.ok()) {
    status = Commit();
    status.Update(CloseTasks(/*clean=*/status.ok()));
  } else {
    log_->error("{}: stopping: {}", name_, status.ToString());
    if (options_.exactly_once && collector_ && collector_->in_transaction()) {
      (void)rd_kafka_abort_transaction(producer_.get(), kKafkaTimeoutMs);
    }
    (void)CloseTasks(/*clean=*/false);
  }
  if (consumer_) {
    rd_kafka_consumer_close(consumer_.get());
    absl::Status late = std::exchange(rebalance_error_, absl::OkStatus());
    if (status.ok()) status = late;
  }
  if (producer_) rd_kafka_flush(producer_.get(), kKafkaTimeoutMs);
  PublishTaskIds();
  return status;
}

StreamThread::StreamThread(StreamThreadOptions options) : options_(std::move(options)) {}

StreamThread::~StreamThread() {
  RequestShutdown();
  if (thread_.joinable()) thread_.join();
}

void StreamThread::Start() {
  state_ = ThreadState::kStarting;
  thread_ = std::thread([this] { Run(); });
}

void StreamThread::Run() {
  impl_ = std::make_unique<Impl>(this, options_);
  result_ = impl_->Run();
  impl_.reset();
  state_ = ThreadState::kDead;
}

absl::Status StreamThread::Join() {
  if (thread_.joinable()) thread_.join();
  return result_;
}

std::vector<TaskId> StreamThread::task_ids() const {
  std::lock_guard<std::mutex> lock(tasks_mutex_);
  return task_ids_;
}

}  // namespace tributary::internal
