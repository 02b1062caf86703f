// TxAssembler driven directly (a fake ProcessorContext over its meta store):
// what it persists of a pending transaction brings a new instance on the same
// store (a restarted or moved task) to the same decisions.

#include "operators/internal/tx_assembler.h"

#include <memory>
#include <string>
#include <utility>

#include "gtest/gtest.h"
#include "operators/internal/cdc_messages.h"
#include "operators/transaction_aggregate.h"
#include "tests/operators/operator_bench.h"

namespace tributary {
namespace {

using bench::FakeContext;
using internal::RoutedEvent;
using internal::TxAssembler;

constexpr int kPartitions = 3;

class TxAssemblerRebuildTest : public ::testing::TestWithParam<bench::StoreKind> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(bench::OpenStack(GetParam(), TxAssembler::MetaStore(spec_), stack_).ok());
  }

  // A new assembler (and context) on the store, as a restarted task has;
  // its clock `later_ms` after where the first one started.
  void Start(int64_t later_ms = 0) {
    assembler_.reset();
    context_ = std::make_unique<FakeContext>(
        TaskId{3, 0}, std::map<std::string, KeyValueStore*, std::less<>>{
                          {TxAssembler::MetaStore(spec_), stack_.top.get()}},
        std::map<std::string, int32_t, std::less<>>{{TxAssembler::AggregateTopic(spec_), 3},
                                                     {spec_.root.topic, kPartitions},
                                                     {spec_.children[0].topic, kPartitions}});
    context_->Advance(later_ms);
    assembler_ = std::make_unique<TxAssembler>(spec_);
    ASSERT_TRUE(assembler_->Init(*context_).ok());
  }

  // What a commit does: the decisions go out, the record cache is written.
  void Commit() {
    ASSERT_TRUE(assembler_->PrepareCommit().ok());
    if (stack_.cache != nullptr) {
      ASSERT_TRUE(stack_.cache->FlushCache().ok());
    }
  }

  void Feed(const std::string& key, const RoutedEvent& event) {
    const std::string value = internal::EncodeRoutedEvent(event);
    Record record;
    record.key = key;
    record.value = value;
    record.timestamp = TimestampMs{1};
    ASSERT_TRUE(assembler_->Process(record).ok());
  }
  void Begin(const std::string& xid) {
    const std::string tx_id = xid + ":100" + xid;  // RoutedEvent holds a view of it
    RoutedEvent begin;
    begin.kind = RoutedEvent::Kind::kBegin;
    begin.tx_id = tx_id;
    Feed(xid, begin);
  }
  void End(const std::string& xid, int64_t position, int64_t orders, int64_t lines) {
    const std::string tx_id = xid + ":100" + xid;
    RoutedEvent end;
    end.kind = RoutedEvent::Kind::kEnd;
    end.tx_id = tx_id;
    end.end_position = position;
    end.ts_ms = 1'700'000'000'000 + position;
    end.counts = {{spec_.root.data_collection, orders},
                  {spec_.children[0].data_collection, lines}};
    Feed(xid, end);
  }
  // One router's report: `events` of `xid` from table `table`, partition `partition`.
  // `kind` 'P': events that were bad input.
  void Report(uint8_t table, int32_t partition, const std::string& xid, int64_t events,
              char kind = 'C') {
    RoutedEvent report;
    report.kind = RoutedEvent::Kind::kReport;
    report.table = table;
    report.source_partition = partition;
    report.runs.push_back(internal::Run{kind, partition, xid, -1, events});
    Feed("report", report);
  }

  int64_t Metric(std::string_view name) const {
    for (const MetricSample& sample : context_->metrics().Snapshot()) {
      if (sample.name == name) return sample.value;
    }
    return -1;
  }

  const TransactionAggregateSpec spec_ = bench::OrdersSpec();
  bench::StoreStack stack_;
  std::unique_ptr<FakeContext> context_;
  std::unique_ptr<TxAssembler> assembler_;
};

TEST_P(TxAssemblerRebuildTest, PendingTransactionsSurviveARestart) {
  Start();
  // 1001: BEGIN, END (1 order, 2 lines), the order and one line counted.
  Begin("1001");
  End("1001", 1, 1, 2);
  Report(0, 0, "1001", 1);
  Report(1, 1, "1001", 1);
  // 1002: a line counted before any marker of it.
  Report(1, 2, "1002", 1);
  Commit();
  EXPECT_EQ(Metric("cdc-transactions-released-total"), 0);
  EXPECT_EQ(Metric("cdc-transactions-pending"), 2);

  Start();  // a new instance on the same store
  EXPECT_EQ(Metric("cdc-transactions-pending"), 2);
  // 1001's second line: complete by its END's counts.
  Report(1, 2, "1001", 1);
  EXPECT_EQ(Metric("cdc-transactions-released-total"), 1);
  // 1002's markers: its line was counted before the restart.
  Begin("1002");
  End("1002", 3, 0, 1);
  EXPECT_EQ(Metric("cdc-transactions-released-total"), 2);
  Commit();
  EXPECT_EQ(Metric("cdc-transactions-pending"), 0);

  Start();  // nothing of either is pending after a third start
  EXPECT_EQ(Metric("cdc-transactions-pending"), 0);
}

// How many of a pending transaction's events were bad input survives a
// restart: the transaction then goes out marked partial, not whole.
TEST_P(TxAssemblerRebuildTest, PoisonedEventsSurviveARestart) {
  Start();
  Begin("3001");
  Report(0, 0, "3001", 1);
  Report(1, 1, "3001", 1, 'P');
  Commit();
  Start();
  EXPECT_EQ(Metric("cdc-transactions-pending"), 1);
  Report(1, 1, "3001", 1);
  End("3001", 4, 1, 2);
  // A poisoned event may be a copy of one still to come: it waits until
  // every partition has moved past it (here: events of a later transaction).
  EXPECT_EQ(Metric("cdc-transactions-released-total"), 0);
  End("3002", 5, kPartitions, kPartitions);
  for (int32_t p = 0; p < kPartitions; ++p) {
    Report(0, p, "3002", 1);
    Report(1, p, "3002", 1);
  }
  EXPECT_EQ(Metric("cdc-transactions-released-total"), 2);
  EXPECT_EQ(Metric("cdc-transactions-released-partial-total"), 1);
}

// How long a transaction has been incomplete counts from its END's arrival,
// across a restart of the assembler (which does not restart the timer).
TEST_P(TxAssemblerRebuildTest, IncompleteAgeSurvivesARestart) {
  constexpr int64_t kFourMinutes = 4 * 60 * 1000;
  Start();
  Begin("4001");
  End("4001", 5, 1, 1);
  Report(0, 0, "4001", 1);  // the line never comes
  context_->Advance(kFourMinutes);
  ASSERT_TRUE(context_->FirePunctuators().ok());
  EXPECT_GE(Metric("cdc-oldest-pending-age-ms"), kFourMinutes);
  Commit();

  Start(kFourMinutes);  // four minutes after the first start
  context_->Advance(1000);
  ASSERT_TRUE(context_->FirePunctuators().ok());
  EXPECT_GE(Metric("cdc-oldest-pending-age-ms"), kFourMinutes + 1000);
  EXPECT_EQ(Metric("cdc-transactions-pending"), 1);
}

// A second BEGIN (the connector restarted inside the transaction) makes the
// counts untrusted; a new instance must still know it.
TEST_P(TxAssemblerRebuildTest, ASecondBeginSurvivesARestart) {
  Start();
  Begin("2001");
  Begin("2001");
  Commit();
  Start();
  End("2001", 2, 1, 0);
  Report(0, 0, "2001", 1);
  // Counts match END's, but after a second BEGIN they prove nothing: it
  // waits for every partition to move past it.
  EXPECT_EQ(Metric("cdc-transactions-released-total"), 0);
  EXPECT_EQ(Metric("cdc-transactions-pending"), 1);
}

// A store of the older layout (a key per END, per count, per BEGIN) is
// refused with a message, not read as if nothing were pending.
TEST_P(TxAssemblerRebuildTest, AStoreOfTheOlderLayoutIsRefused) {
  ASSERT_TRUE(stack_.top->Put("E3001", "an END of the older layout").ok());
  context_ = std::make_unique<FakeContext>(
      TaskId{3, 0},
      std::map<std::string, KeyValueStore*, std::less<>>{
          {TxAssembler::MetaStore(spec_), stack_.top.get()}},
      std::map<std::string, int32_t, std::less<>>{{TxAssembler::AggregateTopic(spec_), 3},
                                                   {spec_.root.topic, kPartitions},
                                                   {spec_.children[0].topic, kPartitions}});
  TxAssembler assembler(spec_);
  const absl::Status status = assembler.Init(*context_);
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_NE(status.message().find("older Tributary"), std::string_view::npos) << status;
}

INSTANTIATE_TEST_SUITE_P(Stores, TxAssemblerRebuildTest,
                         ::testing::Values(bench::kInMemory, bench::kInMemoryStack),
                         [](const auto& param_info) {
                           return param_info.param == bench::kInMemory ? "InMemory" : "CachedAndLogged";
                         });

}  // namespace
}  // namespace tributary
