// Micro-benchmark of building aggregate versions: ONE AggregateJoin
// (operators/internal/aggregate_join.h) driven directly, with a fake
// ProcessorContext, on pre-encoded RowChange and Decision records, with its
// roots and children stores on the engine's stack for a logged RocksDB store
// (see tests/operators/operator_bench.h) and held changes in memory. Lives
// under tests/ because it needs internal headers; built only with
// -DTRIBUTARY_BUILD_BENCH=ON, not a ctest test.
//
// Each iteration is one transaction of one root, released: its row changes,
// then the release decision, so one version built; 20,000 of them a run, the
// same ones for every variant. Every 100 transactions a commit
// (PrepareCommit and the record caches' flush, as Task::PrepareCommit does).
//
// Workload (arg 0): 0 = "grow": an order gets one new line per transaction
// up to `lines` (arg 1), then the next order starts (the last ones stay
// stored); 1 = "mix": 16 orders of `lines` lines each (written before the
// timing), each transaction picks one at random and updates one of its lines
// (60 %), adds one (15 %) and deletes another (as many go as come), or
// updates the order row (25 %): in a run each order loses ~190 lines, whose
// tombstones stay in RocksDB's memtable (nothing is flushed or compacted in
// a run) and are stepped over by every scan of the order. Arg 2:
// spec.aggregate_cache_bytes (0: every version scans the root's children;
// 8 MiB: the default).
//
// items/s = versions/s, per CPU second of the whole process (RocksDB's
// background threads included). cached/version: the share of versions built
// from the cache (cdc-aggregate-builds-cached-total). After the loop the bench
// checks that one version was forwarded per transaction and fails otherwise.
//
// Run (see bench/README.md):
//   build/dev/bin/aggregate_join_bench --benchmark_repetitions=3
//       --benchmark_report_aggregates_only=true

#include <cstdint>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"
#include "benchmark/benchmark.h"
#include "engine/metrics.h"
#include "engine/record.h"
#include "operators/internal/aggregate_join.h"
#include "operators/internal/cdc_messages.h"
#include "operators/internal/codec.h"
#include "operators/transaction_aggregate.h"
#include "tests/operators/operator_bench.h"

namespace tributary {
namespace {

using bench::FakeContext;
using bench::OpenStack;
using bench::StoreStack;
using internal::AggregateJoin;
using internal::Decision;
using internal::RowChange;
using internal::SliceOp;

constexpr int64_t kTransactions = 20'000;  // per run
constexpr int64_t kTxPerCommit = 100;
constexpr int kMixOrders = 16;

TransactionAggregateSpec MakeSpec(size_t cache_bytes) {
  TransactionAggregateSpec spec = bench::OrdersSpec();
  spec.aggregate_cache_bytes = cache_bytes;
  return spec;
}

// Encodes the records of transactions into one AggregateJoin's input.
class Feeder {
 public:
  Feeder(AggregateJoin& join, FakeContext& context) : join_(join), context_(context) {}

  void Order(int order, std::string_view status) {
    const std::string key = absl::StrCat(order);
    Add(key, SliceOp::Kind::kRootUpsert, 0, key,
        absl::StrCat(R"({"id":)", order,
                     R"(,"customer_id":1382,"order_date":"2024-10-11","status":")", Sv(status),
                     R"("})"));
  }
  void Line(int order, int line, int quantity) {
    const std::string key = absl::StrCat(line);
    Add(absl::StrCat(order), SliceOp::Kind::kChildUpsert, 1, key,
        absl::StrCat(R"({"id":)", line, R"(,"order_id":)", order,
                     R"(,"product":"product-)", line % 97, R"(","quantity":)", quantity,
                     R"(,"price":"12.50","status":"ENTERED"})"));
  }
  void DeleteLine(int order, int line) {
    Add(absl::StrCat(order), SliceOp::Kind::kChildDelete, 1, absl::StrCat(line), "");
  }
  // Releases the transaction: its changes are applied, one version each root.
  absl::Status Release() {
    for (const auto& [key, value] : records_) {
      TRIBUTARY_RETURN_IF_ERROR(Process(key, value));
    }
    records_.clear();
    Decision release;
    release.kind = 'R';
    release.match_id = absl::StrCat(xid_);
    release.position = ++offset_;
    ++xid_;
    std::string broadcast(1, internal::kBroadcastKeyPrefix);
    broadcast.push_back('0');
    return Process(broadcast, internal::EncodeDecisions({release}));
  }

 private:
  void Add(std::string root, SliceOp::Kind kind, uint8_t table, std::string_view key,
           std::string_view row) {
    const std::string unit_id = absl::StrCat(xid_);
    std::string position;
    internal::PutOrderedInt64(position, ++position_);
    RowChange change;
    change.unit_id = unit_id;
    change.position = position;
    change.op = kind == SliceOp::Kind::kChildDelete ? 'd' : 'u';
    change.change.kind = kind;
    change.change.table = table;
    change.change.key = key;
    change.change.row = row;
    records_.emplace_back(std::move(root), internal::EncodeRowChange(change));
  }
  absl::Status Process(std::string_view key, std::string_view value) {
    Record record;
    record.key = key;
    record.value = value;
    record.offset = Offset{++offset_};
    record.timestamp = context_.stream_time();
    return join_.Process(record);
  }

  AggregateJoin& join_;
  FakeContext& context_;
  std::vector<std::pair<std::string, std::string>> records_;  // root, RowChange
  int64_t xid_ = 1000;
  int64_t position_ = 0;
  int64_t offset_ = 0;
};

void BM_AggregateJoin(benchmark::State& state) {
  const bool mix = state.range(0) == 1;
  const int lines = static_cast<int>(state.range(1));
  const TransactionAggregateSpec spec = MakeSpec(static_cast<size_t>(state.range(2)));
  StoreStack roots, children;
  StoreStack pending;
  for (auto [stack, kind, name] :
       {std::tuple{&roots, bench::kRocksDbStack, AggregateJoin::RootsStore(spec)},
        std::tuple{&children, bench::kRocksDbStack, AggregateJoin::ChildrenStore(spec)},
        std::tuple{&pending, bench::kInMemory, AggregateJoin::PendingStore(spec)}}) {
    if (absl::Status s = OpenStack(kind, name, *stack); !s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      return;
    }
  }
  FakeContext context(TaskId{4, 0},
                      {{AggregateJoin::RootsStore(spec), roots.top.get()},
                       {AggregateJoin::ChildrenStore(spec), children.top.get()},
                       {AggregateJoin::PendingStore(spec), pending.top.get()}},
                      {});
  AggregateJoin join(spec);
  Feeder feeder(join, context);
  auto commit = [&]() -> absl::Status {
    TRIBUTARY_RETURN_IF_ERROR(join.PrepareCommit());
    TRIBUTARY_RETURN_IF_ERROR(roots.cache->FlushCache());
    return children.cache->FlushCache();
  };
  absl::Status status = join.Init(context);
  std::mt19937_64 random(7);
  int next_line = 1;
  // grow: the order growing and its lines so far; mix: each order's first
  // and next line ids (its lines are [first, next)).
  int order = 1, lines_so_far = 0;
  std::vector<std::pair<int, int>> mix_lines(kMixOrders);
  if (mix && status.ok()) {
    for (int o = 1; o <= kMixOrders && status.ok(); ++o) {
      feeder.Order(o, "PLACED");
      mix_lines[o - 1].first = next_line;
      for (int l = 0; l < lines; ++l) feeder.Line(o, next_line++, 1);
      mix_lines[o - 1].second = next_line;
      status = feeder.Release();
    }
    if (status.ok()) status = commit();
  }
  const int64_t forwarded_before = context.forwarded();
  int64_t transactions = 0;

  for (auto _ : state) {
    if (!status.ok()) break;
    if (!mix) {
      if (lines_so_far == lines) {
        ++order;
        lines_so_far = 0;
      }
      if (lines_so_far == 0) feeder.Order(order, "PLACED");
      feeder.Line(order, next_line++, 1);
      ++lines_so_far;
    } else {
      const int o = static_cast<int>(random() % kMixOrders) + 1;
      auto& [first, next] = mix_lines[o - 1];
      const int r = static_cast<int>(random() % 100);
      if (r < 60) {
        feeder.Line(o, first + static_cast<int>(random() % (next - first)),
                    static_cast<int>(random() % 9) + 1);
      } else if (r < 75) {
        feeder.Line(o, next++, 1);
        feeder.DeleteLine(o, first++);
      } else {
        feeder.Order(o, random() % 2 == 0 ? "PAID" : "SHIPPED");
      }
    }
    status = feeder.Release();
    if (status.ok() && ++transactions % kTxPerCommit == 0) status = commit();
    context.Advance(1);
  }
  if (status.ok()) status = commit();
  if (!status.ok()) {
    state.SkipWithError(status.ToString().c_str());
    return;
  }
  if (context.forwarded() - forwarded_before != transactions) {
    const std::string error = absl::StrCat(context.forwarded() - forwarded_before,
                                           " versions for ", transactions, " transactions");
    state.SkipWithError(error.c_str());
    return;
  }
  const MetricTags tags{{std::string(metric_names::kTaskTag), context.task_id().ToString()},
                        {std::string(metric_names::kOperatorTag), spec.name}};
  const int64_t cached =
      context.metrics().GetCounter(metric_names::kCdcAggregateBuildsCachedTotal, tags)->value();
  state.SetItemsProcessed(transactions);
  state.counters["cached/version"] = benchmark::Counter(
      transactions > 0 ? static_cast<double>(cached) / static_cast<double>(transactions) : 0);
  state.SetLabel(absl::StrCat(mix ? "mix" : "grow", " cache=", spec.aggregate_cache_bytes));
}

BENCHMARK(BM_AggregateJoin)
    ->ArgNames({"mix", "lines", "cache"})
    ->ArgsProduct({{0, 1}, {100, 1000}, {0, 8 << 20}})
    // The same transactions for every variant: deleted lines leave
    // tombstones in RocksDB that a scan steps over, so a scan's cost grows
    // with the run's length.
    ->Iterations(kTransactions)
    // CPU time of the whole process: RocksDB's flush and compaction threads too.
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace tributary

BENCHMARK_MAIN();
