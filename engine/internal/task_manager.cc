#include "engine/internal/task_manager.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <system_error>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/internal/log.h"
#include "state/checkpoint.h"
#include "state/in_memory_store.h"

namespace tributary::internal {
namespace {

TimestampMs WallClock() { return TimestampMs{absl::ToUnixMillis(absl::Now())}; }

}  // namespace

TaskManager::TaskManager(const StreamThreadOptions& options, std::string name, Clients clients,
                         ChangelogReader* reader,
                         std::function<void(const TaskCounters&)> publish)
    : options_(options),
      name_(std::move(name)),
      clients_(clients),
      reader_(reader),
      publish_(std::move(publish)),
      log_(EngineLogger()) {
  for (const auto& sub : options_.topology->subtopologies()) {
    for (const std::string& topic : sub.source_topics) {
      subtopology_of_topic_[options_.topic_name(topic)] = sub.id;
    }
  }
}

TaskManager::~TaskManager() = default;

std::string TaskManager::TaskDir(TaskId id) const {
  return absl::StrCat(options_.state_dir, "/", id.ToString());
}

std::vector<TaskId> TaskManager::ids() const {
  std::vector<TaskId> ids;
  for (const auto& [id, task] : tasks_) ids.push_back(id);
  return ids;
}

std::vector<TaskId> TaskManager::restoring_ids() const {
  std::vector<TaskId> ids;
  for (const auto& [id, task] : tasks_) {
    if (task->state() != TaskState::kRunning) ids.push_back(id);
  }
  return ids;
}

std::vector<TaskStatus> TaskManager::Status() const {
  std::vector<TaskStatus> status;
  for (const auto& [id, task] : tasks_) {
    TaskStatus& one = status.emplace_back();
    one.id = id;
    one.state = TaskStateName(task->state());
    one.processed = task->counters().processed;
    // A started task is unregistered from the reader: what it restored is
    // in its counters.
    std::tie(one.restored, one.to_restore) = reader_->Progress(id);
    if (task->state() == TaskState::kRunning) {
      one.restored = task->counters().restored;
      one.to_restore = one.restored;
    }
  }
  return status;
}

bool TaskManager::restoring() const {
  return std::any_of(tasks_.begin(), tasks_.end(), [](const auto& entry) {
    return entry.second->state() != TaskState::kRunning;
  });
}

absl::Status TaskManager::HandleAssignment(const std::vector<TopicPartition>& assigned) {
  std::set<TaskId> wanted;
  for (const auto& [topic, partition] : assigned) {
    auto it = subtopology_of_topic_.find(topic);
    if (it == subtopology_of_topic_.end()) continue;
    wanted.insert(TaskId{it->second, partition});
  }
  // Split the thread's record cache among the stores of all its tasks. Under
  // the eager protocol every assignment recreates all tasks, so the split
  // holds for each of them.
  double weights = 0;
  for (const auto& [id, task] : tasks_) wanted.insert(id);
  for (TaskId id : wanted) {
    for (const std::string& name : options_.topology->subtopologies()[id.subtopology].stores) {
      weights += std::max(0.0, options_.topology->store(name)->cache_weight);
    }
  }
  cache_bytes_per_weight_ = weights > 0 ? static_cast<double>(options_.cache_bytes) / weights : 0;
  for (TaskId id : wanted) {
    if (tasks_.count(id) == 0) TRIBUTARY_RETURN_IF_ERROR(CreateTask(id));
  }
  if (options_.standby != nullptr) options_.standby->Kick();  // the group changed
  return StartRestoredTasks();
}

absl::Status TaskManager::CreateTask(TaskId id) {
  // In use from here on, released by CloseAll, or below if it fails.
  if (options_.state_directory != nullptr) options_.state_directory->Claim(id);
  // A standby of it here hands its store and checkpoint over: the restore
  // reads only the changelogs' tail.
  if (options_.standby != nullptr) options_.standby->TakeOver(id);
  absl::Status created = OpenTask(id);
  if (!created.ok() && options_.state_directory != nullptr) {
    options_.state_directory->Release(id);
  }
  return created;
}

absl::Status TaskManager::OpenTask(TaskId id) {
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
    return absl::Status(ec == std::errc::no_space_on_device ? absl::StatusCode::kResourceExhausted
                                                            : absl::StatusCode::kInternal,
                        absl::StrCat("cannot create task dir ", dir, ": ", ec.message()));
  }

  TaskOptions task_options;
  task_options.id = id;
  task_options.topology = options_.topology;
  task_options.application_id = options_.application_id;
  task_options.topic_name = options_.topic_name;
  task_options.collector = clients_.collector;
  task_options.wall_clock = &WallClock;
  task_options.error_policy = options_.error_policy;
  task_options.dead_letter_topic = options_.dead_letter_topic;
  task_options.dead_letters = options_.dead_letters;
  task_options.metrics = options_.metrics;
  task_options.cache_bytes_per_weight = cache_bytes_per_weight_;
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
  Task& created = *task;
  tasks_[id] = std::move(task);
  return reader_->Register(created, *offsets);
}

absl::Status TaskManager::StartTask(Task& task) {
  (void)reader_->Unregister(task.id());
  TRIBUTARY_RETURN_IF_ERROR(task.Start());
  for (const std::string& topic : task.source_topics()) {
    route_[{topic, task.id().partition}] = &task;
  }
  route_by_id_.clear();
  log_->info("{}: task {} running ({} records restored)", name_, task.id().ToString(),
             task.counters().restored);
  publish_(task.TakeCounterDeltas());
  return absl::OkStatus();
}

absl::Status TaskManager::StartRestoredTasks() {
  for (auto& [id, task] : tasks_) {
    if (task->state() != TaskState::kRunning && reader_->IsRestored(id)) {
      TRIBUTARY_RETURN_IF_ERROR(StartTask(*task));
    }
  }
  return absl::OkStatus();
}

absl::Status TaskManager::WriteCheckpoint(Task& task) {
  if (task.changelogs().empty()) return absl::OkStatus();
  TRIBUTARY_RETURN_IF_ERROR(task.FlushStores());
  CheckpointFile::Offsets offsets;
  for (const Task::Changelog& changelog : task.changelogs()) {
    TRIBUTARY_ASSIGN_OR_RETURN(
        int64_t end, clients_.producer->EndOffset({changelog.topic, changelog.partition.value}));
    offsets[{changelog.topic, changelog.partition.value}] = end;
  }
  return CheckpointFile(absl::StrCat(TaskDir(task.id()), "/.checkpoint")).Write(offsets);
}

absl::Status TaskManager::CloseAll(bool clean) {
  absl::Status first;
  for (auto& [id, task] : tasks_) {
    if (task->state() == TaskState::kRunning) {
      if (clean) first.Update(WriteCheckpoint(*task));
    } else {
      // Restoring: its stores reflect the changelogs up to where the restore
      // got, so that the next owner (maybe this thread again) resumes there.
      CheckpointFile::Offsets restored = reader_->Unregister(id);
      if (clean && !task->changelogs().empty()) {
        absl::Status flushed = task->FlushStores();
        if (flushed.ok()) {
          flushed = CheckpointFile(absl::StrCat(TaskDir(id), "/.checkpoint")).Write(restored);
        }
        first.Update(flushed);
      }
    }
    first.Update(task->Close());
    publish_(task->TakeCounterDeltas());
    if (options_.state_directory != nullptr) options_.state_directory->Release(id);
    if (options_.standby != nullptr) options_.standby->Released(id);
  }
  tasks_.clear();
  route_.clear();
  route_by_id_.clear();
  return first;
}

Task* TaskManager::Route(const PolledRecord& polled) {
  const auto id = static_cast<size_t>(polled.topic_id);
  const auto partition = static_cast<size_t>(polled.record.partition.value);
  if (polled.topic_id >= 0 && id < route_by_id_.size() &&
      partition < route_by_id_[id].size() && route_by_id_[id][partition] != nullptr) {
    return route_by_id_[id][partition];
  }
  auto it = route_.find(TopicPartition{std::string(polled.record.topic), polled.record.partition.value});
  if (it == route_.end()) return nullptr;  // revoked meanwhile; the new owner reads it
  // Topic ids are small and dense; the bounds only guard against a stray one.
  if (polled.topic_id >= 0 && polled.topic_id < 4096 && polled.record.partition.value < 65536) {
    if (id >= route_by_id_.size()) route_by_id_.resize(id + 1);
    if (partition >= route_by_id_[id].size()) route_by_id_[id].resize(partition + 1, nullptr);
    route_by_id_[id][partition] = it->second;
  }
  return it->second;
}

absl::Status TaskManager::Punctuate(TimestampMs now) {
  for (auto& [id, task] : tasks_) {
    if (task->state() == TaskState::kRunning) {
      TRIBUTARY_RETURN_IF_ERROR(task->PunctuateWallClock(now));
    }
  }
  return absl::OkStatus();
}

bool TaskManager::commit_requested() const {
  return std::any_of(tasks_.begin(), tasks_.end(),
                     [](const auto& entry) { return entry.second->commit_requested(); });
}

absl::Status TaskManager::PrepareCommit() {
  for (auto& [id, task] : tasks_) {
    if (task->state() == TaskState::kRunning) TRIBUTARY_RETURN_IF_ERROR(task->PrepareCommit());
  }
  return absl::OkStatus();
}

OffsetMap TaskManager::TakeCommitOffsets() {
  OffsetMap offsets;
  for (auto& [id, task] : tasks_) {
    if (task->state() != TaskState::kRunning) continue;
    for (const auto& [tp, next] : task->consumed_offsets()) offsets[tp] = next;
    task->clear_commit_request();
  }
  return offsets;
}

absl::Status TaskManager::WriteCheckpoints() {
  for (auto& [id, task] : tasks_) {
    if (task->state() == TaskState::kRunning) TRIBUTARY_RETURN_IF_ERROR(WriteCheckpoint(*task));
  }
  return absl::OkStatus();
}

void TaskManager::PublishCounters() {
  for (auto& [id, task] : tasks_) publish_(task->TakeCounterDeltas());
}

absl::Status TaskManager::RefreshEndOffsets() {
  std::vector<TopicPartition> partitions;
  for (const auto& [tp, task] : route_) partitions.push_back(tp);
  const TimestampMs asked = WallClock();
  // Through the restore consumer (read_committed, idle between restores):
  // on the main consumer the request waits behind its fetches.
  TRIBUTARY_ASSIGN_OR_RETURN(
      end_offsets_, clients_.restore_consumer->EndOffsets(partitions, absl::Milliseconds(5000)));
  end_offsets_as_of_ = asked;
  return absl::OkStatus();
}

absl::StatusOr<SourceProgress> TaskManager::QuerySourceProgress(const std::string& topic,
                                                                Partition partition) {
  constexpr int64_t kMaxAgeMs = 250;
  const TopicPartition tp{topic, partition.value};
  auto end = end_offsets_.find(tp);
  if (end == end_offsets_.end() || WallClock().value - end_offsets_as_of_.value > kMaxAgeMs) {
    TRIBUTARY_RETURN_IF_ERROR(RefreshEndOffsets());
    end = end_offsets_.find(tp);
    if (end == end_offsets_.end()) {
      return absl::UnavailableError(
          absl::StrCat("no end offset of ", topic, "[", partition.value, "]"));
    }
  }
  const int64_t high = end->second;
  // The consumer's position: after the last record it returned; before the
  // first one, the committed offset; with none committed, the start
  // (auto.offset.reset=earliest).
  int64_t position = -1;
  if (std::optional<int64_t> next = clients_.consumer->Position(tp)) {
    position = *next;
  } else if (absl::StatusOr<OffsetMap> committed =
                 clients_.consumer->Committed({tp}, absl::Milliseconds(5000));
             committed.ok() && committed->count(tp) > 0) {
    position = committed->at(tp);
  }
  return SourceProgress{Offset{position}, Offset{high}, end_offsets_as_of_};
}

}  // namespace tributary::internal

namespace tributary::internal {

Task* TaskManager::Find(TaskId id) {
  auto it = tasks_.find(id);
  return it == tasks_.end() ? nullptr : it->second.get();
}

}  // namespace tributary::internal
