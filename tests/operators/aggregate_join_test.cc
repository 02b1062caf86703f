// AggregateJoin on its own: a big release cut into pieces survives a crash
// between them (the record comes again after a restart on the committed
// stores, and applies only what the pieces before did not).
#include "operators/internal/aggregate_join.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "operators/internal/cdc_messages.h"
#include "operators/internal/codec.h"
#include "operators/transaction_aggregate.h"
#include "tests/operators/operator_bench.h"

namespace tributary {
namespace {

using bench::FakeContext;
using bench::StoreStack;
using internal::AggregateJoin;
using internal::Decision;
using internal::RowChange;
using internal::SliceOp;

using Output = std::vector<std::pair<std::string, std::string>>;

// The aggregate topic's records of one transaction: `orders` orders of
// `lines` lines each, then its release decision.
std::vector<std::pair<std::string, std::string>> BigTransaction(int orders, int lines) {
  std::vector<std::pair<std::string, std::string>> records;
  int64_t position = 0;
  auto add = [&](const std::string& root, SliceOp::Kind kind, uint8_t table,
                 const std::string& key, const std::string& row) {
    std::string sortable;
    internal::PutOrderedInt64(sortable, ++position);
    RowChange change;
    change.unit_id = "900";
    change.position = sortable;
    change.op = 'c';
    change.change.kind = kind;
    change.change.table = table;
    change.change.key = key;
    change.change.row = row;
    records.emplace_back(root, internal::EncodeRowChange(change));
  };
  for (int order = 1; order <= orders; ++order) {
    const std::string root = absl::StrCat(order);
    add(root, SliceOp::Kind::kRootUpsert, 0, root,
        absl::StrCat(R"({"id":)", order, R"(,"status":"PLACED"})"));
    for (int line = 0; line < lines; ++line) {
      const std::string key = absl::StrCat(order * 100 + line);
      add(root, SliceOp::Kind::kChildUpsert, 1, key,
          absl::StrCat(R"({"id":)", key, R"(,"order_id":)", order, "}"));
    }
  }
  Decision release;
  release.kind = 'R';
  release.match_id = "900";
  release.position = 7;
  std::string broadcast(1, internal::kBroadcastKeyPrefix);
  broadcast.push_back('0');
  records.emplace_back(broadcast, internal::EncodeDecisions({release}));
  return records;
}

class AggregateJoinPiecesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spec_.release_piece_changes = 10;
    // The roots and children stores as the engine stacks them (cache and
    // changelog); the pending store as it is: local, no changelog.
    ASSERT_TRUE(bench::OpenStack(bench::kInMemoryStack, AggregateJoin::RootsStore(spec_), roots_)
                    .ok());
    ASSERT_TRUE(bench::OpenStack(bench::kInMemoryStack, AggregateJoin::ChildrenStore(spec_),
                                 children_)
                    .ok());
    ASSERT_TRUE(
        bench::OpenStack(bench::kInMemory, AggregateJoin::PendingStore(spec_), pending_).ok());
  }

  // A new AggregateJoin (a restarted task) on the committed stores.
  void Start(Output* output) {
    join_.reset();
    context_ = std::make_unique<FakeContext>(
        TaskId{4, 0},
        std::map<std::string, KeyValueStore*, std::less<>>{
            {AggregateJoin::RootsStore(spec_), roots_.top.get()},
            {AggregateJoin::ChildrenStore(spec_), children_.top.get()},
            {AggregateJoin::PendingStore(spec_), pending_.top.get()}},
        std::map<std::string, int32_t, std::less<>>{});
    context_->accept_unfinished = true;
    context_->outputs = output;
    join_ = std::make_unique<AggregateJoin>(spec_);
    ASSERT_TRUE(join_->Init(*context_).ok());
  }

  // What the stream thread's commit does to the stores.
  void Commit() {
    ASSERT_TRUE(join_->PrepareCommit().ok());
    for (StoreStack* stack : {&roots_, &children_, &pending_}) {
      if (stack->cache != nullptr) {
        ASSERT_TRUE(stack->cache->FlushCache().ok());
      }
    }
  }

  // Processes records[from...] in order, committing after each unfinished
  // one, and stops after `crash_after` unfinished pieces (-1: never).
  // Returns the index reached (records.size() when done).
  size_t Run(const std::vector<std::pair<std::string, std::string>>& records, size_t from,
             int crash_after) {
    int pieces = 0;
    for (size_t i = from; i < records.size();) {
      Record record;
      record.key = records[i].first;
      record.value = records[i].second;
      record.offset = Offset{static_cast<int64_t>(i)};
      EXPECT_TRUE(join_->Process(record).ok());
      if (!context_->TakeUnfinished()) {
        ++i;
        continue;
      }
      Commit();
      if (++pieces == crash_after) return i;
    }
    Commit();
    return records.size();
  }

  TransactionAggregateSpec spec_ = bench::OrdersSpec();
  StoreStack roots_, children_, pending_;
  std::unique_ptr<FakeContext> context_;
  std::unique_ptr<AggregateJoin> join_;
};

TEST_F(AggregateJoinPiecesTest, ACrashBetweenPiecesEmitsEachVersionOnce) {
  const auto records = BigTransaction(/*orders=*/12, /*lines=*/4);  // 60 changes
  Output output;
  Start(&output);
  const size_t at = Run(records, 0, /*crash_after=*/2);
  ASSERT_EQ(at, records.size() - 1) << "stopped at the release";
  const size_t before_crash = output.size();
  EXPECT_EQ(before_crash, 4u) << "two pieces of two orders (10 changes each)";

  // The restarted task reads from its committed offset: the held changes
  // again (held in memory only), then the release, which resumes.
  Start(&output);
  ASSERT_EQ(Run(records, 0, /*crash_after=*/-1), records.size());
  // One version of each order (in the held changes' key order), the first.
  std::multiset<std::string> roots;
  for (const auto& [root, value] : output) {
    roots.insert(root);
    EXPECT_NE(value.find(R"("version":1)"), std::string::npos) << value;
  }
  std::multiset<std::string> expected;
  for (int order = 1; order <= 12; ++order) expected.insert(absl::StrCat(order));
  EXPECT_EQ(roots, expected);
}

}  // namespace
}  // namespace tributary
