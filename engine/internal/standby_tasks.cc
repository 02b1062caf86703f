#include "engine/internal/standby_tasks.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "engine/internal/log.h"
#include "engine/internal/rdkafka_consumer.h"
#include "engine/internal/task.h"
#include "engine/kafka_clients.h"
#include "state/checkpoint.h"

namespace tributary::internal {
namespace {

constexpr int kAdminTimeoutMs = 10000;
constexpr absl::Duration kWatermarkTimeout = absl::Seconds(30);
constexpr absl::Duration kPollTimeout = absl::Milliseconds(100);
constexpr int kMaxPollRecords = 10000;
// While the group is not stable, or after an error: ask again this soon.
constexpr absl::Duration kRetry = absl::Milliseconds(500);
constexpr absl::Duration kLagInterval = absl::Seconds(1);
constexpr std::string_view kStreamThread = "-StreamThread-";

// FNV-1a, 64 bits, then MurmurHash3's fmix64 finalizer (FNV-1a alone mixes
// its high bits too little to rank names that differ in a few characters):
// the same on every instance (absl::Hash is seeded per process).
uint64_t StableHash(std::string_view text) {
  uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  hash ^= hash >> 33;
  hash *= 0xff51afd7ed558ccdull;
  hash ^= hash >> 33;
  hash *= 0xc4ceb9fe1a85ec53ull;
  hash ^= hash >> 33;
  return hash;
}

}  // namespace

std::string InstanceOfClientId(std::string_view client_id) {
  const size_t at = client_id.find(kStreamThread);
  if (at == std::string_view::npos || at == 0) return "";
  return std::string(client_id.substr(0, at));
}

std::vector<std::string> StandbyInstances(TaskId task, const std::string& active,
                                          const std::set<std::string>& instances, int replicas) {
  std::vector<std::pair<uint64_t, std::string>> ranked;
  for (const std::string& instance : instances) {
    if (instance == active) continue;
    ranked.emplace_back(StableHash(absl::StrCat(instance, "/", task.ToString())), instance);
  }
  std::sort(ranked.begin(), ranked.end(), std::greater<>());
  std::vector<std::string> chosen;
  for (const auto& [hash, instance] : ranked) {
    if (static_cast<int>(chosen.size()) >= replicas) break;
    chosen.push_back(instance);
  }
  return chosen;
}

struct StandbyTasks::Standby {
  struct Changelog {
    std::string store;
    int64_t next = 0;  // the store reflects the changelog up to here
    WriteBatch batch;
  };
  TaskId id;
  std::string dir;
  std::map<std::string, std::unique_ptr<RocksDbStore>, std::less<>> stores;
  std::map<TopicPartition, Changelog> changelogs;
  bool dirty = false;  // read since the last checkpoint
  absl::Time last_checkpoint = absl::Now();
};

StandbyTasks::StandbyTasks(StandbyOptions options)
    : options_(std::move(options)), log_(EngineLogger()) {
  instance_ = absl::StrCat(options_.application_id, "-", options_.process_id);
  for (const auto& sub : options_.topology->subtopologies()) {
    for (const std::string& topic : sub.source_topics) {
      subtopology_of_topic_[options_.topic_name(topic)] = sub.id;
    }
  }
  if (options_.metrics != nullptr) {
    tasks_gauge_ = options_.metrics->GetGauge(metric_names::kStandbyTasks);
    lag_gauge_ = options_.metrics->GetGauge(metric_names::kStandbyLag);
    records_ = options_.metrics->GetCounter(metric_names::kStandbyRecordsTotal);
  }
}

absl::StatusOr<std::unique_ptr<StandbyTasks>> StandbyTasks::Start(StandbyOptions options) {
  std::unique_ptr<StandbyTasks> standby(new StandbyTasks(std::move(options)));
  const StandbyOptions& o = standby->options_;
  KafkaSettings admin = {{"log_level", "4"}};
  for (const auto& [key, value] : o.admin_settings) admin[key] = value;
  admin["bootstrap.servers"] = o.bootstrap_servers;
  admin["client.id"] = absl::StrCat(standby->instance_, "-standby-admin");
  TRIBUTARY_ASSIGN_OR_RETURN(standby->admin_, KafkaAdmin::Open(admin));
  std::map<std::string, std::string> consumer = {{"log_level", "4"}};
  for (const auto& [key, value] : o.consumer_settings) consumer[key] = value;
  consumer["bootstrap.servers"] = o.bootstrap_servers;
  // Assigned partitions only: the group id is never joined nor committed to.
  consumer["group.id"] = absl::StrCat(o.application_id, "-standby");
  consumer["client.id"] = absl::StrCat(standby->instance_, "-standby-consumer");
  consumer["enable.auto.commit"] = "false";
  consumer["enable.auto.offset.store"] = "false";
  consumer["isolation.level"] = "read_committed";
  consumer["auto.offset.reset"] = "earliest";
  TRIBUTARY_ASSIGN_OR_RETURN(standby->consumer_, RdKafkaConsumer::Create(consumer));
  StandbyTasks* self = standby.get();
  standby->thread_ = std::thread([self] { self->Run(); });
  return standby;
}

StandbyTasks::~StandbyTasks() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  kicked_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<TaskId> ids;
  for (const auto& [id, standby] : standbys_) ids.push_back(id);
  for (TaskId id : ids) {
    if (absl::Status status = Close(id); !status.ok()) {
      log_->warn("{}: standby task {}: {}", instance_, id.ToString(), status.ToString());
    }
  }
  consumer_->Close();
}

void StandbyTasks::TakeOver(TaskId id) {
  std::lock_guard<std::mutex> lock(mu_);
  ++active_here_[id];
  if (standbys_.count(id) == 0) return;
  std::string offsets;
  for (const auto& [tp, changelog] : standbys_[id]->changelogs) {
    absl::StrAppend(&offsets, offsets.empty() ? "" : ", ", tp.first, "[", tp.second,
                    "]@", changelog.next);
  }
  absl::Status status = Close(id);
  if (status.ok()) {
    log_->info("{}: standby task {} handed over to a stream thread at {}", instance_,
               id.ToString(), offsets);
  } else {
    // The stream thread finds no valid checkpoint and restores everything.
    log_->warn("{}: standby task {}: {}", instance_, id.ToString(), status.ToString());
  }
}

void StandbyTasks::Released(TaskId id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = active_here_.find(id);
    if (it != active_here_.end() && --it->second <= 0) active_here_.erase(it);
    kicked_ = true;
  }
  kicked_cv_.notify_all();
}

void StandbyTasks::Kick() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    kicked_ = true;
  }
  kicked_cv_.notify_all();
}

std::map<TaskId, int64_t> StandbyTasks::lags() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lags_;
}

absl::StatusOr<std::optional<std::set<TaskId>>> StandbyTasks::Wanted() {
  TRIBUTARY_ASSIGN_OR_RETURN(KafkaAdmin::GroupDescription group,
                             admin_->DescribeGroup(options_.application_id, kAdminTimeoutMs));
  if (group.state != "Stable") return std::optional<std::set<TaskId>>();
  std::set<std::string> instances;
  std::map<TaskId, std::string> active;
  for (const KafkaAdmin::GroupMember& member : group.members) {
    std::string instance = InstanceOfClientId(member.client_id);
    if (instance.empty()) continue;
    instances.insert(instance);
    for (const auto& [topic, partition] : member.assignment) {
      auto sub = subtopology_of_topic_.find(topic);
      if (sub != subtopology_of_topic_.end()) active[TaskId{sub->second, partition}] = instance;
    }
  }
  std::set<TaskId> wanted;
  for (const auto& [task, owner] : active) {
    bool persistent = false;
    for (const std::string& name : options_.topology->subtopologies()[task.subtopology].stores) {
      const StoreSpec* spec = options_.topology->store(name);
      persistent |= spec->logging && spec->type == StoreType::kRocksDb;
    }
    if (!persistent) continue;  // an in-memory store restores in full anyway
    std::vector<std::string> chosen =
        StandbyInstances(task, owner, instances, options_.replicas);
    if (std::find(chosen.begin(), chosen.end(), instance_) != chosen.end()) wanted.insert(task);
  }
  return std::optional<std::set<TaskId>>(std::move(wanted));
}

absl::Status StandbyTasks::Reconcile(const std::set<TaskId>& wanted) {
  absl::Status first;
  std::vector<TaskId> drop;
  for (const auto& [id, standby] : standbys_) {
    if (wanted.count(id) == 0 || active_here_.count(id) > 0) drop.push_back(id);
  }
  for (TaskId id : drop) {
    log_->info("{}: standby task {} no longer kept here", instance_, id.ToString());
    first.Update(Close(id));
  }
  for (TaskId id : wanted) {
    if (standbys_.count(id) > 0 || active_here_.count(id) > 0) continue;
    first.Update(Open(id));
  }
  return first;
}

absl::Status StandbyTasks::Open(TaskId id) {
  auto standby = std::make_unique<Standby>();
  standby->id = id;
  standby->dir = options_.state_directory->TaskDir(id);
  options_.state_directory->Claim(id);
  CheckpointFile checkpoint(absl::StrCat(standby->dir, "/.checkpoint"));
  absl::StatusOr<CheckpointFile::Offsets> offsets = checkpoint.Read();
  if (!offsets.ok() || offsets->empty()) {
    // No valid checkpoint: the local state may be ahead of the changelog
    // (an unclean stop of an active task); rebuild it.
    std::error_code ec;
    std::filesystem::remove_all(standby->dir, ec);
    offsets = CheckpointFile::Offsets{};
  }
  std::error_code ec;
  std::filesystem::create_directories(standby->dir, ec);
  absl::Status status;
  if (ec) {
    status = absl::InternalError(
        absl::StrCat("cannot create task dir ", standby->dir, ": ", ec.message()));
  }
  for (const std::string& name : options_.topology->subtopologies()[id.subtopology].stores) {
    const StoreSpec* spec = options_.topology->store(name);
    if (!status.ok() || !spec->logging || spec->type != StoreType::kRocksDb) continue;
    RocksDbStoreOptions store_options;
    store_options.disable_wal = !options_.rocksdb_wal;
    absl::StatusOr<std::unique_ptr<RocksDbStore>> store = RocksDbStore::Open(
        name, absl::StrCat(standby->dir, "/rocksdb/", name), *options_.rocksdb, store_options);
    if (!store.ok()) {
      status = store.status();
      break;
    }
    standby->stores[name] = *std::move(store);
    const TopicPartition tp{ChangelogTopic(options_.application_id, name), id.partition};
    absl::StatusOr<std::pair<int64_t, int64_t>> marks =
        consumer_->Watermarks(tp, kWatermarkTimeout);
    if (!marks.ok()) {
      status = marks.status();
      break;
    }
    int64_t next = marks->first;
    auto it = offsets->find({tp.first, tp.second});
    if (it != offsets->end() && it->second >= marks->first && it->second <= marks->second) {
      next = it->second;
    }
    standby->changelogs[tp].store = name;
    standby->changelogs[tp].next = next;
  }
  if (!status.ok()) {
    standby->stores.clear();
    options_.state_directory->Release(id);
    return absl::Status(status.code(), absl::StrCat("standby task ", id.ToString(), ": ",
                                                    status.message()));
  }
  std::string from;
  for (const auto& [tp, changelog] : standby->changelogs) {
    absl::StrAppend(&from, from.empty() ? "" : ", ", tp.first, "[", tp.second, "]@",
                    changelog.next);
  }
  log_->info("{}: standby task {} kept here, reading from {}", instance_, id.ToString(), from);
  standbys_[id] = std::move(standby);
  reassign_ = true;
  ++generation_;
  if (tasks_gauge_ != nullptr) tasks_gauge_->Set(static_cast<int64_t>(standbys_.size()));
  return absl::OkStatus();
}

absl::Status StandbyTasks::Checkpoint(Standby& standby) {
  CheckpointFile::Offsets offsets;
  for (auto& [tp, changelog] : standby.changelogs) {
    offsets[{tp.first, tp.second}] = changelog.next;
  }
  // Without the write-ahead log only a flush makes the stores durable.
  for (auto& [name, store] : standby.stores) TRIBUTARY_RETURN_IF_ERROR(store->Flush());
  TRIBUTARY_RETURN_IF_ERROR(
      CheckpointFile(absl::StrCat(standby.dir, "/.checkpoint")).Write(offsets));
  standby.dirty = false;
  standby.last_checkpoint = absl::Now();
  return absl::OkStatus();
}

absl::Status StandbyTasks::Close(TaskId id) {
  auto it = standbys_.find(id);
  if (it == standbys_.end()) return absl::OkStatus();
  absl::Status status = Checkpoint(*it->second);
  it->second->stores.clear();
  standbys_.erase(it);
  options_.state_directory->Release(id);
  lags_.erase(id);
  reassign_ = true;
  ++generation_;
  if (tasks_gauge_ != nullptr) tasks_gauge_->Set(static_cast<int64_t>(standbys_.size()));
  return status;
}

void StandbyTasks::Run() {
  absl::Time next_refresh = absl::Now();
  absl::Time next_lag = absl::Now();
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (kicked_ || absl::Now() >= next_refresh) {
      kicked_ = false;
      lock.unlock();
      absl::StatusOr<std::optional<std::set<TaskId>>> wanted = Wanted();
      lock.lock();
      if (stop_) break;
      if (!wanted.ok()) {
        log_->warn("{}: standby tasks: cannot describe the group (trying again): {}", instance_,
                   wanted.status().ToString());
        next_refresh = absl::Now() + kRetry;
      } else if (!wanted->has_value()) {
        next_refresh = absl::Now() + kRetry;  // rebalancing: keep what there is
      } else {
        wanted_ = **wanted;
        next_refresh = absl::Now() + options_.refresh_interval;
      }
      if (absl::Status status = Reconcile(wanted_); !status.ok()) {
        log_->warn("{}: standby tasks: {}", instance_, status.ToString());
        next_refresh = std::min(next_refresh, absl::Now() + kRetry);
      }
    }
    if (standbys_.empty()) {
      if (reassign_) {
        (void)consumer_->Assign({});
        reassign_ = false;
      }
      kicked_cv_.wait_for(lock, std::chrono::milliseconds(absl::ToInt64Milliseconds(
                                    std::max(absl::ZeroDuration(), next_refresh - absl::Now()))),
                          [this] { return stop_ || kicked_; });
      continue;
    }
    if (reassign_) {
      OffsetMap start;
      for (const auto& [id, standby] : standbys_) {
        for (const auto& [tp, changelog] : standby->changelogs) start[tp] = changelog.next;
      }
      if (absl::Status status = consumer_->Assign(start); !status.ok()) {
        log_->warn("{}: standby tasks: {}", instance_, status.ToString());
      }
      reassign_ = false;
    }
    const uint64_t generation = generation_;
    lock.unlock();
    // The consumer is this thread's alone; polled without the lock so that
    // a TakeOver never waits for a fetch.
    absl::StatusOr<absl::Span<const PolledRecord>> polled =
        consumer_->Poll(kPollTimeout, kMaxPollRecords);
    lock.lock();
    if (!polled.ok()) {
      log_->warn("{}: standby tasks: {}", instance_, polled.status().ToString());
      continue;
    }
    if (generation != generation_) continue;  // read for standbys that changed
    std::map<TopicPartition, std::pair<Standby*, Standby::Changelog*>> by_partition;
    for (auto& [id, standby] : standbys_) {
      for (auto& [tp, changelog] : standby->changelogs) {
        by_partition[tp] = {standby.get(), &changelog};
      }
    }
    int64_t applied = 0;
    for (const PolledRecord& polled_record : *polled) {
      const Record& record = polled_record.record;
      if (polled_record.end_of_partition) continue;
      auto it = by_partition.find({std::string(record.topic), record.partition.value});
      if (it == by_partition.end()) continue;
      Standby::Changelog& changelog = *it->second.second;
      if (record.offset.value < changelog.next) continue;
      std::string_view key = record.key.value_or(std::string_view());
      if (record.value) {
        changelog.batch.Put(key, *record.value);
      } else {
        changelog.batch.Delete(key);
      }
      changelog.next = record.offset.value + 1;
      ++applied;
    }
    absl::Status status;
    for (auto& [tp, entry] : by_partition) {
      auto [standby, changelog] = entry;
      if (!changelog->batch.empty()) {
        status.Update(standby->stores[changelog->store]->Write(changelog->batch));
        changelog->batch.Clear();
        standby->dirty = true;
      }
      // Under exactly-once a commit marker follows the last record: the
      // position says where the store stands.
      std::optional<int64_t> position = consumer_->Position(tp);
      if (position && *position > changelog->next) {
        changelog->next = *position;
        standby->dirty = true;
      }
    }
    if (records_ != nullptr) records_->Add(applied);
    for (auto& [id, standby] : standbys_) {
      if (standby->dirty &&
          absl::Now() - standby->last_checkpoint >= options_.checkpoint_interval) {
        status.Update(Checkpoint(*standby));
      }
    }
    if (!status.ok()) log_->warn("{}: standby tasks: {}", instance_, status.ToString());
    if (absl::Now() >= next_lag) {
      next_lag = absl::Now() + kLagInterval;
      std::vector<TopicPartition> partitions;
      for (const auto& [id, standby] : standbys_) {
        for (const auto& [tp, changelog] : standby->changelogs) partitions.push_back(tp);
      }
      lock.unlock();
      absl::StatusOr<OffsetMap> ends = consumer_->EndOffsets(partitions, absl::Seconds(5));
      lock.lock();
      if (ends.ok()) UpdateLags(*ends);
    }
  }
}

void StandbyTasks::UpdateLags(const OffsetMap& ends) {
  int64_t total = 0;
  lags_.clear();
  for (const auto& [id, standby] : standbys_) {
    int64_t lag = 0;
    for (const auto& [tp, changelog] : standby->changelogs) {
      auto end = ends.find(tp);
      if (end != ends.end()) lag += std::max<int64_t>(0, end->second - changelog.next);
    }
    lags_[id] = lag;
    total += lag;
  }
  if (lag_gauge_ != nullptr) lag_gauge_->Set(total);
}

}  // namespace tributary::internal
