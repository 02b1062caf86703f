#include "engine/internal/stream_thread.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/internal/changelog_reader.h"
#include "engine/internal/log.h"
#include "engine/internal/rdkafka_consumer.h"
#include "engine/internal/rdkafka_producer.h"
#include "engine/internal/rdkafka_records_deleter.h"
#include "engine/internal/record_collector_impl.h"
#include "engine/internal/streams_producer.h"
#include "engine/internal/task_manager.h"

namespace tributary::internal {
namespace {

constexpr absl::Duration kCommittedTimeout = absl::Seconds(30);

TimestampMs WallClock() { return TimestampMs{absl::ToUnixMillis(absl::Now())}; }

// The thread's librdkafka clients, configured as Kafka Streams configures its
// own: the group consumer (read_committed, offsets committed only by the
// thread), the idempotent (transactional) producer and the restore consumer.
absl::StatusOr<ThreadClients> RdKafkaClients(const StreamThreadOptions& options,
                                             const std::string& name) {
  ThreadClients clients;
  std::map<std::string, std::string> consumer = {
      {"session.timeout.ms", "10000"},
      {"heartbeat.interval.ms", "1000"},
      {"auto.offset.reset", "earliest"},
      {"log_level", "4"},
  };
  for (const auto& [key, value] : options.consumer_settings) consumer[key] = value;
  // --- metrics endpoint: statistics of the group consumer and producer ---
  StatsCallback consumer_stats, producer_stats;
  if (options.kafka_stats != nullptr) {
    KafkaStats* stats = options.kafka_stats;
    consumer.emplace("statistics.interval.ms", absl::StrCat(kStatisticsIntervalMs));
    consumer_stats = [stats, name](std::string_view json) {
      absl::Status status = stats->OnConsumerStats(name, json);
      if (!status.ok()) EngineLogger()->warn("{}: {}", name, status.ToString());
    };
    producer_stats = [stats, name](std::string_view json) {
      absl::Status status = stats->OnProducerStats(name, json);
      if (!status.ok()) EngineLogger()->warn("{}: {}", name, status.ToString());
    };
  }
  // ---
  consumer["bootstrap.servers"] = options.bootstrap_servers;
  consumer["group.id"] = options.application_id;
  consumer["client.id"] = absl::StrCat(name, "-consumer");
  if (!options.application_server.empty()) {
    absl::StrAppend(&consumer["client.id"], kApplicationServerSeparator,
                    options.application_server);
  }
  consumer["enable.auto.commit"] = "false";
  consumer["enable.auto.offset.store"] = "false";
  consumer["isolation.level"] = "read_committed";
  consumer["partition.assignment.strategy"] = "range";
  TRIBUTARY_ASSIGN_OR_RETURN(clients.consumer,
                             RdKafkaConsumer::Create(consumer, std::move(consumer_stats)));

  std::map<std::string, std::string> producer = {
      {"linger.ms", "5"},
      // librdkafka's default queue holds up to 1 GiB; a task that emits much
      // at once (a huge transaction's versions) waits for room instead.
      {"queue.buffering.max.kbytes", "65536"},
      {"log_level", "4"},
  };
  for (const auto& [key, value] : options.producer_settings) producer[key] = value;
  if (producer_stats) {
    producer.emplace("statistics.interval.ms", absl::StrCat(kStatisticsIntervalMs));
  }
  producer["bootstrap.servers"] = options.bootstrap_servers;
  producer["client.id"] = absl::StrCat(name, "-producer");
  producer["partitioner"] = "murmur2_random";
  producer["enable.idempotence"] = "true";
  if (options.exactly_once) producer["transactional.id"] = TransactionalId(options);
  TRIBUTARY_ASSIGN_OR_RETURN(clients.producer,
                             RdKafkaProducer::Create(producer, std::move(producer_stats)));

  std::map<std::string, std::string> restore = {{"log_level", "4"}};
  for (const auto& [key, value] : options.restore_consumer_settings) restore[key] = value;
  restore["bootstrap.servers"] = options.bootstrap_servers;
  restore["client.id"] = absl::StrCat(name, "-restore-consumer");
  restore["group.id"] = absl::StrCat(options.application_id, "-restore");
  restore["enable.auto.commit"] = "false";
  restore["enable.partition.eof"] = "true";
  restore.emplace("fetch.wait.max.ms", "10");  // restore ends on EOF: ask often
  restore["isolation.level"] = "read_committed";
  TRIBUTARY_ASSIGN_OR_RETURN(clients.restore_consumer, RdKafkaConsumer::Create(restore));

  bool repartitions = false;
  for (const auto& sub : options.topology->subtopologies()) {
    for (const std::string& topic : sub.source_topics) {
      repartitions |= options.topology->repartition_topics().count(topic) > 0;
    }
  }
  if (repartitions) {  // repartition topics to purge
    std::map<std::string, std::string> admin = {{"log_level", "4"}};
    for (const auto& [key, value] : options.admin_settings) admin[key] = value;
    admin["bootstrap.servers"] = options.bootstrap_servers;
    admin["client.id"] = absl::StrCat(name, "-admin");
    TRIBUTARY_ASSIGN_OR_RETURN(clients.deleter, RdKafkaRecordsDeleter::Create(admin));
  }
  return clients;
}

std::vector<TopicPartition> PartitionsOf(const OffsetMap& offsets) {
  std::vector<TopicPartition> partitions;
  for (const auto& [tp, offset] : offsets) partitions.push_back(tp);
  return partitions;
}

}  // namespace

std::string TransactionalId(const StreamThreadOptions& options) {
  return absl::StrCat(options.application_id, "-", options.process_id, "-", options.index);
}

const char* ThreadStateName(ThreadState state) {
  switch (state) {
    case ThreadState::kCreated: return "CREATED";
    case ThreadState::kStarting: return "STARTING";
    case ThreadState::kPartitionsRevoked: return "PARTITIONS_REVOKED";
    case ThreadState::kPartitionsAssigned: return "PARTITIONS_ASSIGNED";
    case ThreadState::kRunning: return "RUNNING";
    case ThreadState::kPendingShutdown: return "PENDING_SHUTDOWN";
    case ThreadState::kDead: return "DEAD";
  }
  return "?";
}

// The loop: polls the group consumer, drives restoration, routes records to
// the tasks, punctuates and commits. Rebalances arrive through the listener,
// inside Poll and Close.
class StreamThread::Impl final : public RebalanceListener {
 public:
  Impl(StreamThread* owner, const StreamThreadOptions& options)
      : owner_(owner), options_(options), log_(EngineLogger()) {
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
      cache_hits_ = options_.metrics->GetCounter(m::kRecordCacheHitsTotal, tags);
      cache_misses_ = options_.metrics->GetCounter(m::kRecordCacheMissesTotal, tags);
      // Served (as 0) from the start; StreamThread::Run counts the restarts.
      options_.metrics->GetCounter(m::kThreadRestartsTotal, tags);
      options_.metrics->GetCounter(m::kThreadReplacementsTotal, tags);
      commit_latency_ = options_.metrics->GetLatency(m::kCommitLatency, tags);
      purged_ = options_.metrics->GetCounter(m::kRepartitionPurgeTotal, tags);
      purge_errors_ = options_.metrics->GetCounter(m::kRepartitionPurgeErrorsTotal, tags);
      process_latency_ = options_.metrics->GetLatency(m::kProcessBatchLatency, tags);
    }
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // Whether Run ended because the producer failed for good (fenced: the
  // broker aborted its transaction; a broken transaction state): a new
  // producer can go on from the last commit.
  bool producer_failed() const {
    return producer_ != nullptr && !producer_->fatal_error().ok();
  }
  const std::string& name() const { return name_; }
  uint64_t rebalances() const { return rebalances_; }
  // Whether the run committed anything (a transaction, or offsets).
  bool committed() const { return committed_; }

  absl::Status Run();
  void OnPartitionsAssigned(const std::vector<TopicPartition>& partitions) override;
  void OnPartitionsRevoked(const std::vector<TopicPartition>& partitions) override;
  void OnPartitionsLost(const std::vector<TopicPartition>& partitions) override;

 private:
  absl::Status Setup();
  absl::Status PollOnce();
  absl::Status RestoreStep();
  absl::Status Commit();
  absl::Status RecoverFromAbort();
  absl::Status PauseForRestore(OffsetMap rewind_to);
  absl::Status RewindToCommitted();
  // `start` with each kOffsetCommitted replaced by the partition's committed
  // offset (kOffsetBeginning where none is), asked of the consumer, which
  // waits while another producer's open transaction commits one (KIP-447).
  absl::StatusOr<OffsetMap> ResolveCommitted(OffsetMap start);
  void PublishTaskIds();
  void Publish(const TaskCounters& delta);
  // Repartition purge (as Kafka Streams' repartition.purge.interval.ms):
  // after a commit, the committed offsets of repartition partitions are kept
  // and, at most every purge interval, the records below them are deleted.
  // Asynchronous (one request in flight); a failure is logged and counted.
  void NotePurgeable(const OffsetMap& committed);
  void Purge();
  // Keeps the first error of a rebalance callback for the loop to return.
  void KeepError(const absl::Status& status) {
    if (!status.ok() && rebalance_error_.ok()) rebalance_error_ = status;
  }

  StreamThread* owner_;
  const StreamThreadOptions& options_;
  std::shared_ptr<spdlog::logger> log_;
  std::string name_;
  // Declared in dependency order: tasks go before what they send through.
  std::unique_ptr<Consumer> consumer_;
  std::unique_ptr<Consumer> restore_consumer_;
  std::unique_ptr<RecordsDeleter> deleter_;
  std::unique_ptr<StreamsProducer> producer_;
  std::unique_ptr<RecordCollectorImpl> collector_;
  std::unique_ptr<ChangelogReader> reader_;
  std::unique_ptr<TaskManager> tasks_;
  uint64_t rebalances_ = 0;
  bool assigned_ = false;  // partitions assigned, none revoked since
  absl::Time last_commit_ = absl::Now();
  absl::Time last_status_ = absl::InfinitePast();  // of PublishTaskIds
  bool uncommitted_ = false;
  absl::Status rebalance_error_;
  bool committed_ = false;
  // While tasks restore, the assigned partitions are paused; once all run,
  // they restart from these offsets (nothing was processed meanwhile).
  OffsetMap rewind_to_;
  std::set<std::string> repartition_topics_;  // real names
  OffsetMap purgeable_;  // committed, not purged yet
  absl::Time last_purge_ = absl::Now();

  Counter* processed_ = nullptr;
  Counter* commits_ = nullptr;
  Counter* aborts_ = nullptr;
  Counter* punctuations_ = nullptr;
  Counter* restored_ = nullptr;
  Counter* dead_lettered_ = nullptr;
  Counter* cache_hits_ = nullptr;
  Counter* cache_misses_ = nullptr;
  LatencyRecorder* commit_latency_ = nullptr;
  LatencyRecorder* process_latency_ = nullptr;
  Counter* purged_ = nullptr;
  Counter* purge_errors_ = nullptr;
};

absl::Status StreamThread::Impl::Setup() {
  TRIBUTARY_ASSIGN_OR_RETURN(ThreadClients clients, options_.clients
                                                        ? options_.clients(options_, name_)
                                                        : RdKafkaClients(options_, name_));
  consumer_ = std::move(clients.consumer);
  restore_consumer_ = std::move(clients.restore_consumer);
  deleter_ = std::move(clients.deleter);
  for (const auto& [topic, partitions] : options_.topology->repartition_topics()) {
    repartition_topics_.insert(options_.topic_name(topic));
  }
  producer_ = std::make_unique<StreamsProducer>(
      std::move(clients.producer), options_.exactly_once ? TransactionalId(options_) : "",
      name_);
  collector_ = std::make_unique<RecordCollectorImpl>(producer_.get());
  reader_ = std::make_unique<ChangelogReader>(restore_consumer_.get(), name_,
                                              options_.restore_records_per_poll);
  tasks_ = std::make_unique<TaskManager>(
      options_, name_,
      TaskManager::Clients{consumer_.get(), restore_consumer_.get(), &producer_->producer(),
                           collector_.get()},
      reader_.get(), [this](const TaskCounters& delta) { Publish(delta); });
  TRIBUTARY_RETURN_IF_ERROR(producer_->Init());
  std::set<std::string> topics;
  for (const auto& sub : options_.topology->subtopologies()) {
    for (const std::string& topic : sub.source_topics) topics.insert(options_.topic_name(topic));
  }
  return consumer_->Subscribe({topics.begin(), topics.end()}, this);
}

void StreamThread::Impl::OnPartitionsAssigned(const std::vector<TopicPartition>& partitions) {
  ++rebalances_;
  assigned_ = true;
  owner_->SetState(ThreadState::kPartitionsAssigned);
  absl::Status status = tasks_->HandleAssignment(partitions);
  if (status.ok() && tasks_->restoring()) {
    OffsetMap committed;
    for (const TopicPartition& tp : partitions) committed[tp] = kOffsetCommitted;
    status = PauseForRestore(std::move(committed));
  }
  KeepError(status);
  if (!tasks_->restoring()) owner_->SetState(ThreadState::kRunning);
  PublishTaskIds();
}

void StreamThread::Impl::OnPartitionsRevoked(const std::vector<TopicPartition>& partitions) {
  (void)partitions;  // eager protocol: everything
  ++rebalances_;
  assigned_ = false;
  owner_->SetState(ThreadState::kPartitionsRevoked);  // not while shutting down
  // Commit what was processed, then close the tasks cleanly so that they can
  // move (restoring ones keep what they restored).
  absl::Status status = Commit();
  if (absl::IsAborted(status)) {
    (void)tasks_->CloseAll(/*clean=*/false);
  } else {
    KeepError(status);
    KeepError(tasks_->CloseAll(/*clean=*/status.ok()));
  }
  if (!rewind_to_.empty()) {
    KeepError(consumer_->Resume(PartitionsOf(rewind_to_)));
    rewind_to_.clear();
  }
  PublishTaskIds();
}

void StreamThread::Impl::OnPartitionsLost(const std::vector<TopicPartition>& partitions) {
  (void)partitions;  // eager protocol: everything
  ++rebalances_;
  assigned_ = false;
  owner_->SetState(ThreadState::kPartitionsRevoked);
  // A zombie: another member owns the partitions and reads them from their
  // committed offsets. Committing here would make what this thread processed
  // since then visible next to the new owner's work (under EOS v2 a commit
  // after the session timed out carries no generation the broker could
  // refuse), so the open transaction is aborted and the tasks are closed
  // unclean (their local state is rebuilt from the changelogs).
  log_->warn("{}: lost its partitions (session timed out); aborting what it had not committed",
             name_);
  if (options_.exactly_once) KeepError(producer_->AbortTransaction());
  uncommitted_ = false;
  KeepError(tasks_->CloseAll(/*clean=*/false));
  if (!rewind_to_.empty()) {
    KeepError(consumer_->Resume(PartitionsOf(rewind_to_)));
    rewind_to_.clear();
  }
  PublishTaskIds();
}

absl::Status StreamThread::Impl::PauseForRestore(OffsetMap rewind_to) {
  rewind_to_ = std::move(rewind_to);
  return consumer_->Pause(PartitionsOf(rewind_to_));
}

void StreamThread::Impl::PublishTaskIds() {
  std::lock_guard<std::mutex> lock(owner_->tasks_mutex_);
  owner_->task_ids_ = tasks_ ? tasks_->ids() : std::vector<TaskId>{};
  owner_->readiness_.assigned = assigned_;
  owner_->readiness_.restoring = tasks_ ? tasks_->restoring_ids() : std::vector<TaskId>{};
  owner_->readiness_.rebalances = owner_->rebalances_total_ + rebalances_;
  owner_->name_ = name_;
  owner_->task_status_ = tasks_ ? tasks_->Status() : std::vector<TaskStatus>{};
  last_status_ = absl::Now();
}

void StreamThread::Impl::Publish(const TaskCounters& delta) {
  if (dead_lettered_ != nullptr) dead_lettered_->Add(delta.dead_lettered);
  if (cache_hits_ != nullptr) cache_hits_->Add(delta.cache_hits);
  if (cache_misses_ != nullptr) cache_misses_->Add(delta.cache_misses);
  if (punctuations_ != nullptr) punctuations_->Add(delta.punctuations);
  if (restored_ != nullptr) restored_->Add(delta.restored);
}

absl::Status StreamThread::Impl::Commit() {
  TRIBUTARY_RETURN_IF_ERROR(producer_->fatal_error());  // a zombie commits nothing
  tasks_->PublishCounters();
  PublishTaskIds();  // the status page's figures as of this commit
  // At-least-once: what the tasks sent is acknowledged before their
  // processors' PrepareCommit (see Processor::PrepareCommit).
  if (!options_.exactly_once && uncommitted_) TRIBUTARY_RETURN_IF_ERROR(producer_->Flush());
  // Cached store writes become store writes and changelog records (in the
  // open transaction under exactly-once) before anything is committed; done
  // even with nothing processed, since punctuators write too.
  TRIBUTARY_RETURN_IF_ERROR(tasks_->PrepareCommit());
  if (!uncommitted_ && !producer_->in_transaction()) {
    last_commit_ = absl::Now();
    return absl::OkStatus();
  }
  absl::Time start = absl::Now();
  const OffsetMap offsets = tasks_->TakeCommitOffsets();
  absl::Status status;
  if (options_.exactly_once) {
    status = producer_->CommitTransaction(offsets, *consumer_);
  } else {
    status = producer_->Flush();
    if (status.ok()) status = tasks_->WriteCheckpoints();
    if (status.ok() && !offsets.empty()) status = consumer_->CommitOffsets(offsets);
  }
  if (status.ok()) {
    uncommitted_ = false;
    committed_ = true;
    NotePurgeable(offsets);
    if (commits_ != nullptr) commits_->Add(1);
    if (commit_latency_ != nullptr) commit_latency_->Record(absl::Now() - start);
  } else if (absl::IsAborted(status) && aborts_ != nullptr) {
    aborts_->Add(1);
  }
  last_commit_ = absl::Now();
  return status;
}

void StreamThread::Impl::NotePurgeable(const OffsetMap& committed) {
  if (deleter_ == nullptr) return;
  for (const auto& [tp, offset] : committed) {
    if (repartition_topics_.count(tp.first) > 0) purgeable_[tp] = offset;
  }
}

void StreamThread::Impl::Purge() {
  if (deleter_ == nullptr) return;
  for (const RecordsDeleter::Result& result : deleter_->TakeResults()) {
    if (result.status.ok()) {
      if (purged_ != nullptr) purged_->Add(1);
      log_->debug("{}: purged {}[{}] below {}", name_, result.partition.first,
                  result.partition.second, result.low_watermark);
    } else {
      if (purge_errors_ != nullptr) purge_errors_->Add(1);
      log_->warn("{}: repartition purge failed (tried again at the next one): {}", name_,
                 result.status.ToString());
    }
  }
  if (purgeable_.empty() || absl::Now() - last_purge_ < options_.repartition_purge_interval) {
    return;
  }
  // Only offsets committed (the transaction or the offset commit succeeded):
  // a restart reads from them, never from below.
  if (deleter_->Start(purgeable_)) {
    purgeable_.clear();
    last_purge_ = absl::Now();
  }
}

absl::Status StreamThread::Impl::RecoverFromAbort() {
  // The aborted transaction's outputs, changelog writes and offsets are gone:
  // rebuild every task from its changelog and rewind to the committed offsets.
  TRIBUTARY_RETURN_IF_ERROR(tasks_->CloseAll(/*clean=*/false));
  TRIBUTARY_ASSIGN_OR_RETURN(std::vector<TopicPartition> assignment, consumer_->Assignment());
  if (assignment.empty()) return absl::OkStatus();
  OffsetMap committed;
  for (const TopicPartition& tp : assignment) committed[tp] = kOffsetCommitted;
  TRIBUTARY_ASSIGN_OR_RETURN(OffsetMap start, ResolveCommitted(std::move(committed)));
  // Explicit offsets reposition and drop prefetched data.
  TRIBUTARY_RETURN_IF_ERROR(consumer_->Assign(start));
  TRIBUTARY_RETURN_IF_ERROR(tasks_->HandleAssignment(assignment));
  if (tasks_->restoring()) TRIBUTARY_RETURN_IF_ERROR(PauseForRestore(std::move(start)));
  PublishTaskIds();
  uncommitted_ = false;
  return absl::OkStatus();
}

// Assigning partitions again "at the committed offset" (kOffsetCommitted)
// would let librdkafka look the offsets up, and librdkafka 2.0.2 gets that
// wrong while the lookup of the assignment before is still waiting for a
// partition whose offsets another producer's open transaction commits (an
// instance killed inside a transaction, until its transaction times out):
// that lookup's late answer is applied to the new assignment, and the
// partitions it found unstable start at auto.offset.reset, i.e. are read
// again from the beginning (debug=cgrp: "Adding ... back to pending list
// because on-going transaction is blocking offset retrieval", then "Starting
// pending assigned partition ... at offset INVALID"; the chaos test, seed 7,
// dead-lettered poison twice). So every re-assignment here is at explicit
// offsets the thread asked for itself.
absl::StatusOr<OffsetMap> StreamThread::Impl::ResolveCommitted(OffsetMap start) {
  std::vector<TopicPartition> ask;
  for (const auto& [tp, offset] : start) {
    if (offset == kOffsetCommitted) ask.push_back(tp);
  }
  if (ask.empty()) return start;
  TRIBUTARY_ASSIGN_OR_RETURN(OffsetMap committed, consumer_->Committed(ask, kCommittedTimeout));
  for (const TopicPartition& tp : ask) {
    auto it = committed.find(tp);
    start[tp] = it != committed.end() ? it->second : kOffsetBeginning;
  }
  return start;
}

absl::Status StreamThread::Impl::RewindToCommitted() {
  TRIBUTARY_ASSIGN_OR_RETURN(std::vector<TopicPartition> assignment, consumer_->Assignment());
  if (assignment.empty()) return absl::OkStatus();
  OffsetMap start;
  for (const TopicPartition& tp : assignment) start[tp] = kOffsetCommitted;
  TRIBUTARY_ASSIGN_OR_RETURN(start, ResolveCommitted(std::move(start)));
  return consumer_->Assign(start);
}

absl::Status StreamThread::Impl::RestoreStep() {
  TRIBUTARY_RETURN_IF_ERROR(reader_->Restore());
  TRIBUTARY_RETURN_IF_ERROR(tasks_->StartRestoredTasks());
  PublishTaskIds();  // tasks that finished restoring are ready
  if (tasks_->restoring()) return absl::OkStatus();
  if (!rewind_to_.empty()) {
    TRIBUTARY_ASSIGN_OR_RETURN(OffsetMap start, ResolveCommitted(rewind_to_));
    TRIBUTARY_RETURN_IF_ERROR(consumer_->Resume(PartitionsOf(rewind_to_)));
    TRIBUTARY_RETURN_IF_ERROR(consumer_->Assign(start));
    rewind_to_.clear();
  }
  owner_->SetState(ThreadState::kRunning);
  return absl::OkStatus();
}

absl::Status StreamThread::Impl::PollOnce() {
  if (owner_->queries_waiting_.load(std::memory_order_acquire)) owner_->ServeQueries(tasks_.get());
  absl::Time batch_start = absl::Now();
  producer_->producer().Poll();  // delivery reports, statistics
  const uint64_t rebalances_before = rebalances_;
  // While restoring, the group consumer is polled only to stay in the group.
  absl::StatusOr<absl::Span<const PolledRecord>> polled = consumer_->Poll(
      tasks_->restoring() ? absl::ZeroDuration() : options_.poll_timeout,
      options_.max_poll_records);
  TRIBUTARY_RETURN_IF_ERROR(std::exchange(rebalance_error_, absl::OkStatus()));
  TRIBUTARY_RETURN_IF_ERROR(polled.status());
  absl::Span<const PolledRecord> records = *polled;
  if (tasks_->restoring()) {
    // Nothing is processed before every task runs; the paused partitions are
    // then read again from their committed offsets.
    records = {};
    TRIBUTARY_RETURN_IF_ERROR(RestoreStep());
  } else if (rebalances_ != rebalances_before && !records.empty()) {
    // A rebalance served inside this call may have put records fetched before
    // it (which the new tasks will read again from the committed offsets)
    // next to records fetched after it. Drop the whole batch and restart every
    // assigned partition from its committed offset: nothing after the
    // assignment was processed, so that position is exact.
    records = {};
    TRIBUTARY_RETURN_IF_ERROR(RewindToCommitted());
  }
  int64_t processed = 0;
  // Partitions whose record a task left unfinished (ProcessorContext::
  // Unfinished): at that record; later ones of them wait for the seek.
  OffsetMap unfinished;
  for (const PolledRecord& record : records) {
    if (record.end_of_partition) continue;
    Task* task = tasks_->Route(record);
    if (task == nullptr) continue;  // revoked meanwhile; the new owner reads it
    if (!unfinished.empty() &&
        unfinished.count({std::string(record.record.topic), record.record.partition.value})) {
      continue;
    }
    TRIBUTARY_RETURN_IF_ERROR(task->Process(record.record));
    uncommitted_ = true;
    if (task->unfinished()) {
      unfinished[{std::string(record.record.topic), record.record.partition.value}] =
          record.record.offset.value;
      continue;
    }
    ++processed;
  }
  if (processed > 0) {
    if (processed_ != nullptr) processed_->Add(processed);
    if (process_latency_ != nullptr) process_latency_->Record(absl::Now() - batch_start);
  }
  TRIBUTARY_RETURN_IF_ERROR(tasks_->Punctuate(WallClock()));
  // The status page's task figures, at most a second old (commits may be
  // 30 s apart under at-least-once).
  if (absl::Now() - last_status_ >= absl::Seconds(1)) PublishTaskIds();
  if (!unfinished.empty() || tasks_->commit_requested() ||
      absl::Now() - last_commit_ >= options_.commit_interval) {
    absl::Status status = Commit();
    if (absl::IsAborted(status)) return RecoverFromAbort();  // rewinds every partition
    TRIBUTARY_RETURN_IF_ERROR(status);
  }
  // The unfinished records come again, after the commit of the work so far.
  if (!unfinished.empty()) TRIBUTARY_RETURN_IF_ERROR(consumer_->Seek(unfinished));
  Purge();
  return absl::OkStatus();
}

absl::Status StreamThread::Impl::Run() {
  TRIBUTARY_RETURN_IF_ERROR(Setup());
  {
    absl::MutexLock lock(&owner_->queries_mu_);
    owner_->wake_ = consumer_.get();
  }
  // kStarting until the first assignment (OnPartitionsAssigned).
  log_->info("{}: started", name_);
  absl::Status status;
  while (status.ok() && !owner_->shutdown_requested_) {
    status = PollOnce();
  }
  owner_->SetState(ThreadState::kPendingShutdown);
  if (status.ok()) {
    status = Commit();
    status.Update(tasks_->CloseAll(/*clean=*/status.ok()));
  } else {
    log_->error("{}: stopping: {}", name_, status.ToString());
    if (options_.exactly_once) (void)producer_->AbortTransaction();
    (void)tasks_->CloseAll(/*clean=*/false);
    uncommitted_ = false;
  }
  {
    absl::MutexLock lock(&owner_->queries_mu_);
    owner_->wake_ = nullptr;
  }
  consumer_->Close();
  absl::Status late = std::exchange(rebalance_error_, absl::OkStatus());
  if (status.ok()) status = late;
  (void)producer_->producer().Flush();
  PublishTaskIds();
  return status;
}

StreamThread::StreamThread(StreamThreadOptions options) : options_(std::move(options)) {}

StreamThread::~StreamThread() {
  RequestShutdown();
  if (thread_.joinable()) thread_.join();
}

void StreamThread::Start() {
  SetState(ThreadState::kStarting);
  thread_ = std::thread([this] { Run(); });
}

void StreamThread::Run() {
  // A failed producer (after a broker outage longer than
  // transaction.timeout.ms the broker has aborted the open transaction and
  // fenced its epoch) ends the run; as Kafka Streams does, the thread starts
  // again with new clients: a new producer (init_transactions), a new group
  // member, tasks restored from their changelogs, input from the committed
  // offsets. Bounded: more than kQuickRestarts in a row, each run shorter
  // than kQuickRun, and the error goes to the uncaught-error handler.
  constexpr int kQuickRestarts = 5;
  constexpr absl::Duration kQuickRun = absl::Minutes(5);
  int quick = 0;
  // Replacements (kReplaceThread) in a row: runs that failed before their
  // first commit since the last run that committed.
  int replaced = 0;
  while (true) {
    impl_ = std::make_unique<Impl>(this, options_);
    const absl::Time started = absl::Now();
    result_ = impl_->Run();
    const bool producer_failed = impl_->producer_failed();
    const bool committed = impl_->committed();
    const std::string name = impl_->name();
    rebalances_total_ += impl_->rebalances();
    impl_.reset();
    if (result_.ok() || shutdown_requested_) break;
    if (producer_failed) {
      quick = absl::Now() - started < kQuickRun ? quick + 1 : 1;
      if (quick <= kQuickRestarts) {
        EngineLogger()->warn("{}: starting again with new clients after its producer failed "
                             "({}); its tasks restore and go on from the last commit",
                             name, result_.ToString());
        if (options_.metrics != nullptr) {
          options_.metrics
              ->GetCounter(metric_names::kThreadRestartsTotal,
                           {{std::string(metric_names::kThreadTag), name}})
              ->Add(1);
        }
        SetState(ThreadState::kStarting);
        continue;
      }
      EngineLogger()->error("{}: the producer failed {} times in a row, each run shorter than "
                            "{}",
                            name, quick, absl::FormatDuration(kQuickRun));
    }
    // --- Lifecycle: the uncaught-error handler ---
    StreamThreadErrorResponse response = options_.on_uncaught_error
                                             ? options_.on_uncaught_error(result_)
                                             : StreamThreadErrorResponse::kShutdownClient;
    if (response == StreamThreadErrorResponse::kReplaceThread) {
      replaced = committed ? 1 : replaced + 1;
      if (replaced <= options_.max_replacements_in_a_row) {
        EngineLogger()->warn("{}: replaced by a new stream thread ({} of at most {} in a row "
                             "without a commit): new clients, a new group member, its tasks "
                             "restored from the changelogs, input from the last commit",
                             name, replaced, options_.max_replacements_in_a_row);
        if (options_.metrics != nullptr) {
          options_.metrics
              ->GetCounter(metric_names::kThreadReplacementsTotal,
                           {{std::string(metric_names::kThreadTag), name}})
              ->Add(1);
        }
        SetState(ThreadState::kStarting);
        continue;
      }
      EngineLogger()->error("{}: not replaced: {} replacements in a row failed before their "
                            "first commit; the instance shuts down",
                            name, replaced - 1);
      response = StreamThreadErrorResponse::kShutdownClient;
    }
    error_response_ = response;
    break;
  }
  SetState(ThreadState::kDead);
  ServeQueries(nullptr);  // those queued before kDead; RunQuery refuses later ones
}

void StreamThread::SetState(ThreadState next) {
  const ThreadState old = state_.load();
  if (old == next || old == ThreadState::kDead) return;
  // From kPendingShutdown only to kDead or, starting over, to kStarting; a
  // revocation inside the consumer's close at shutdown changes nothing.
  if (old == ThreadState::kPendingShutdown && next != ThreadState::kDead &&
      next != ThreadState::kStarting) {
    return;
  }
  state_.store(next);
  if (options_.on_state_change) options_.on_state_change(options_.index, old, next);
}

absl::Status StreamThread::Join() {
  if (thread_.joinable()) thread_.join();
  return result_;
}

std::vector<TaskId> StreamThread::task_ids() const {
  std::lock_guard<std::mutex> lock(tasks_mutex_);
  return task_ids_;
}

struct StreamThread::PendingQuery {
  TaskId task;
  const QuerySpec* query = nullptr;
  std::string key;
  absl::Mutex mu;
  bool done ABSL_GUARDED_BY(mu) = false;
  absl::StatusOr<std::optional<std::string>> answer ABSL_GUARDED_BY(mu);
};

absl::StatusOr<std::optional<std::string>> StreamThread::RunQuery(TaskId task,
                                                                  const QuerySpec& query,
                                                                  std::string key,
                                                                  absl::Duration timeout) {
  // Shared: a query that times out here may still be answered by the thread.
  auto pending = std::make_shared<PendingQuery>();
  pending->task = task;
  pending->query = &query;
  pending->key = std::move(key);
  {
    absl::MutexLock lock(&queries_mu_);
    const ThreadState state = state_.load();
    if (state == ThreadState::kDead || state == ThreadState::kPendingShutdown) {
      return absl::UnavailableError(
          absl::StrCat("task ", task.ToString(), ": its stream thread is shutting down"));
    }
    queries_.push_back(pending);
    queries_waiting_.store(true, std::memory_order_release);
    if (wake_ != nullptr) wake_->Wake();  // a poll waits up to poll.ms for records
  }
  absl::MutexLock lock(&pending->mu);
  if (!pending->mu.AwaitWithTimeout(absl::Condition(&pending->done), timeout)) {
    return absl::UnavailableError(
        absl::StrCat("task ", task.ToString(),
                     ": its stream thread did not get to the query within ",
                     absl::FormatDuration(timeout)));
  }
  return pending->answer;
}

void StreamThread::ServeQueries(TaskManager* tasks) {
  std::vector<std::shared_ptr<PendingQuery>> queued;
  {
    absl::MutexLock lock(&queries_mu_);
    queued.swap(queries_);
    queries_waiting_.store(false, std::memory_order_release);
  }
  for (const std::shared_ptr<PendingQuery>& pending : queued) {
    absl::StatusOr<std::optional<std::string>> answer;
    Task* task = tasks != nullptr ? tasks->Find(pending->task) : nullptr;
    if (tasks == nullptr) {
      answer = absl::UnavailableError(
          absl::StrCat("task ", pending->task.ToString(), ": its stream thread is not running"));
    } else if (task == nullptr) {
      answer = absl::NotFoundError(
          absl::StrCat("task ", pending->task.ToString(), " is not owned by this thread"));
    } else if (task->state() != TaskState::kRunning) {
      answer = absl::UnavailableError(
          absl::StrCat("task ", pending->task.ToString(), " is ",
                       absl::AsciiStrToLower(TaskStateName(task->state()))));
    } else {
      answer = pending->query->run(
          [task](std::string_view store) { return task->store(store); }, pending->key);
    }
    absl::MutexLock lock(&pending->mu);
    pending->answer = std::move(answer);
    pending->done = true;
  }
}

ThreadStatus StreamThread::status() const {
  ThreadStatus status;
  status.state = ThreadStateName(state());
  std::lock_guard<std::mutex> lock(tasks_mutex_);
  status.name = name_;
  status.tasks = task_status_;
  return status;
}

StreamThread::Readiness StreamThread::readiness() const {
  std::lock_guard<std::mutex> lock(tasks_mutex_);
  return readiness_;
}

}  // namespace tributary::internal
