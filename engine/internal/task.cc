#include "engine/internal/task.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"
#include "state/change_logging_store.h"

namespace tributary::internal {

const char* TaskStateName(TaskState state) {
  switch (state) {
    case TaskState::kCreated:
      return "CREATED";
    case TaskState::kRestoring:
      return "RESTORING";
    case TaskState::kRunning:
      return "RUNNING";
    case TaskState::kClosed:
      return "CLOSED";
  }
  return "?";
}

std::string ChangelogTopic(std::string_view application_id, std::string_view store) {
  return absl::StrCat(Sv(application_id), "-", Sv(store), "-changelog");
}

int32_t DefaultPartition(std::string_view key, int32_t partitions) {
  // murmur2 ignores the topic handle and opaques for a non-null key.
  return rd_kafka_msg_partitioner_murmur2(nullptr, key.data(), key.size(), partitions,
                                          nullptr, nullptr);
}

struct Task::NodeRuntime {
  const Topology::Node* def = nullptr;
  std::unique_ptr<Processor> processor;  // processors only
  std::unique_ptr<NodeContext> context;  // processors only
  std::vector<int> children;
  std::string sink_topic;  // sinks only: the real topic name
};

struct Task::Schedule : public Cancellable {
  int node = 0;
  int64_t interval_ms = 0;
  PunctuationType type = PunctuationType::kStreamTime;
  Punctuator punctuator;
  int64_t next_ms = -1;  // -1: not yet anchored
  bool cancelled = false;
  void Cancel() override { cancelled = true; }
};

class Task::StoreChangelogWriter : public ChangelogWriter {
 public:
  StoreChangelogWriter(RecordCollector* collector, std::string topic,
                       Partition partition, std::function<TimestampMs()> clock)
      : collector_(collector),
        topic_(std::move(topic)),
        partition_(partition),
        clock_(std::move(clock)) {}

  absl::Status Append(std::string_view key,
                      std::optional<std::string_view> value) override {
    Record record;
    record.key = key;
    record.value = value;
    record.timestamp = clock_();
    return collector_->Send(topic_, record, partition_);
  }

 private:
  RecordCollector* collector_;
  std::string topic_;
  Partition partition_;
  std::function<TimestampMs()> clock_;
};

class Task::NodeContext : public ProcessorContext {
 public:
  NodeContext(Task* task, int node) : task_(task), node_(node) {}

  const std::string& application_id() const override {
    return task_->options_.application_id;
  }
  TaskId task_id() const override { return task_->options_.id; }
  TimestampMs stream_time() const override { return task_->stream_time_; }
  TimestampMs wall_clock_time() const override { return task_->options_.wall_clock(); }

  absl::Status Forward(const Record& record) override {
    for (int child : task_->nodes_[node_].children) {
      TRIBUTARY_RETURN_IF_ERROR(task_->Deliver(child, record));
    }
    return absl::OkStatus();
  }

  absl::Status Forward(const Record& record, std::string_view child) override {
    for (int index : task_->nodes_[node_].children) {
      if (task_->nodes_[index].def->name == child) return task_->Deliver(index, record);
    }
    return absl::InvalidArgumentError(
        absl::StrCat("node '", task_->nodes_[node_].def->name,
                     "' has no child named '", Sv(child), "'"));
  }

  KeyValueStore* GetStateStore(std::string_view name) override {
    const auto& allowed = task_->nodes_[node_].def->stores;
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) return nullptr;
    return task_->store(name);
  }

  std::shared_ptr<Cancellable> Schedule(absl::Duration interval, PunctuationType type,
                                        Punctuator punctuator) override {
    auto schedule = std::make_shared<Task::Schedule>();
    schedule->node = node_;
    schedule->interval_ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(interval));
    schedule->type = type;
    schedule->punctuator = std::move(punctuator);
    if (type == PunctuationType::kWallClockTime) {
      schedule->next_ms = task_->options_.wall_clock().value + schedule->interval_ms;
    }
    task_->schedules_.push_back(schedule);
    return schedule;
  }

  absl::StatusOr<int32_t> PartitionCount(std::string_view topic) override {
    return task_->options_.collector->PartitionCount(task_->options_.topic_name(topic));
  }

  absl::StatusOr<SourceProgress> QuerySourceProgress(std::string_view topic) override {
    return task_->QuerySourceProgress(topic);
  }

  void RequestCommit() override { task_->commit_requested_ = true; }

  bool Unfinished() override {
    task_->unfinished_ = true;
    task_->commit_requested_ = true;
    return true;
  }

  absl::Status HoldCommittedOffset(std::string_view topic, int64_t offset) override {
    auto it = task_->source_by_topic_.find(task_->options_.topic_name(topic));
    if (it == task_->source_by_topic_.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "task ", task_->options_.id.ToString(), " reads no topic '", Sv(topic), "'"));
    }
    task_->held_offsets_[it->second.topic] = offset;
    return absl::OkStatus();
  }

  Metrics& metrics() override { return *task_->options_.metrics; }

  absl::Status DeadLetter(const Record& record, const absl::Status& error) override {
    if (task_->options_.error_policy != ErrorPolicy::kContinue) return error;
    return task_->DeadLetter(record, error);
  }

 private:
  Task* task_;
  int node_;
};

Task::Task(TaskOptions options) : options_(std::move(options)) {}

Task::~Task() { (void)Close(); }

absl::StatusOr<std::unique_ptr<Task>> Task::Create(TaskOptions options) {
  if (options.topology == nullptr || options.collector == nullptr ||
      !options.open_store || !options.wall_clock || !options.topic_name) {
    return absl::InvalidArgumentError("Task::Create: incomplete TaskOptions");
  }
  std::unique_ptr<Task> task(new Task(std::move(options)));
  if (task->options_.metrics == nullptr) {
    task->own_metrics_ = std::make_unique<Metrics>();
    task->options_.metrics = task->own_metrics_.get();
  }
  TRIBUTARY_RETURN_IF_ERROR(task->Init());
  return task;
}

absl::Status Task::Init() {
  const Topology& topology = *options_.topology;
  const auto& subtopologies = topology.subtopologies();
  const int sub = options_.id.subtopology;
  if (sub < 0 || sub >= static_cast<int>(subtopologies.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("task ", options_.id.ToString(), ": no such sub-topology"));
  }
  const Topology::Subtopology& blueprint = subtopologies[sub];

  std::map<std::string, int, std::less<>> index_by_name;
  nodes_.resize(blueprint.nodes.size());
  for (size_t i = 0; i < blueprint.nodes.size(); ++i) {
    nodes_[i].def = topology.node(blueprint.nodes[i]);
    index_by_name[blueprint.nodes[i]] = static_cast<int>(i);
  }
  for (size_t i = 0; i < nodes_.size(); ++i) {
    NodeRuntime& node = nodes_[i];
    for (const std::string& child : node.def->children) {
      auto it = index_by_name.find(child);
      if (it != index_by_name.end()) node.children.push_back(it->second);
    }
    switch (node.def->kind) {
      case Topology::NodeKind::kSource:
        for (const std::string& topic : node.def->topics) {
          std::string real = options_.topic_name(topic);
          source_by_topic_[real] = Source{static_cast<int>(i), 0};
          source_topics_.push_back(real);
        }
        break;
      case Topology::NodeKind::kSink:
        if (!node.def->topics.empty()) {
          node.sink_topic = options_.topic_name(node.def->topics.front());
          options_.collector->PrepareTopic(node.sink_topic);
        }
        break;
      case Topology::NodeKind::kProcessor:
        node.processor = node.def->factory();
        if (!node.processor) {
          return absl::InvalidArgumentError(absl::StrCat(
              "processor factory of '", node.def->name, "' returned null"));
        }
        node.context = std::make_unique<NodeContext>(this, static_cast<int>(i));
        break;
    }
  }
  std::sort(source_topics_.begin(), source_topics_.end());
  for (size_t t = 0; t < source_topics_.size(); ++t) {
    source_by_topic_[source_topics_[t]].topic = t;
  }
  next_offsets_.assign(source_topics_.size(), -1);
  held_offsets_.assign(source_topics_.size(), -1);

  for (const std::string& name : blueprint.stores) {
    const StoreSpec* spec = topology.store(name);
    TRIBUTARY_ASSIGN_OR_RETURN(std::unique_ptr<KeyValueStore> raw,
                               options_.open_store(*spec, options_.id));
    raw_stores_[name] = raw.get();
    std::unique_ptr<KeyValueStore> top = std::move(raw);
    if (spec->logging) {
      std::string topic = ChangelogTopic(options_.application_id, name);
      options_.collector->PrepareTopic(topic);
      changelogs_.push_back({name, topic, Partition{options_.id.partition}});
      changelog_writers_.push_back(std::make_unique<StoreChangelogWriter>(
          options_.collector, topic, Partition{options_.id.partition},
          options_.wall_clock));
      top = MakeChangeLoggingStore(std::move(top), changelog_writers_.back().get());
    }
    const auto cache_bytes =
        static_cast<size_t>(options_.cache_bytes_per_weight * std::max(0.0, spec->cache_weight));
    if (cache_bytes > 0) {
      std::unique_ptr<CachingStore> caching =
          CachingStore::Create(std::move(top), cache_bytes);
      caching_stores_.push_back(caching.get());
      top = std::move(caching);
    }
    stores_[name] = std::move(top);
  }
  return absl::OkStatus();
}

std::map<std::pair<std::string, int32_t>, int64_t> Task::consumed_offsets() const {
  std::map<std::pair<std::string, int32_t>, int64_t> offsets;
  for (size_t t = 0; t < source_topics_.size(); ++t) {
    if (next_offsets_[t] >= 0) {
      const int64_t held = held_offsets_[t];
      offsets[{source_topics_[t], options_.id.partition}] =
          held >= 0 ? std::min(held, next_offsets_[t]) : next_offsets_[t];
    }
  }
  return offsets;
}

absl::StatusOr<SourceProgress> Task::QuerySourceProgress(std::string_view topic) {
  const std::string real = options_.topic_name(topic);
  auto it = source_by_topic_.find(real);
  if (it == source_by_topic_.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "task ", options_.id.ToString(), " reads no topic '", Sv(topic), "'"));
  }
  if (!options_.query_source_progress) {
    return absl::UnimplementedError("source positions are not known to this runtime");
  }
  TRIBUTARY_ASSIGN_OR_RETURN(SourceProgress progress,
                             options_.query_source_progress(real, Partition{options_.id.partition}));
  // What this task has processed is at least as far as the consumer says.
  progress.position.value = std::max(progress.position.value, next_offsets_[it->second.topic]);
  return progress;
}

void Task::CountCacheGets() {
  if (caching_stores_.empty()) return;  // none, or closed: the last counts stay
  int64_t hits = 0;
  int64_t misses = 0;
  for (const CachingStore* store : caching_stores_) {
    hits += static_cast<int64_t>(store->stats().hits);
    misses += static_cast<int64_t>(store->stats().misses);
  }
  counters_.cache_hits = hits;
  counters_.cache_misses = misses;
}

TaskCounters Task::TakeCounterDeltas() {
  CountCacheGets();
  TaskCounters delta{counters_.processed - published_.processed,
                     counters_.dead_lettered - published_.dead_lettered,
                     counters_.punctuations - published_.punctuations,
                     counters_.restored - published_.restored,
                     counters_.cache_hits - published_.cache_hits,
                     counters_.cache_misses - published_.cache_misses};
  published_ = counters_;
  return delta;
}

KeyValueStore* Task::store(std::string_view name) {
  auto it = stores_.find(name);
  return it == stores_.end() ? nullptr : it->second.get();
}

absl::Status Task::BeginRestore() {
  if (state_ != TaskState::kCreated) {
    return absl::FailedPreconditionError(absl::StrCat(
        "task ", options_.id.ToString(), ": BeginRestore in state ",
        TaskStateName(state_)));
  }
  state_ = TaskState::kRestoring;
  return absl::OkStatus();
}

absl::Status Task::Restore(std::string_view store, const WriteBatch& batch) {
  if (state_ != TaskState::kRestoring) {
    return absl::FailedPreconditionError(absl::StrCat(
        "task ", options_.id.ToString(), ": Restore in state ", TaskStateName(state_)));
  }
  auto it = raw_stores_.find(store);
  if (it == raw_stores_.end()) {
    return absl::NotFoundError(absl::StrCat("task ", options_.id.ToString(),
                                            ": no store '", Sv(store), "'"));
  }
  counters_.restored += static_cast<int64_t>(batch.size());
  return it->second->Write(batch);
}

absl::Status Task::Start() {
  if (state_ != TaskState::kCreated && state_ != TaskState::kRestoring) {
    return absl::FailedPreconditionError(absl::StrCat(
        "task ", options_.id.ToString(), ": Start in state ", TaskStateName(state_)));
  }
  for (NodeRuntime& node : nodes_) {
    if (node.processor) {
      absl::Status status = node.processor->Init(*node.context);
      if (!status.ok()) {
        return absl::Status(status.code(),
                            absl::StrCat("init of '", node.def->name, "' in task ",
                                         options_.id.ToString(), ": ", status.message()));
      }
    }
  }
  state_ = TaskState::kRunning;
  return absl::OkStatus();
}

absl::Status Task::Deliver(int node, const Record& record) {
  NodeRuntime& target = nodes_[node];
  switch (target.def->kind) {
    case Topology::NodeKind::kProcessor:
      return target.processor->Process(record);
    case Topology::NodeKind::kSink: {
      std::string dynamic_topic;
      if (target.def->topic_extractor) {
        TRIBUTARY_ASSIGN_OR_RETURN(dynamic_topic, target.def->topic_extractor(record));
      }
      const std::string& topic =
          target.def->topic_extractor ? dynamic_topic : target.sink_topic;
      std::optional<Partition> partition;
      if (target.def->partitioner) {
        TRIBUTARY_ASSIGN_OR_RETURN(int32_t count, options_.collector->PartitionCount(topic));
        if (auto chosen = target.def->partitioner(record, count)) {
          partition = Partition{*chosen};
        }
      }
      return options_.collector->Send(topic, record, partition);
    }
    case Topology::NodeKind::kSource:
      return Forward(node, record);
  }
  return absl::OkStatus();
}

absl::Status Task::Forward(int node, const Record& record) {
  for (int child : nodes_[node].children) {
    TRIBUTARY_RETURN_IF_ERROR(Deliver(child, record));
  }
  return absl::OkStatus();
}

absl::Status Task::Process(const Record& record) {
  if (state_ != TaskState::kRunning) {
    return absl::FailedPreconditionError(absl::StrCat(
        "task ", options_.id.ToString(), ": Process in state ", TaskStateName(state_)));
  }
  auto it = source_by_topic_.find(Sv(record.topic));
  if (it == source_by_topic_.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "task ", options_.id.ToString(), " reads no topic '", Sv(record.topic), "'"));
  }
  stream_time_ = std::max(stream_time_, record.timestamp);
  unfinished_ = false;
  absl::Status status = Forward(it->second.node, record);
  if (status.ok() && unfinished_) {
    // Committed up to it, not past it: it comes again (ProcessorContext::Unfinished).
    next_offsets_[it->second.topic] = record.offset.value;
    return absl::OkStatus();
  }
  unfinished_ = false;
  next_offsets_[it->second.topic] = record.offset.value + 1;
  ++counters_.processed;
  if (!status.ok()) {
    // Only bad input may be dead-lettered: an engine failure leaves work of
    // this record (forwards, store writes) in the open transaction, which
    // the stream thread aborts when the task stops.
    if (options_.error_policy == ErrorPolicy::kFail || !IsBadInput(status)) {
      return absl::Status(
          status.code(),
          absl::StrCat("task ", options_.id.ToString(), " failed on ", Sv(record.topic),
                       "[", record.partition.value, "]@", record.offset.value,
                       IsBadInput(status) ? " (bad input, processing.error.policy=fail): "
                                          : " (not bad input: nothing of it is committed): ",
                       status.message()));
    }
    TRIBUTARY_RETURN_IF_ERROR(DeadLetter(record, status));
  }
  return PunctuateStreamTime();
}

absl::Status Task::DeadLetter(const Record& record, const absl::Status& error) {
  ++counters_.dead_lettered;
  std::string message(error.message());
  std::string partition = absl::StrCat(record.partition.value);
  std::string offset = absl::StrCat(record.offset.value);
  Record dead = record;
  dead.headers.push_back({kDlqErrorHeader, message});
  dead.headers.push_back({kDlqTopicHeader, record.topic});
  dead.headers.push_back({kDlqPartitionHeader, partition});
  dead.headers.push_back({kDlqOffsetHeader, offset});
  // Outlives the send: the header is a view of it.
  const std::optional<std::string> transaction = BadInputTransaction(error);
  if (transaction) dead.headers.push_back({kDlqTransactionHeader, *transaction});
  absl::Status sent = options_.collector->Send(options_.dead_letter_topic, dead, std::nullopt);
  if (absl::IsOutOfRange(sent) && dead.value) {
    // Too large for the producer (a bad record over message.max.bytes): the
    // headers say where it is, and how large it was.
    std::string omitted = absl::StrCat(dead.value->size());
    dead.value.reset();
    dead.headers.push_back({kDlqValueOmittedHeader, omitted});
    sent = options_.collector->Send(options_.dead_letter_topic, dead, std::nullopt);
  }
  if (sent.ok() && options_.dead_letters != nullptr) {
    options_.dead_letters->Add(DeadLetterInfo{options_.wall_clock(), std::string(record.topic),
                                              record.partition, record.offset,
                                              transaction.value_or(""), std::move(message)});
  }
  return sent;
}

absl::Status Task::PunctuateStreamTime() {
  // Index loop: a punctuator may schedule more punctuations.
  for (size_t i = 0; i < schedules_.size(); ++i) {
    std::shared_ptr<Schedule> schedule = schedules_[i];
    if (schedule->cancelled || schedule->type != PunctuationType::kStreamTime) continue;
    if (schedule->next_ms < 0) {
      schedule->next_ms = stream_time_.value + schedule->interval_ms;
      continue;
    }
    if (stream_time_.value < schedule->next_ms) continue;
    schedule->next_ms = stream_time_.value + schedule->interval_ms;
    ++counters_.punctuations;
    TRIBUTARY_RETURN_IF_ERROR(schedule->punctuator(stream_time_));
  }
  return absl::OkStatus();
}

absl::Status Task::PunctuateWallClock(TimestampMs now) {
  if (state_ != TaskState::kRunning) return absl::OkStatus();
  for (size_t i = 0; i < schedules_.size(); ++i) {
    std::shared_ptr<Schedule> schedule = schedules_[i];
    if (schedule->cancelled || schedule->type != PunctuationType::kWallClockTime) {
      continue;
    }
    if (now.value < schedule->next_ms) continue;
    // Skip missed intervals instead of firing once per missed interval.
    schedule->next_ms =
        now.value + schedule->interval_ms -
        (now.value - schedule->next_ms) % schedule->interval_ms;
    ++counters_.punctuations;
    TRIBUTARY_RETURN_IF_ERROR(schedule->punctuator(now));
  }
  return absl::OkStatus();
}

absl::Status Task::PrepareCommit() {
  if (state_ == TaskState::kRunning) {
    for (NodeRuntime& node : nodes_) {
      if (node.processor) TRIBUTARY_RETURN_IF_ERROR(node.processor->PrepareCommit());
    }
  }
  for (CachingStore* store : caching_stores_) {
    TRIBUTARY_RETURN_IF_ERROR(store->FlushCache());
  }
  return absl::OkStatus();
}

absl::Status Task::FlushStores() {
  // The top layer's Flush flushes its record cache first.
  for (auto& [name, store] : stores_) {
    TRIBUTARY_RETURN_IF_ERROR(store->Flush());
  }
  return absl::OkStatus();
}

absl::Status Task::Close() {
  if (state_ == TaskState::kClosed) return absl::OkStatus();
  absl::Status first;
  if (state_ == TaskState::kRunning) {
    for (NodeRuntime& node : nodes_) {
      if (node.processor) first.Update(node.processor->Close());
    }
  }
  CountCacheGets();
  schedules_.clear();
  nodes_.clear();
  raw_stores_.clear();
  // Dirty cache entries are dropped: a clean close has run PrepareCommit.
  caching_stores_.clear();
  stores_.clear();
  changelog_writers_.clear();
  state_ = TaskState::kClosed;
  return first;
}

}  // namespace tributary::internal
