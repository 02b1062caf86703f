#include "engine/internal/changelog_reader.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/internal/log.h"

namespace tributary::internal {
namespace {

constexpr absl::Duration kWatermarkTimeout = absl::Seconds(60);
constexpr absl::Duration kPollTimeout = absl::Milliseconds(10);
constexpr absl::Duration kProgressLogInterval = absl::Seconds(10);
// A restore has no deadline (a big store may take hours); one that reads
// nothing for this long is reported at each progress line.
constexpr absl::Duration kStalledAfter = absl::Seconds(60);

}  // namespace

ChangelogReader::ChangelogReader(Consumer* restore_consumer, std::string name,
                                 size_t records_per_step)
    : consumer_(restore_consumer),
      name_(std::move(name)),
      records_per_step_(std::max<size_t>(1, records_per_step)),
      log_(EngineLogger()) {}

absl::Status ChangelogReader::Register(Task& task, const CheckpointFile::Offsets& checkpoint) {
  TaskState state;
  state.started = absl::Now();
  state.progressed = state.started;
  std::map<TopicPartition, PartitionState> added;
  for (const Task::Changelog& changelog : task.changelogs()) {
    const TopicPartition tp{changelog.topic, changelog.partition.value};
    TRIBUTARY_ASSIGN_OR_RETURN(auto watermarks, consumer_->Watermarks(tp, kWatermarkTimeout));
    const auto [low, high] = watermarks;
    int64_t start = kOffsetBeginning;
    auto it = checkpoint.find({changelog.topic, changelog.partition.value});
    if (it != checkpoint.end() && it->second >= low && it->second <= high) start = it->second;
    const int64_t from = start == kOffsetBeginning ? low : start;
    if (from >= high) {
      state.restored_to[{tp.first, tp.second}] = from;  // nothing to restore
      continue;
    }
    PartitionState& partition = added[tp];
    partition.task = &task;
    partition.store = changelog.store;
    partition.end = high;
    partition.next = from;
    state.to_restore += high - from;
  }
  if (!added.empty()) {
    TRIBUTARY_RETURN_IF_ERROR(task.BeginRestore());
    log_->info("{}: task {}: restoring up to {} records from {} changelog partition(s)", name_,
               task.id().ToString(), state.to_restore, added.size());
    partitions_.merge(added);
    reassign_ = true;
  }
  tasks_[task.id()] = std::move(state);
  return absl::OkStatus();
}

bool ChangelogReader::IsRestored(TaskId id) const {
  for (const auto& [tp, partition] : partitions_) {
    if (partition.task->id() == id && !partition.done) return false;
  }
  return true;
}

std::pair<int64_t, int64_t> ChangelogReader::Progress(TaskId id) const {
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return {0, 0};
  return {it->second.restored, it->second.to_restore};
}

CheckpointFile::Offsets ChangelogReader::Unregister(TaskId id) {
  CheckpointFile::Offsets restored_to;
  auto task = tasks_.find(id);
  if (task != tasks_.end()) {
    restored_to = std::move(task->second.restored_to);
    tasks_.erase(task);
  }
  for (auto it = partitions_.begin(); it != partitions_.end();) {
    if (it->second.task->id() != id) {
      ++it;
      continue;
    }
    // What is still batched was never written: the store holds records up
    // to `next` minus the batch. Batches are applied within each step, so
    // none is pending here.
    restored_to[{it->first.first, it->first.second}] = it->second.next;
    if (!it->second.done) reassign_ = true;
    it = partitions_.erase(it);
  }
  return restored_to;
}

absl::Status ChangelogReader::Apply(PartitionState& partition) {
  if (partition.batch.empty()) return absl::OkStatus();
  const auto count = static_cast<int64_t>(partition.batch.size());
  absl::Status status = partition.task->Restore(partition.store, partition.batch);
  partition.batch.Clear();
  TaskState& task = tasks_[partition.task->id()];
  task.restored += count;
  task.progressed = absl::Now();
  return status;
}

absl::Status ChangelogReader::Finish(const TopicPartition& tp, PartitionState& partition) {
  TRIBUTARY_RETURN_IF_ERROR(Apply(partition));
  partition.done = true;
  reassign_ = true;
  const TaskId id = partition.task->id();
  if (!IsRestored(id)) return absl::OkStatus();
  const TaskState& task = tasks_[id];
  log_->info("{}: task {}: restored {} records (of up to {}) in {}, last from {}[{}]", name_,
             id.ToString(), task.restored, task.to_restore,
             absl::FormatDuration(absl::Now() - task.started), tp.first, tp.second);
  return absl::OkStatus();
}

void ChangelogReader::LogProgress(bool force) {
  if (!force && absl::Now() - last_progress_log_ < kProgressLogInterval) return;
  last_progress_log_ = absl::Now();
  const absl::Time now = absl::Now();
  for (const auto& [id, task] : tasks_) {
    if (IsRestored(id)) continue;
    if (now - task.progressed >= kStalledAfter) {
      log_->warn("{}: task {}: restored {} of up to {} records; nothing read for {} (is the "
                 "broker reachable?); still trying",
                 name_, id.ToString(), task.restored, task.to_restore,
                 absl::FormatDuration(absl::Trunc(now - task.progressed, absl::Seconds(1))));
      continue;
    }
    log_->info("{}: task {}: restored {} of up to {} records ({}%) in {}", name_,
               id.ToString(), task.restored, task.to_restore,
               task.to_restore > 0 ? 100 * task.restored / task.to_restore : 100,
               absl::FormatDuration(absl::Trunc(now - task.started, absl::Seconds(1))));
  }
}

absl::Status ChangelogReader::Restore() {
  OffsetMap open;
  for (const auto& [tp, partition] : partitions_) {
    if (!partition.done) open[tp] = partition.next;
  }
  if (open.empty()) {
    if (reassign_) TRIBUTARY_RETURN_IF_ERROR(consumer_->Assign({}));
    reassign_ = false;
    return absl::OkStatus();
  }
  if (reassign_) {
    // Repositions every open partition where its store stands: records
    // fetched for it before are dropped, so none is applied twice.
    TRIBUTARY_RETURN_IF_ERROR(consumer_->Assign(open));
    reassign_ = false;
    last_progress_log_ = absl::Now();
  }
  TRIBUTARY_ASSIGN_OR_RETURN(absl::Span<const PolledRecord> records,
                             consumer_->Poll(kPollTimeout, static_cast<int>(records_per_step_)));
  for (const PolledRecord& polled : records) {
    const Record& record = polled.record;
    auto it = partitions_.find(TopicPartition{std::string(record.topic), record.partition.value});
    if (it == partitions_.end() || it->second.done) continue;
    PartitionState& partition = it->second;
    if (polled.end_of_partition) {
      TRIBUTARY_RETURN_IF_ERROR(Finish(it->first, partition));
      continue;
    }
    std::string_view key = record.key.value_or(std::string_view());
    if (record.value) {
      partition.batch.Put(key, *record.value);
    } else {
      partition.batch.Delete(key);
    }
    partition.next = record.offset.value + 1;
    if (partition.next >= partition.end) TRIBUTARY_RETURN_IF_ERROR(Finish(it->first, partition));
  }
  for (auto& [tp, partition] : partitions_) {
    if (partition.done) continue;
    TRIBUTARY_RETURN_IF_ERROR(Apply(partition));
    // Under exactly-once a changelog ends with a commit marker, so the last
    // record's offset + 1 stays below the end offset: compare positions.
    std::optional<int64_t> position = consumer_->Position(tp);
    if (position && *position > partition.next) partition.next = *position;
    if (partition.next >= partition.end) TRIBUTARY_RETURN_IF_ERROR(Finish(tp, partition));
  }
  LogProgress(/*force=*/false);
  return absl::OkStatus();
}

}  // namespace tributary::internal
