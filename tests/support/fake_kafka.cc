#include "tests/support/fake_kafka.h"

#include <deque>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"
#include "engine/internal/record_collector.h"

namespace tributary::testing {
namespace {

using State = FakeKafka::StoredRecord::State;
constexpr absl::Duration kMaxPollWait = absl::Milliseconds(20);

}  // namespace

// A group consumer (after Subscribe) or a restore consumer (assign only,
// with end-of-partition events).
class FakeKafka::Consumer final : public internal::Consumer {
 public:
  Consumer(FakeKafka* kafka, bool restore) : kafka_(kafka), restore_(restore) {}

  absl::Status Subscribe(const std::vector<std::string>& topics,
                         internal::RebalanceListener* listener) override {
    (void)topics;  // the test's Rebalance() decides the assignment
    listener_ = listener;
    return absl::OkStatus();
  }

  absl::StatusOr<absl::Span<const internal::PolledRecord>> Poll(absl::Duration timeout,
                                                                int max_records) override {
    records_.clear();
    owned_.clear();
    if (restore_) {
      RestoreHook hook;
      int64_t restored = 0;
      {
        std::lock_guard<std::mutex> lock(kafka_->mu_);
        hook = kafka_->restore_hook_;
        restored = kafka_->restored_;
      }
      if (hook) hook(restored);
    }
    if (listener_ != nullptr) ServeRebalance();
    std::unique_lock<std::mutex> lock(kafka_->mu_);
    Fetch(max_records);
    if (owned_.empty() && timeout > absl::ZeroDuration()) {
      const uint64_t seen = kafka_->version_;
      kafka_->changed_.wait_for(lock, absl::ToChronoMilliseconds(std::min(timeout, kMaxPollWait)),
                                [&] { return kafka_->version_ != seen; });
      Fetch(max_records);
    }
    if (restore_) kafka_->restored_ += static_cast<int64_t>(owned_.size());
    lock.unlock();
    for (const Owned& owned : owned_) {
      internal::PolledRecord polled;
      polled.record.topic = owned.topic;
      polled.record.partition = Partition{owned.partition};
      polled.record.offset = Offset{owned.offset};
      if (owned.key) polled.record.key = *owned.key;
      if (owned.value) polled.record.value = *owned.value;
      polled.topic_id = TopicId(owned.topic);
      polled.end_of_partition = owned.eof;
      records_.push_back(polled);
    }
    return absl::MakeConstSpan(records_);
  }

  absl::Status Assign(const OffsetMap& start) override {
    std::lock_guard<std::mutex> lock(kafka_->mu_);
    assignment_.clear();
    positions_ = start;
    eof_at_.clear();
    std::set<TopicPartition> looking_up;
    for (auto& [tp, offset] : positions_) {
      assignment_.push_back(tp);
      if (offset != internal::kOffsetCommitted || kafka_->unstable_.count(tp) == 0) continue;
      // See SetOffsetsUnstable: librdkafka 2.0.2's late answer of the lookup
      // before, applied to this one.
      if (waiting_lookup_.count(tp) != 0) {
        offset = 0;
      } else {
        looking_up.insert(tp);
      }
    }
    waiting_lookup_ = std::move(looking_up);
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<TopicPartition>> Assignment() override { return assignment_; }
  absl::Status Seek(const OffsetMap& offsets) override {
    for (const auto& [tp, offset] : offsets) positions_[tp] = offset;
    return absl::OkStatus();
  }
  absl::Status Pause(const std::vector<TopicPartition>& partitions) override {
    paused_.insert(partitions.begin(), partitions.end());
    return absl::OkStatus();
  }
  absl::Status Resume(const std::vector<TopicPartition>& partitions) override {
    for (const TopicPartition& tp : partitions) paused_.erase(tp);
    return absl::OkStatus();
  }
  absl::StatusOr<OffsetMap> Committed(const std::vector<TopicPartition>& partitions,
                                      absl::Duration timeout) override {
    std::unique_lock<std::mutex> lock(kafka_->mu_);
    const auto stable = [&] {
      for (const TopicPartition& tp : partitions) {
        if (kafka_->unstable_.count(tp) != 0) return false;
      }
      return true;
    };
    if (!kafka_->changed_.wait_for(lock, absl::ToChronoMilliseconds(timeout), stable)) {
      return absl::DeadlineExceededError("committed offsets still unstable");
    }
    OffsetMap committed;
    for (const TopicPartition& tp : partitions) {
      auto it = kafka_->committed_.find(tp);
      if (it != kafka_->committed_.end()) committed[tp] = it->second;
    }
    return committed;
  }
  std::optional<int64_t> Position(const TopicPartition& partition) override {
    auto it = positions_.find(partition);
    if (it == positions_.end() || it->second < 0) return std::nullopt;
    return it->second;
  }
  absl::Status CommitOffsets(const OffsetMap& offsets) override {
    std::lock_guard<std::mutex> lock(kafka_->mu_);
    for (const auto& [tp, offset] : offsets) {
      kafka_->committed_[tp] = offset;
      kafka_->history_.push_back({tp, offset, generation_});
    }
    kafka_->Changed();
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> GroupMetadata() override { return absl::StrCat(generation_); }
  absl::StatusOr<std::pair<int64_t, int64_t>> Watermarks(const TopicPartition& partition,
                                                         absl::Duration) override {
    std::lock_guard<std::mutex> lock(kafka_->mu_);
    std::vector<StoredRecord>* log = kafka_->Log(partition);
    if (log == nullptr) return absl::NotFoundError(partition.first);
    return std::make_pair(int64_t{0}, kafka_->StableEnd(*log));
  }
  absl::StatusOr<OffsetMap> EndOffsets(const std::vector<TopicPartition>& partitions,
                                       absl::Duration) override {
    std::lock_guard<std::mutex> lock(kafka_->mu_);
    OffsetMap ends;
    for (const TopicPartition& tp : partitions) {
      if (std::vector<StoredRecord>* log = kafka_->Log(tp)) ends[tp] = kafka_->StableEnd(*log);
    }
    return ends;
  }
  void Close() override {
    if (listener_ != nullptr && !assignment_.empty()) listener_->OnPartitionsRevoked(assignment_);
    assignment_.clear();
    listener_ = nullptr;
  }

 private:
  struct Owned {
    std::string topic;
    int32_t partition = 0;
    int64_t offset = 0;
    std::optional<std::string> key, value;
    bool eof = false;
  };

  void ServeRebalance() {
    std::optional<std::vector<TopicPartition>> next;
    int generation = 0;
    {
      std::lock_guard<std::mutex> lock(kafka_->mu_);
      next = std::exchange(kafka_->pending_assignment_, std::nullopt);
      generation = kafka_->generation_;
    }
    if (!next) return;
    // Revoked in the old generation: a commit made now is one the group
    // (already in the new generation) rejects.
    if (!assignment_.empty()) listener_->OnPartitionsRevoked(assignment_);
    generation_ = generation;
    OffsetMap start;
    for (const TopicPartition& tp : *next) start[tp] = internal::kOffsetCommitted;
    (void)Assign(start);  // as RdKafkaConsumer's rebalance callback does
    paused_.clear();
    listener_->OnPartitionsAssigned(*next);
  }

  // REQUIRES: kafka_->mu_. Reads committed records below the stable end.
  void Fetch(int max_records) {
    for (const TopicPartition& tp : assignment_) {
      if (paused_.count(tp) > 0) continue;
      std::vector<StoredRecord>* log = kafka_->Log(tp);
      if (log == nullptr) continue;
      int64_t& position = positions_[tp];
      if (position == internal::kOffsetCommitted) {
        if (kafka_->unstable_.count(tp) != 0) continue;  // the lookup waits
        waiting_lookup_.erase(tp);
        auto it = kafka_->committed_.find(tp);
        position = it != kafka_->committed_.end() ? it->second : 0;
      } else if (position < 0) {
        position = 0;
      }
      const int64_t end = kafka_->StableEnd(*log);
      for (; position < end && static_cast<int>(owned_.size()) < max_records; ++position) {
        const StoredRecord& stored = (*log)[static_cast<size_t>(position)];
        if (stored.state != State::kCommitted) continue;  // aborted: skipped
        owned_.push_back({tp.first, tp.second, position, stored.key, stored.value, false});
      }
      if (restore_ && position == end && eof_at_[tp] != end + 1) {
        eof_at_[tp] = end + 1;
        owned_.push_back({tp.first, tp.second, position, std::nullopt, std::nullopt, true});
      }
    }
  }

  int32_t TopicId(const std::string& topic) {
    auto [it, added] = topic_ids_.emplace(topic, static_cast<int32_t>(topic_ids_.size()));
    return it->second;
  }

  FakeKafka* kafka_;
  bool restore_;
  internal::RebalanceListener* listener_ = nullptr;
  int generation_ = 0;
  std::vector<TopicPartition> assignment_;
  OffsetMap positions_;
  std::set<TopicPartition> paused_;
  std::map<TopicPartition, int64_t> eof_at_;  // end + 1 at the last EOF event
  // Assigned at kOffsetCommitted while unstable: the lookup waits (guarded
  // by kafka_->mu_).
  std::set<TopicPartition> waiting_lookup_;
  std::map<std::string, int32_t> topic_ids_;
  std::deque<Owned> owned_;
  std::vector<internal::PolledRecord> records_;
};

// A producer; transactional with a non-empty transactional id.
class FakeKafka::Producer final : public internal::Producer {
 public:
  Producer(FakeKafka* kafka, std::string transactional_id)
      : kafka_(kafka), transactional_id_(std::move(transactional_id)) {}

  absl::Status InitTransactions() override {
    std::lock_guard<std::mutex> lock(kafka_->mu_);
    epoch_ = ++kafka_->epochs_[transactional_id_];
    return absl::OkStatus();
  }
  absl::Status BeginTransaction() override {
    TRIBUTARY_RETURN_IF_ERROR(Check("begin"));
    in_transaction_ = true;
    return absl::OkStatus();
  }
  absl::Status Send(std::string_view topic, const Record& record,
                    std::optional<Partition> partition) override {
    TRIBUTARY_RETURN_IF_ERROR(Check("send"));
    const bool transactional = !transactional_id_.empty();
    if (transactional && !in_transaction_) {
      return absl::FailedPreconditionError("send outside a transaction");
    }
    std::lock_guard<std::mutex> lock(kafka_->mu_);
    auto it = kafka_->topics_.find(std::string(topic));
    if (it == kafka_->topics_.end()) return absl::NotFoundError(std::string(topic));
    const auto count = static_cast<int32_t>(it->second.size());
    int32_t chosen = 0;
    if (partition) {
      chosen = partition->value;
    } else if (record.key) {
      chosen = internal::DefaultPartition(*record.key, count);
    }
    StoredRecord stored;
    if (record.key) stored.key = std::string(*record.key);
    if (record.value) stored.value = std::string(*record.value);
    if (transactional) {
      stored.state = State::kPending;
      stored.transactional_id = transactional_id_;
    }
    it->second[static_cast<size_t>(chosen)].push_back(std::move(stored));
    kafka_->Changed();
    return absl::OkStatus();
  }
  absl::Status SendOffsetsToTransaction(const OffsetMap& offsets,
                                        std::string_view group_metadata) override {
    TRIBUTARY_RETURN_IF_ERROR(Check("send_offsets"));
    int generation = -1;
    (void)absl::SimpleAtoi(absl::string_view(group_metadata.data(), group_metadata.size()),
                           &generation);
    std::lock_guard<std::mutex> lock(kafka_->mu_);
    if (generation != kafka_->generation_) {
      must_abort_ = true;  // as Kafka: the member is no longer in this generation
      return absl::AbortedError("send_offsets_to_transaction: ILLEGAL_GENERATION");
    }
    for (const auto& [tp, offset] : offsets) pending_offsets_[tp] = offset;
    offsets_generation_ = generation;
    return absl::OkStatus();
  }
  absl::Status CommitTransaction() override {
    TRIBUTARY_RETURN_IF_ERROR(Check("commit"));
    if (must_abort_) return absl::AbortedError("commit_transaction: transaction must abort");
    return End(State::kCommitted);
  }
  absl::Status AbortTransaction() override {
    TRIBUTARY_RETURN_IF_ERROR(Check("abort"));
    return End(State::kAborted);
  }
  absl::Status Flush() override { return absl::OkStatus(); }
  absl::Status TakeDeliveryError() override { return absl::OkStatus(); }
  absl::StatusOr<int32_t> PartitionCount(std::string_view topic) override {
    std::lock_guard<std::mutex> lock(kafka_->mu_);
    auto it = kafka_->topics_.find(std::string(topic));
    if (it == kafka_->topics_.end()) return absl::NotFoundError(std::string(topic));
    return static_cast<int32_t>(it->second.size());
  }
  absl::StatusOr<int64_t> EndOffset(const TopicPartition& partition) override {
    std::lock_guard<std::mutex> lock(kafka_->mu_);
    std::vector<StoredRecord>* log = kafka_->Log(partition);
    if (log == nullptr) return absl::NotFoundError(partition.first);
    return static_cast<int64_t>(log->size());
  }

 private:
  // The injected fault, then the fencing check (transactional only).
  absl::Status Check(std::string_view op) {
    Fault fault;
    {
      std::lock_guard<std::mutex> lock(kafka_->mu_);
      fault = kafka_->fault_;
    }
    if (fault) TRIBUTARY_RETURN_IF_ERROR(fault(op));
    if (transactional_id_.empty()) return absl::OkStatus();
    std::lock_guard<std::mutex> lock(kafka_->mu_);
    if (epoch_ == kafka_->epochs_[transactional_id_]) return absl::OkStatus();
    if (told_fenced_) ++kafka_->calls_after_fenced_;
    told_fenced_ = true;
    return internal::ProducerFencedError(absl::StrCat(Sv(op), ": PRODUCER_FENCED"));
  }

  absl::Status End(State state) {
    std::lock_guard<std::mutex> lock(kafka_->mu_);
    for (auto& [topic, partitions] : kafka_->topics_) {
      for (auto& log : partitions) {
        for (StoredRecord& stored : log) {
          if (stored.state == State::kPending && stored.transactional_id == transactional_id_) {
            stored.state = state;
          }
        }
      }
    }
    if (state == State::kCommitted) {
      for (const auto& [tp, offset] : pending_offsets_) {
        kafka_->committed_[tp] = offset;
        kafka_->history_.push_back({tp, offset, offsets_generation_});
      }
    }
    pending_offsets_.clear();
    in_transaction_ = false;
    must_abort_ = false;
    kafka_->Changed();
    return absl::OkStatus();
  }

  FakeKafka* kafka_;
  std::string transactional_id_;
  int epoch_ = 0;
  bool in_transaction_ = false;
  bool must_abort_ = false;
  bool told_fenced_ = false;
  OffsetMap pending_offsets_;
  int offsets_generation_ = 0;
};

void FakeKafka::Changed() {
  ++version_;
  changed_.notify_all();
}

int64_t FakeKafka::StableEnd(const std::vector<StoredRecord>& log) const {
  for (size_t i = 0; i < log.size(); ++i) {
    if (log[i].state == State::kPending) return static_cast<int64_t>(i);
  }
  return static_cast<int64_t>(log.size());
}

std::vector<FakeKafka::StoredRecord>* FakeKafka::Log(const TopicPartition& tp) {
  auto it = topics_.find(tp.first);
  if (it == topics_.end() || tp.second < 0 ||
      static_cast<size_t>(tp.second) >= it->second.size()) {
    return nullptr;
  }
  return &it->second[static_cast<size_t>(tp.second)];
}

void FakeKafka::CreateTopic(const std::string& topic, int partitions) {
  std::lock_guard<std::mutex> lock(mu_);
  topics_[topic].resize(static_cast<size_t>(partitions));
  Changed();
}

void FakeKafka::Append(const std::string& topic, int32_t partition,
                       const std::vector<std::pair<std::string, std::string>>& records) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<StoredRecord>& log = topics_.at(topic).at(static_cast<size_t>(partition));
  for (const auto& [key, value] : records) log.push_back({key, value, State::kCommitted, ""});
  Changed();
}

void FakeKafka::Rebalance(std::vector<TopicPartition> assignment) {
  std::lock_guard<std::mutex> lock(mu_);
  ++generation_;
  pending_assignment_ = std::move(assignment);
  Changed();
}

void FakeKafka::Fence(const std::string& transactional_id) {
  std::lock_guard<std::mutex> lock(mu_);
  ++epochs_[transactional_id];
  for (auto& [topic, partitions] : topics_) {
    for (auto& log : partitions) {
      for (StoredRecord& stored : log) {
        if (stored.state == State::kPending && stored.transactional_id == transactional_id) {
          stored.state = State::kAborted;
        }
      }
    }
  }
  Changed();
}

void FakeKafka::SetFault(Fault fault) {
  std::lock_guard<std::mutex> lock(mu_);
  fault_ = std::move(fault);
}

void FakeKafka::SetRestoreHook(RestoreHook hook) {
  std::lock_guard<std::mutex> lock(mu_);
  restore_hook_ = std::move(hook);
}

void FakeKafka::SetOffsetsUnstable(const TopicPartition& partition, bool unstable) {
  std::lock_guard<std::mutex> lock(mu_);
  if (unstable) {
    unstable_.insert(partition);
  } else {
    unstable_.erase(partition);
  }
  Changed();
}

std::vector<std::pair<std::string, std::string>> FakeKafka::ReadCommitted(
    const std::string& topic) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::pair<std::string, std::string>> records;
  for (const auto& log : topics_.at(topic)) {
    const int64_t end = StableEnd(log);
    for (int64_t i = 0; i < end; ++i) {
      const StoredRecord& stored = log[static_cast<size_t>(i)];
      if (stored.state != State::kCommitted) continue;
      records.emplace_back(stored.key.value_or(""), stored.value.value_or(""));
    }
  }
  return records;
}

std::optional<int64_t> FakeKafka::CommittedOffset(const TopicPartition& partition) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = committed_.find(partition);
  if (it == committed_.end()) return std::nullopt;
  return it->second;
}

std::vector<FakeKafka::OffsetCommit> FakeKafka::commit_history() {
  std::lock_guard<std::mutex> lock(mu_);
  return history_;
}

int FakeKafka::generation() {
  std::lock_guard<std::mutex> lock(mu_);
  return generation_;
}

int FakeKafka::calls_after_fenced() {
  std::lock_guard<std::mutex> lock(mu_);
  return calls_after_fenced_;
}

bool FakeKafka::WaitUntil(const std::function<bool()>& condition, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    std::unique_lock<std::mutex> lock(mu_);
    const uint64_t seen = version_;
    // Bounded: re-checks at least every 50 ms for conditions the cluster
    // does not see change (thread state, task ids).
    changed_.wait_for(lock, absl::ToChronoMilliseconds(std::min(left, absl::Milliseconds(50))),
                      [&] { return version_ != seen; });
  }
  return true;
}

internal::ThreadClients FakeKafka::NewThreadClients(const std::string& transactional_id) {
  internal::ThreadClients clients;
  clients.consumer = std::make_unique<Consumer>(this, /*restore=*/false);
  clients.restore_consumer = std::make_unique<Consumer>(this, /*restore=*/true);
  clients.producer = std::make_unique<Producer>(this, transactional_id);
  return clients;
}

}  // namespace tributary::testing
