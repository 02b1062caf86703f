// FakeKafka: an in-memory stand-in for a Kafka cluster behind the engine's
// client interfaces (engine/internal/clients.h), so that unit tests drive a
// real StreamThread, TaskManager and StreamsProducer with no broker. Models
// what the commit, abort, fencing, restore and rebalance paths rely on:
// partition logs whose transactional records stay invisible to read_committed
// readers (and hold back the last stable offset) until committed, and vanish
// when aborted; one consumer group with a generation and committed offsets;
// transactional ids with epochs (a newer producer fences an older one).
// Tests script it: Rebalance() hands the group consumer a new assignment at
// its next poll, SetFault() injects errors into producer calls, and
// SetRestoreHook() runs on every poll of a restore consumer.
// Thread-safety: every method may be called from any thread (the stream
// thread uses the clients while the test inspects the cluster).
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/internal/clients.h"

namespace tributary::testing {

using internal::OffsetMap;
using internal::TopicPartition;

class FakeKafka {
 public:
  struct StoredRecord {
    std::optional<std::string> key;
    std::optional<std::string> value;
    enum class State { kCommitted, kPending, kAborted } state = State::kCommitted;
    std::string transactional_id;  // of a pending record
  };
  struct OffsetCommit {
    TopicPartition partition;
    int64_t offset = 0;
    int generation = 0;
  };
  // Called at the start of each producer call (`op`: "begin", "send",
  // "send_offsets", "commit", "abort") with the mutex released; a non-OK
  // result is what the call returns.
  using Fault = std::function<absl::Status(std::string_view op)>;
  // Called at the start of each restore-consumer poll with the number of
  // records restore consumers returned so far.
  using RestoreHook = std::function<void(int64_t restored_so_far)>;

  void CreateTopic(const std::string& topic, int partitions);
  // Appends committed records (a non-transactional producer).
  void Append(const std::string& topic, int32_t partition,
              const std::vector<std::pair<std::string, std::string>>& records);
  // The group's next generation gives the group consumer `assignment`; it
  // learns of it at its next poll (revoking everything first: eager).
  void Rebalance(std::vector<TopicPartition> assignment);
  // A newer producer with `transactional_id` initialized: the current one is
  // fenced and its open transaction aborted.
  void Fence(const std::string& transactional_id);
  void SetFault(Fault fault);
  void SetRestoreHook(RestoreHook hook);
  // While `unstable`, another producer's open transaction commits offsets
  // of `partition` (KIP-447): Consumer::Committed waits (until its timeout:
  // DeadlineExceeded), and a partition assigned at kOffsetCommitted is not
  // read until it is stable. Assigning it at kOffsetCommitted AGAIN while
  // the first lookup still waits does what librdkafka 2.0.2 does: the first
  // lookup's answer is applied to the new assignment, and the partition
  // starts at auto.offset.reset (earliest: offset 0).
  void SetOffsetsUnstable(const TopicPartition& partition, bool unstable);

  // What a read_committed reader sees in `topic`, partition by partition.
  std::vector<std::pair<std::string, std::string>> ReadCommitted(const std::string& topic);
  std::optional<int64_t> CommittedOffset(const TopicPartition& partition);
  std::vector<OffsetCommit> commit_history();
  int generation();
  // Transactional calls a producer made after it was fenced and told so.
  int calls_after_fenced();
  // Waits until `condition` (evaluated with the cluster unlocked) holds,
  // re-checking after every change of the cluster; false after `timeout`.
  bool WaitUntil(const std::function<bool()>& condition, absl::Duration timeout);

  // Clients for a stream thread (the factory of StreamThreadOptions::clients).
  internal::ThreadClients NewThreadClients(const std::string& transactional_id);

 private:
  class Consumer;
  class Producer;
  friend class Consumer;
  friend class Producer;

  int64_t StableEnd(const std::vector<StoredRecord>& log) const;  // REQUIRES: mu_
  std::vector<StoredRecord>* Log(const TopicPartition& tp);       // REQUIRES: mu_
  void Changed();                                                 // REQUIRES: mu_

  std::mutex mu_;
  std::condition_variable changed_;
  uint64_t version_ = 0;
  std::map<std::string, std::vector<std::vector<StoredRecord>>> topics_;
  int generation_ = 0;
  std::optional<std::vector<TopicPartition>> pending_assignment_;
  OffsetMap committed_;
  std::set<TopicPartition> unstable_;
  std::vector<OffsetCommit> history_;
  std::map<std::string, int> epochs_;  // by transactional id
  int calls_after_fenced_ = 0;
  int64_t restored_ = 0;
  Fault fault_;
  RestoreHook restore_hook_;
};

}  // namespace tributary::testing
