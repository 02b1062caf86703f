// What the micro-benchmarks of one CDC operator driven directly share: the
// spec, the store stacks they run on and a fake ProcessorContext for one task.
// Header only; for tests/operators/*_bench.cc and the tests that drive one
// operator directly (tx_assembler_test.cc). Single-threaded.
#pragma once

#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"
#include "engine/metrics.h"
#include "engine/processor.h"
#include "engine/record.h"
#include "operators/transaction_aggregate.h"
#include "state/caching_store.h"
#include "state/change_logging_store.h"
#include "state/changelog.h"
#include "state/in_memory_store.h"
#include "state/rocksdb_store.h"

namespace tributary::bench {

// The record cache of one store in the engine's default: 10 MiB
// cache.max.bytes split over the 16 stores of one order-aggregator instance.
inline constexpr size_t kCacheBytes = 10 * 1024 * 1024 / 16;

// The order-aggregator's CDC spec (purchase orders and their lines).
inline TransactionAggregateSpec OrdersSpec() {
  TransactionAggregateSpec spec;
  spec.name = "cdc";
  spec.root = {"dbserver1.inventory.purchaseorder", "inventory.purchaseorder", "id", "", ""};
  spec.children = {{"dbserver1.inventory.orderline", "inventory.orderline", "id", "order_id",
                    "lines"}};
  spec.transaction_topic = "dbserver1.transaction";
  spec.output_topic = "order-aggregates";
  return spec;
}

class DiscardingChangelog : public ChangelogWriter {
 public:
  absl::Status Append(std::string_view key, std::optional<std::string_view> value) override {
    ++records_;
    bytes_ += key.size() + (value ? value->size() : 0);
    return absl::OkStatus();
  }
  int64_t records_ = 0;
  int64_t bytes_ = 0;
};

class NoopCancellable : public Cancellable {
 public:
  void Cancel() override {}
};

// Every pure virtual of ProcessorContext, for one task: the stores it is
// given by name, the partition counts it is given by topic; what is
// forwarded is counted (the last value kept); punctuations fire only by
// FirePunctuators; committed offsets are not kept.
class FakeContext : public ProcessorContext {
 public:
  FakeContext(TaskId task, std::map<std::string, KeyValueStore*, std::less<>> stores,
              std::map<std::string, int32_t, std::less<>> partitions)
      : task_(task), stores_(std::move(stores)), partitions_(std::move(partitions)) {}

  const std::string& application_id() const override { return app_id_; }
  TaskId task_id() const override { return task_; }
  TimestampMs stream_time() const override { return TimestampMs{now_ms_}; }
  TimestampMs wall_clock_time() const override { return TimestampMs{now_ms_}; }
  absl::Status Forward(const Record& record) override {
    ++forwarded_;
    last_value_.assign(record.value.value_or(""));
    if (outputs != nullptr) {
      outputs->emplace_back(std::string(record.key.value_or("")), last_value_);
    }
    return absl::OkStatus();
  }
  bool Unfinished() override {
    unfinished_ = unfinished_ || accept_unfinished;
    return accept_unfinished;
  }
  // Whether Unfinished was accepted since the last call.
  bool TakeUnfinished() { return std::exchange(unfinished_, false); }
  absl::Status Forward(const Record& record, std::string_view) override {
    return Forward(record);
  }
  KeyValueStore* GetStateStore(std::string_view name) override {
    auto it = stores_.find(name);
    return it == stores_.end() ? nullptr : it->second;
  }
  std::shared_ptr<Cancellable> Schedule(absl::Duration, PunctuationType,
                                        Punctuator punctuator) override {
    punctuators_.push_back(std::move(punctuator));  // fired by FirePunctuators only
    return std::make_shared<NoopCancellable>();
  }
  absl::StatusOr<int32_t> PartitionCount(std::string_view topic) override {
    auto it = partitions_.find(topic);
    if (it == partitions_.end()) return absl::NotFoundError(absl::StrCat("no topic ", Sv(topic)));
    return it->second;
  }
  absl::StatusOr<SourceProgress> QuerySourceProgress(std::string_view) override {
    return SourceProgress{Offset{0}, Offset{1}, TimestampMs{now_ms_}};  // not caught up
  }
  void RequestCommit() override {}
  absl::Status HoldCommittedOffset(std::string_view, int64_t) override {
    return absl::OkStatus();
  }
  Metrics& metrics() override { return metrics_; }

  void Advance(int64_t ms) { now_ms_ += ms; }
  // Runs every scheduled punctuator once, at the current time.
  absl::Status FirePunctuators() {
    for (Punctuator& punctuator : punctuators_) {
      TRIBUTARY_RETURN_IF_ERROR(punctuator(TimestampMs{now_ms_}));
    }
    return absl::OkStatus();
  }
  int64_t forwarded() const { return forwarded_; }
  // Tests: Unfinished() is accepted (as a stream thread does); what is
  // forwarded is also kept here (key, value).
  bool accept_unfinished = false;
  std::vector<std::pair<std::string, std::string>>* outputs = nullptr;
  const std::string& last_value() const { return last_value_; }

 private:
  const TaskId task_;
  const std::map<std::string, KeyValueStore*, std::less<>> stores_;
  const std::map<std::string, int32_t, std::less<>> partitions_;
  const std::string app_id_ = "order-aggregator";
  int64_t now_ms_ = 1'700'000'000'000;
  int64_t forwarded_ = 0;
  bool unfinished_ = false;
  std::string last_value_;
  std::vector<Punctuator> punctuators_;
  Metrics metrics_;
};

enum StoreKind : int64_t { kInMemory = 0, kRocksDbStack = 1, kInMemoryStack = 2 };

inline const char* StoreLabel(StoreKind kind) {
  return kind == kInMemory       ? "in-memory"
         : kind == kRocksDbStack ? "rocksdb+changelog+cache"
                                 : "in-memory+changelog+cache";
}

// One store as `kind` says: 0 = bare InMemoryStore; 1 = the engine's stack
// for a logged RocksDB store (RocksDbStore with the WAL off as under
// exactly-once, 64 MiB block cache / 16 MiB write buffers,
// ChangeLoggingStore writing to a discarding sink, CachingStore of
// kCacheBytes); 2 = the same stack over an InMemoryStore.
struct StoreStack {
  std::unique_ptr<KeyValueStore> top;
  CachingStore* cache = nullptr;
  std::unique_ptr<RocksDbResources> resources;
  std::string directory;
  DiscardingChangelog changelog;

  StoreStack() = default;
  StoreStack(const StoreStack&) = delete;
  StoreStack& operator=(const StoreStack&) = delete;
  ~StoreStack() {
    top.reset();
    if (!directory.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(directory, ec);
    }
  }
};

inline absl::Status OpenStack(StoreKind kind, const std::string& name, StoreStack& stack) {
  std::unique_ptr<KeyValueStore> raw;
  if (kind == kRocksDbStack) {
    auto resources = RocksDbResources::Create(64 << 20, 16 << 20);
    if (!resources.ok()) return resources.status();
    stack.resources = std::move(*resources);
    std::string dir = (std::filesystem::temp_directory_path() / "operator_bench-XXXXXX");
    if (mkdtemp(dir.data()) == nullptr) return absl::InternalError("mkdtemp failed");
    stack.directory = dir;
    RocksDbStoreOptions options;
    options.disable_wal = true;  // as under exactly-once
    auto store = RocksDbStore::Open(name, dir + "/rocksdb/" + name, *stack.resources, options);
    if (!store.ok()) return store.status();
    raw = std::move(*store);
  } else {
    raw = InMemoryStore::Create(name);
  }
  if (kind == kInMemory) {
    stack.top = std::move(raw);
    return absl::OkStatus();
  }
  std::unique_ptr<KeyValueStore> logged = MakeChangeLoggingStore(std::move(raw), &stack.changelog);
  std::unique_ptr<CachingStore> cache = CachingStore::Create(std::move(logged), kCacheBytes);
  stack.cache = cache.get();
  stack.top = std::move(cache);
  return absl::OkStatus();
}

}  // namespace tributary::bench
