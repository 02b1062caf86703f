// Micro-benchmark of the CDC assembler's sequential part: ONE TxAssembler
// (operators/internal/tx_assembler.h, the single task every transaction goes
// through) driven directly, with a fake ProcessorContext, on pre-encoded
// metadata records shaped like cdc-gen's workload. Lives under tests/ because
// it needs internal headers (apps/ and bench/ may include only public ones);
// built only with -DTRIBUTARY_BUILD_BENCH=ON, not a ctest test.
//
// Workload (per "commit" of B transactions): each transaction has 1 order
// event and 1..7 line events (mean 4, so ~5 change events), on 2 tables of 3
// partitions each (order and every line in a partition drawn at random).
// The transaction router's BEGIN/END markers arrive in commit order (END
// positions 1, 3, 5, ...: BEGIN and END share the transaction topic); each of
// the 6 table routers sends one report per commit, its runs merged as
// CdcRouter::Count does (one Run per transaction and partition), inserted at
// a random point in the last quarter of the batch's markers: most ENDs come
// before the reports that complete them, the last few after. Then
// PrepareCommit() (the decisions, broadcast to 3 aggregate partitions) and
// the record cache's flush, as Task::PrepareCommit does.
//
// Stores (arg 0): 0 = bare InMemoryStore; 1 = the engine's stack for a
// logged RocksDB store (RocksDbStore with the WAL off as under exactly-once,
// 64 MiB block cache / 16 MiB write buffers, ChangeLoggingStore writing to a
// discarding sink, CachingStore of 640 KiB: the default 10 MiB cache.max.bytes
// split over the 16 stores of one order-aggregator instance); 2 = the same
// stack over an InMemoryStore (cache and changelog costs without RocksDB).
// Arg 1: transactions per commit. Arg 2: released_retention (0: the spec's
// default, 1,000,000, never reached in a run; a small one measures the
// steady state, where each release also forgets the oldest released id).
// The last variant, 10,000 transactions a commit, is half of what 1 M
// events/s puts into one commit at commit.interval.ms=100 (20,000).
//
// items/s = change events/s; tx/s is a counter; both per CPU second of the
// whole process (RocksDB's background threads included), so other load on
// the machine moves them less than the wall time. changelog/tx: records the
// discarding changelog got per transaction; early_flushes/commit: flushes the
// record cache's budget forced before the commit. After the loop the bench
// checks that every transaction was released (cdc-transactions-released-total
// == transactions fed, cdc-transactions-pending == 0, last broadcast holds
// the last batch) and fails otherwise.
//
// Run (see bench/README.md):
//   build-bench/bin/tx_assembler_bench --benchmark_min_time=1
//       --benchmark_repetitions=3 --benchmark_report_aggregates_only=true

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "engine/metrics.h"
#include "engine/record.h"
#include "operators/internal/cdc_messages.h"
#include "operators/internal/tx_assembler.h"
#include "operators/transaction_aggregate.h"
#include "tests/operators/operator_bench.h"

namespace tributary {
namespace {

using bench::FakeContext;
using bench::OpenStack;
using bench::StoreKind;
using bench::StoreStack;
using internal::Decision;
using internal::RoutedEvent;
using internal::Run;
using internal::TxAssembler;

constexpr int kTables = 2;
constexpr int kPartitions = 3;           // of each table topic
constexpr int kAggregatePartitions = 3;  // of <name>-aggregate-repartition
constexpr int64_t kCommitIntervalMs = 100;
constexpr int64_t kTxPerChunk = 50'000;  // encoded at a time, outside the timing
// TxAssembler sends at most this many decisions per broadcast record
// (kMaxDecisionsPerRecord in tx_assembler.cc).
constexpr int64_t kMaxDecisionsPerRecord = 4096;

TransactionAggregateSpec MakeSpec(int64_t retention) {
  TransactionAggregateSpec spec = bench::OrdersSpec();
  if (retention > 0) spec.released_retention = retention;
  return spec;
}

// One commit's records, pre-encoded.
struct Commit {
  std::vector<std::pair<std::string, std::string>> records;  // key, value
  int64_t events = 0;
  int64_t transactions = 0;
  int64_t last_end_position = -1;
};

class Workload {
 public:
  Workload(const TransactionAggregateSpec& spec, int64_t batch) : spec_(spec), batch_(batch) {}

  // The next `commits` commits of `batch_` transactions each.
  std::vector<Commit> Next(int64_t commits) {
    std::vector<Commit> out(static_cast<size_t>(commits));
    for (Commit& commit : out) Fill(commit);
    return out;
  }

 private:
  struct Tx {
    std::string match_id;
    std::string tx_id;
    int64_t end_position;
    int events[kTables][kPartitions] = {};
    int lines = 0;
  };

  void Fill(Commit& commit) {
    std::vector<Tx> txs(static_cast<size_t>(batch_));
    for (Tx& tx : txs) {
      const int64_t xid = next_xid_++;
      tx.match_id = absl::StrCat(xid);
      tx.tx_id = absl::StrCat(xid, ":", 23'950'296 + 1'000 * xid);
      tx.end_position = next_offset_ + 1;  // BEGIN at next_offset_, END after it
      next_offset_ += 2;
      tx.events[0][random_() % kPartitions] = 1;
      tx.lines = 1 + static_cast<int>(random_() % 7);
      for (int l = 0; l < tx.lines; ++l) ++tx.events[1][random_() % kPartitions];
      commit.events += 1 + tx.lines;
    }
    commit.transactions = batch_;
    commit.last_end_position = next_offset_ - 1;  // the batch's last END

    // Where each router's report goes: after the markers of the first `cut`
    // transactions, cut uniform in [3/4 B, B].
    std::vector<std::pair<int64_t, int>> cuts;  // (cut, router)
    for (int router = 0; router < kTables * kPartitions; ++router) {
      const int64_t lo = batch_ * 3 / 4;
      cuts.emplace_back(lo + static_cast<int64_t>(random_() % (batch_ - lo + 1)), router);
    }
    std::sort(cuts.begin(), cuts.end());
    size_t next_cut = 0;
    for (int64_t i = 0; i <= batch_; ++i) {
      while (next_cut < cuts.size() && cuts[next_cut].first == i) {
        commit.records.push_back(Report(txs, cuts[next_cut].second));
        ++next_cut;
      }
      if (i == batch_) break;
      const Tx& tx = txs[static_cast<size_t>(i)];
      RoutedEvent begin;
      begin.kind = RoutedEvent::Kind::kBegin;
      begin.tx_id = tx.tx_id;
      commit.records.emplace_back(tx.match_id, internal::EncodeRoutedEvent(begin));
      RoutedEvent end;
      end.kind = RoutedEvent::Kind::kEnd;
      end.tx_id = tx.tx_id;
      end.end_position = tx.end_position;
      end.ts_ms = 1'700'000'000'000 + tx.end_position;
      end.counts = {{spec_.root.data_collection, 1},
                    {spec_.children[0].data_collection, tx.lines}};
      commit.records.emplace_back(tx.match_id, internal::EncodeRoutedEvent(end));
    }
  }

  // Router `router` = table * kPartitions + partition: one Run per
  // transaction with events there, in order.
  std::pair<std::string, std::string> Report(const std::vector<Tx>& txs, int router) {
    const int table = router / kPartitions;
    const int partition = router % kPartitions;
    RoutedEvent report;
    report.kind = RoutedEvent::Kind::kReport;
    report.table = static_cast<uint8_t>(table);
    report.source_partition = partition;
    for (const Tx& tx : txs) {
      const int n = tx.events[table][partition];
      if (n > 0) report.runs.push_back(Run{'C', partition, tx.match_id, -1, n});
    }
    return {"report", internal::EncodeRoutedEvent(report)};
  }

  const TransactionAggregateSpec& spec_;
  const int64_t batch_;
  std::mt19937_64 random_{7};
  int64_t next_xid_ = 1000;
  int64_t next_offset_ = 0;
};

void BM_TxAssembler(benchmark::State& state) {
  const auto kind = static_cast<StoreKind>(state.range(0));
  const int64_t batch = state.range(1);
  const TransactionAggregateSpec spec = MakeSpec(state.range(2));
  StoreStack stack;
  if (absl::Status s = OpenStack(kind, TxAssembler::MetaStore(spec), stack); !s.ok()) {
    state.SkipWithError(s.ToString().c_str());
    return;
  }
  FakeContext context(TaskId{3, 0}, {{TxAssembler::MetaStore(spec), stack.top.get()}},
                      {{TxAssembler::AggregateTopic(spec), kAggregatePartitions},
                       {spec.root.topic, kPartitions},
                       {spec.children[0].topic, kPartitions}});
  TxAssembler assembler(spec);
  if (absl::Status s = assembler.Init(context); !s.ok()) {
    state.SkipWithError(s.ToString().c_str());
    return;
  }
  Workload workload(spec, batch);
  const int64_t commits_per_chunk = std::max<int64_t>(1, kTxPerChunk / batch);
  std::vector<Commit> chunk = workload.Next(commits_per_chunk);
  size_t next = 0;
  int64_t events = 0, transactions = 0, commits = 0, last_end_position = -1;
  Record record;
  record.timestamp = TimestampMs{1};
  absl::Status status;

  for (auto _ : state) {
    if (next == chunk.size()) {
      state.PauseTiming();
      chunk = workload.Next(commits_per_chunk);
      next = 0;
      state.ResumeTiming();
    }
    const Commit& commit = chunk[next++];
    for (const auto& [key, value] : commit.records) {
      record.key = key;
      record.value = value;
      status = assembler.Process(record);
      if (!status.ok()) break;
    }
    if (status.ok()) status = assembler.PrepareCommit();
    if (status.ok() && stack.cache != nullptr) status = stack.cache->FlushCache();
    if (!status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      return;
    }
    context.Advance(kCommitIntervalMs);
    events += commit.events;
    transactions += commit.transactions;
    last_end_position = commit.last_end_position;
    ++commits;
  }

  // Every transaction fed was released, in order, and broadcast.
  const MetricTags tags{{std::string(metric_names::kTaskTag), context.task_id().ToString()},
                        {std::string(metric_names::kOperatorTag), spec.name}};
  const int64_t released =
      context.metrics().GetCounter(metric_names::kCdcTransactionsReleasedTotal, tags)->value();
  const int64_t pending =
      context.metrics().GetGauge(metric_names::kCdcTransactionsPending, tags)->value();
  std::string error;
  if (released != transactions || pending != 0) {
    error = absl::StrCat("released ", released, " of ", transactions, " transactions, ",
                         pending, " pending");
  } else if (context.forwarded() !=
             commits * kAggregatePartitions *
                 ((batch + kMaxDecisionsPerRecord - 1) / kMaxDecisionsPerRecord)) {
    error = absl::StrCat(context.forwarded(), " broadcast records for ", commits, " commits");
  } else if (commits > 0) {
    // Every commit releases its own batch: the last record holds its tail.
    const int64_t tail = (batch - 1) % kMaxDecisionsPerRecord + 1;
    auto decisions = internal::DecodeDecisions(context.last_value());
    if (!decisions.ok() || static_cast<int64_t>(decisions->size()) != tail ||
        decisions->back().position != last_end_position) {
      error = "the last broadcast is not the last batch's releases";
    }
  }
  if (!error.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  state.SetItemsProcessed(events);
  state.counters["tx/s"] = benchmark::Counter(static_cast<double>(transactions),
                                              benchmark::Counter::kIsRate);
  state.counters["events/tx"] =
      benchmark::Counter(transactions > 0 ? static_cast<double>(events) / transactions : 0);
  state.counters["changelog/tx"] = benchmark::Counter(
      transactions > 0 ? static_cast<double>(stack.changelog.records_) / transactions : 0);
  if (stack.cache != nullptr && commits > 0) {
    state.counters["early_flushes/commit"] = benchmark::Counter(
        static_cast<double>(stack.cache->stats().early_flushes) / static_cast<double>(commits));
  }
  state.SetLabel(bench::StoreLabel(kind));
}

BENCHMARK(BM_TxAssembler)
    ->ArgNames({"store", "batch", "retention"})
    ->ArgsProduct({{bench::kInMemory, bench::kInMemoryStack, bench::kRocksDbStack},
                   {10, 100, 1000},
                   {0}})
    ->Args({bench::kRocksDbStack, 100, 10'000})
    // 1 M events/s at commit.interval.ms=100 is 20,000 transactions a commit.
    ->Args({bench::kRocksDbStack, 10'000, 0})
    // CPU time of the whole process: RocksDB's flush and compaction threads too.
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace tributary

BENCHMARK_MAIN();
