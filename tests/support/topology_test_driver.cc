#include "tests/support/topology_test_driver.h"

#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"
#include "engine/internal/record_collector.h"
#include "engine/internal/task.h"
#include "state/in_memory_store.h"

namespace tributary::testing {

class TopologyTestDriver::Collector : public internal::RecordCollector {
 public:
  explicit Collector(TopologyTestDriver* driver) : driver_(driver) {}

  absl::Status Send(std::string_view topic, const Record& record,
                    std::optional<Partition> partition) override {
    OwnedRecord owned = OwnedRecord::CopyOf(record);
    owned.topic = std::string(topic);
    owned.partition = partition.value_or(Partition{0});
    owned.offset = Offset{driver_->next_offset_[std::string(topic)]++};
    if (driver_->task_of_topic_.count(topic) > 0) {
      driver_->pending_.push_back(owned);  // an internal topic another task reads
    }
    driver_->output_[owned.topic].push_back(std::move(owned));
    return absl::OkStatus();
  }

  absl::StatusOr<int32_t> PartitionCount(std::string_view topic) override {
    auto it = driver_->options_.partitions.find(topic);
    return it == driver_->options_.partitions.end() ? 1 : it->second;
  }

 private:
  TopologyTestDriver* driver_;
};

TopologyTestDriver::TopologyTestDriver(Topology topology, Options options)
    : topology_(std::move(topology)),
      options_(std::move(options)),
      wall_clock_(options_.start_wall_clock),
      collector_(std::make_unique<Collector>(this)) {}

TopologyTestDriver::~TopologyTestDriver() {
  for (auto& task : tasks_) (void)task->Close();
}

absl::StatusOr<std::unique_ptr<TopologyTestDriver>> TopologyTestDriver::Create(
    Topology topology, Options options) {
  std::unique_ptr<TopologyTestDriver> driver(
      new TopologyTestDriver(std::move(topology), std::move(options)));
  TRIBUTARY_RETURN_IF_ERROR(driver->Init());
  return driver;
}

std::string TopologyTestDriver::TopicName(std::string_view topic) const {
  if (topology_.repartition_topics().count(std::string(topic)) > 0) {
    return absl::StrCat(options_.application_id, "-", Sv(topic));
  }
  return std::string(topic);
}

absl::Status TopologyTestDriver::Init() {
  TRIBUTARY_RETURN_IF_ERROR(topology_.Build());
  for (const Topology::Subtopology& sub : topology_.subtopologies()) {
    internal::TaskOptions options;
    options.id = TaskId{sub.id, 0};
    options.topology = &topology_;
    options.application_id = options_.application_id;
    options.topic_name = [this](std::string_view topic) { return TopicName(topic); };
    options.collector = collector_.get();
    options.open_store = [](const StoreSpec& spec, TaskId)
        -> absl::StatusOr<std::unique_ptr<KeyValueStore>> {
      return InMemoryStore::Create(spec.name);
    };
    options.wall_clock = [this] { return wall_clock_; };
    options.query_source_progress = [this](const std::string& topic, Partition)
        -> absl::StatusOr<SourceProgress> {
      // Every piped record is processed before PipeInput returns.
      const int64_t next = next_offset_[topic];
      auto end = end_offset_override_.find(topic);
      return SourceProgress{Offset{next},
                            Offset{end == end_offset_override_.end() ? next : end->second},
                            wall_clock_};
    };
    options.error_policy = options_.error_policy;
    options.dead_letter_topic = options_.dead_letter_topic;
    options.metrics = &metrics_;
    options.cache_bytes_per_weight = static_cast<double>(options_.cache_bytes_per_store);
    TRIBUTARY_ASSIGN_OR_RETURN(std::unique_ptr<internal::Task> task,
                               internal::Task::Create(std::move(options)));
    for (const std::string& topic : task->source_topics()) {
      task_of_topic_[topic] = task.get();
    }
    tasks_.push_back(std::move(task));
  }
  for (auto& task : tasks_) TRIBUTARY_RETURN_IF_ERROR(task->Start());
  return absl::OkStatus();
}

absl::Status TopologyTestDriver::PipeInput(std::string_view topic,
                                           std::optional<std::string_view> key,
                                           std::optional<std::string_view> value,
                                           TimestampMs timestamp,
                                           std::vector<Header> headers) {
  return PipeInputAt(topic, Partition{0}, key, value, timestamp, std::move(headers));
}

absl::Status TopologyTestDriver::PipeInputAt(std::string_view topic, Partition partition,
                                             std::optional<std::string_view> key,
                                             std::optional<std::string_view> value,
                                             TimestampMs timestamp,
                                             std::vector<Header> headers) {
  auto it = task_of_topic_.find(topic);
  if (it == task_of_topic_.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the topology reads no topic '", Sv(topic), "'"));
  }
  Record record;
  record.key = key;
  record.value = value;
  record.timestamp = timestamp;
  record.headers = std::move(headers);
  record.topic = it->first;
  record.partition = partition;
  record.offset = Offset{next_offset_[std::string(topic)]++};
  TRIBUTARY_RETURN_IF_ERROR(ProcessFully(*it->second, record));
  return Settle();
}

absl::Status TopologyTestDriver::ProcessFully(internal::Task& task, const Record& record) {
  // An unfinished record (ProcessorContext::Unfinished) comes again after a
  // commit of every task, as the stream thread does it.
  constexpr int kMaxPieces = 1'000'000;
  for (int piece = 0; piece < kMaxPieces; ++piece) {
    TRIBUTARY_RETURN_IF_ERROR(task.Process(record));
    if (!task.unfinished()) return absl::OkStatus();
    ++unfinished_records_;
    for (auto& each : tasks_) TRIBUTARY_RETURN_IF_ERROR(each->PrepareCommit());
  }
  return absl::InternalError("TopologyTestDriver: a record still unfinished after 1,000,000 calls");
}

absl::Status TopologyTestDriver::Settle() {
  // A processor's PrepareCommit may forward records (a summary of what it
  // sent), which other tasks process and summarize in turn: commit until
  // nothing moves.
  constexpr int kMaxRounds = 100;
  for (int round = 0; round < kMaxRounds; ++round) {
    TRIBUTARY_RETURN_IF_ERROR(Drain());
    for (auto& task : tasks_) TRIBUTARY_RETURN_IF_ERROR(task->PrepareCommit());
    if (pending_.empty()) return absl::OkStatus();
  }
  return absl::InternalError("TopologyTestDriver: records still forwarded after 100 commits");
}

absl::Status TopologyTestDriver::Drain() {
  while (!pending_.empty()) {
    OwnedRecord next = std::move(pending_.front());
    pending_.pop_front();
    internal::Task* task = task_of_topic_.find(next.topic)->second;
    TRIBUTARY_RETURN_IF_ERROR(ProcessFully(*task, next.View()));
  }
  return absl::OkStatus();
}

absl::Status TopologyTestDriver::AdvanceWallClockTime(absl::Duration duration) {
  wall_clock_.value += absl::ToInt64Milliseconds(duration);
  for (auto& task : tasks_) {
    TRIBUTARY_RETURN_IF_ERROR(task->PunctuateWallClock(wall_clock_));
    TRIBUTARY_RETURN_IF_ERROR(Drain());
  }
  return Settle();
}

std::vector<OwnedRecord> TopologyTestDriver::ReadOutput(std::string_view topic) {
  const std::vector<OwnedRecord>& all = AllOutput(topic);
  size_t& position = read_position_[std::string(topic)];
  std::vector<OwnedRecord> fresh(all.begin() + static_cast<std::ptrdiff_t>(position),
                                 all.end());
  position = all.size();
  return fresh;
}

const std::vector<OwnedRecord>& TopologyTestDriver::AllOutput(std::string_view topic) {
  auto it = output_.find(topic);
  if (it == output_.end()) it = output_.emplace(std::string(topic), std::vector<OwnedRecord>{}).first;
  return it->second;
}

std::vector<std::string> TopologyTestDriver::OutputTopics() const {
  std::vector<std::string> topics;
  for (const auto& [topic, records] : output_) {
    if (!records.empty()) topics.push_back(topic);
  }
  return topics;
}

KeyValueStore* TopologyTestDriver::GetStore(std::string_view name) {
  for (auto& task : tasks_) {
    if (KeyValueStore* store = task->store(name)) return store;
  }
  return nullptr;
}

}  // namespace tributary::testing
