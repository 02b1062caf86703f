// StreamThread, TaskManager, ChangelogReader and StreamsProducer driven
// through fake Kafka clients (tests/support/fake_kafka.h), no broker: the
// abort path (RecoverFromAbort), an unstable committed offset after a
// restore, a fenced producer, a partition revoked while its offsets are being
// committed, and a rebalance in the middle of a restore.
//
// The topology counts records per key in a changelogged RocksDB store and
// writes each new count to "out"; a record whose value is "!" requests a
// commit, so that every commit happens at a point the test chose
// (commit.interval.ms is an hour).
#include <atomic>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/internal/stream_thread.h"
#include "engine/metrics.h"
#include "engine/processor.h"
#include "engine/topology.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "state/rocksdb_store.h"
#include "tests/support/fake_kafka.h"

namespace tributary::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAreArray;
using internal::StreamThread;
using internal::ThreadState;
using KeyValues = std::vector<std::pair<std::string, std::string>>;

constexpr char kChangelog[] = "app-counts-changelog";
constexpr char kTransactionalId[] = "app-p-0";
constexpr absl::Duration kTimeout = absl::Seconds(15);

class CountProcessor : public Processor {
 public:
  absl::Status Init(ProcessorContext& context) override {
    context_ = &context;
    store_ = context.GetStateStore("counts");
    return store_ != nullptr ? absl::OkStatus() : absl::InternalError("no store");
  }
  absl::Status Process(const Record& record) override {
    TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> old, store_->Get(*record.key));
    int64_t count = 0;
    if (old && !absl::SimpleAtoi(*old, &count)) return absl::DataLossError("corrupt count");
    std::string next = absl::StrCat(count + 1);
    TRIBUTARY_RETURN_IF_ERROR(store_->Put(*record.key, next));
    if (record.value == "!") context_->RequestCommit();
    Record out;
    out.key = record.key;
    out.value = next;
    return context_->Forward(out);
  }

 private:
  ProcessorContext* context_ = nullptr;
  KeyValueStore* store_ = nullptr;
};

class StreamThreadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/stream_thread_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    state_directory_ = std::make_unique<internal::StateDirectory>(dir_ + "/app");
    auto rocksdb = RocksDbResources::Create(32 << 20, 8 << 20);
    ASSERT_TRUE(rocksdb.ok()) << rocksdb.status();
    rocksdb_ = *std::move(rocksdb);
    topology_.AddSource("source", {"in"})
        .AddProcessor("count", [] { return std::make_unique<CountProcessor>(); }, {"source"})
        .AddStateStore({"counts", StoreType::kRocksDb, true}, {"count"})
        .AddSink("sink", "out", {"count"});
    ASSERT_TRUE(topology_.Build().ok());
  }

  void TearDown() override {
    if (thread_) {
      thread_->RequestShutdown();
      (void)thread_->Join();
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void CreateTopics(int partitions) {
    kafka_.CreateTopic("in", partitions);
    kafka_.CreateTopic(kChangelog, partitions);
    kafka_.CreateTopic("out", 1);
  }

  void Start(size_t restore_records_per_poll = 10000) {
    internal::StreamThreadOptions options;
    options.application_id = "app";
    options.process_id = "p";
    options.state_dir = dir_ + "/app";
    options.commit_interval = commit_interval_;
    options.repartition_purge_interval = purge_interval_;
    options.poll_timeout = absl::Milliseconds(10);
    options.restore_records_per_poll = restore_records_per_poll;
    options.topology = &topology_;
    options.rocksdb = rocksdb_.get();
    options.metrics = &metrics_;
    options.state_directory = state_directory_.get();
    options.topic_name = [](std::string_view topic) { return std::string(topic); };
    options.clients = [this](const internal::StreamThreadOptions& o, const std::string&)
        -> absl::StatusOr<internal::ThreadClients> {
      internal::ThreadClients clients =
          kafka_.NewThreadClients(o.exactly_once ? internal::TransactionalId(o) : "");
      if (new_deleter_) clients.deleter = new_deleter_();
      return clients;
    };
    thread_ = std::make_unique<StreamThread>(std::move(options));
    thread_->Start();
  }

  bool WaitForOffset(int32_t partition, int64_t offset) {
    return kafka_.WaitUntil([&] { return kafka_.CommittedOffset({"in", partition}) == offset; },
                            kTimeout);
  }

  int64_t Metric(std::string_view name) {
    return metrics_
        .GetCounter(name, {{std::string(metric_names::kThreadTag), "app-p-StreamThread-0"}})
        ->value();
  }

  absl::Duration commit_interval_ = absl::Hours(1);
  absl::Duration purge_interval_ = absl::Seconds(30);
  // Gives each thread run a records deleter; empty: none (nothing purged).
  std::function<std::unique_ptr<internal::RecordsDeleter>()> new_deleter_;
  std::string dir_;
  std::unique_ptr<RocksDbResources> rocksdb_;
  std::unique_ptr<internal::StateDirectory> state_directory_;  // of dir_/app
  Topology topology_;
  Metrics metrics_;
  FakeKafka kafka_;
  std::unique_ptr<StreamThread> thread_;
};

// An abortable error in the middle of a commit: the transaction is aborted,
// the task rebuilt from its changelog (the committed part only), the input
// read again from the committed offset, and no count is output twice.
TEST_F(StreamThreadTest, AbortMidCommitRebuildsStateAndRewinds) {
  CreateTopics(1);
  int commits = 0;
  kafka_.SetFault([&](std::string_view op) {
    if (op == "commit" && ++commits == 2) {
      return absl::AbortedError("commit_transaction: transaction must abort (injected)");
    }
    return absl::OkStatus();
  });
  kafka_.Rebalance({{"in", 0}});
  kafka_.Append("in", 0, {{"k0", "a"}, {"k1", "a"}, {"k2", "!"}});
  Start();
  ASSERT_TRUE(WaitForOffset(0, 3));
  kafka_.Append("in", 0, {{"k0", "b"}, {"k1", "b"}, {"k2", "!"}});
  ASSERT_TRUE(WaitForOffset(0, 6));
  thread_->RequestShutdown();
  ASSERT_TRUE(thread_->Join().ok()) << thread_->result();

  EXPECT_EQ(kafka_.ReadCommitted("out"),
            (KeyValues{{"k0", "1"}, {"k1", "1"}, {"k2", "1"},
                       {"k0", "2"}, {"k1", "2"}, {"k2", "2"}}));
  EXPECT_EQ(commits, 3);  // ok, aborted, ok after the recovery
  EXPECT_EQ(Metric(metric_names::kAbortTotal), 1);
  EXPECT_EQ(Metric(metric_names::kRestoreRecordsTotal), 3);  // the committed changelog
}

// A new instance (no local state: its task restores) is given a partition
// whose offsets another producer's open transaction is committing (an
// instance killed inside a transaction; KIP-447: the committed offset is
// unstable until that transaction ends): nothing is read until it is stable,
// then the partition goes on from the committed offset, never from the
// start. The thread assigned it a second time after the restore "at the
// committed offset", which librdkafka 2.0.2 (as the fake) then started at
// auto.offset.reset: every record counted twice.
TEST_F(StreamThreadTest, UnstableCommittedOffsetIsWaitedForAfterARestore) {
  CreateTopics(1);
  kafka_.Rebalance({{"in", 0}});
  kafka_.Append("in", 0, {{"k0", "a"}, {"k1", "a"}, {"k2", "!"}});
  Start();
  ASSERT_TRUE(WaitForOffset(0, 3));
  thread_->RequestShutdown();
  ASSERT_TRUE(thread_->Join().ok()) << thread_->result();
  thread_.reset();
  std::filesystem::remove_all(dir_ + "/app");
  const int64_t processed = Metric(metric_names::kProcessTotal);

  kafka_.SetOffsetsUnstable({"in", 0}, true);
  kafka_.Rebalance({{"in", 0}});
  Start();
  ASSERT_TRUE(kafka_.WaitUntil(
      [&] { return Metric(metric_names::kRestoreRecordsTotal) == 3; }, kTimeout));
  EXPECT_FALSE(kafka_.WaitUntil(
      [&] { return Metric(metric_names::kProcessTotal) > processed; }, absl::Milliseconds(300)))
      << "read before the committed offset was known";
  kafka_.SetOffsetsUnstable({"in", 0}, false);
  kafka_.Append("in", 0, {{"k0", "b"}, {"k2", "!"}});
  ASSERT_TRUE(WaitForOffset(0, 5));
  thread_->RequestShutdown();
  ASSERT_TRUE(thread_->Join().ok()) << thread_->result();

  EXPECT_EQ(kafka_.ReadCommitted("out"),
            (KeyValues{{"k0", "1"}, {"k1", "1"}, {"k2", "1"}, {"k0", "2"}, {"k2", "2"}}));
  EXPECT_EQ(Metric(metric_names::kProcessTotal), processed + 2);
}

// The producer is fenced while committing (the broker aborted its
// transaction and bumped the epoch, or a zombie's id was taken over): that
// run makes no further transactional call and commits nothing of its open
// transaction; the thread starts again with new clients, restores its task
// and goes on from the last commit, each count output once.
TEST_F(StreamThreadTest, FencedProducerStartsTheThreadAgainFromTheLastCommit) {
  CreateTopics(1);
  kafka_.Rebalance({{"in", 0}});
  kafka_.Append("in", 0, {{"k0", "a"}, {"k1", "!"}});
  Start();
  ASSERT_TRUE(WaitForOffset(0, 2));
  bool fenced = false;
  kafka_.SetFault([&](std::string_view op) {
    if (op == "commit" && !fenced) {
      fenced = true;
      kafka_.Fence(kTransactionalId);
    }
    return absl::OkStatus();
  });
  kafka_.Append("in", 0, {{"k0", "b"}, {"k1", "!"}});
  ASSERT_TRUE(kafka_.WaitUntil(
      [&] { return Metric(metric_names::kThreadRestartsTotal) == 1; }, kTimeout));
  EXPECT_EQ(kafka_.calls_after_fenced(), 0);
  EXPECT_EQ(kafka_.ReadCommitted("out"), (KeyValues{{"k0", "1"}, {"k1", "1"}}));
  // The new member of the group gets the partition (the fake's group is the
  // test's Rebalance).
  kafka_.Rebalance({{"in", 0}});
  ASSERT_TRUE(WaitForOffset(0, 4));
  thread_->RequestShutdown();
  ASSERT_TRUE(thread_->Join().ok()) << thread_->result();
  EXPECT_EQ(kafka_.ReadCommitted("out"),
            (KeyValues{{"k0", "1"}, {"k1", "1"}, {"k0", "2"}, {"k1", "2"}}));
  EXPECT_EQ(Metric(metric_names::kRestoreRecordsTotal), 2);  // the committed changelog
}

// The group moves on while the thread has uncommitted work: the commit made
// on revocation fails (stale generation), so in-1 (now another member's) gets
// no offset from this thread after the revocation and its task is closed;
// in-0's uncommitted work is redone once, from the changelog and the
// committed offset.
TEST_F(StreamThreadTest, PartitionRevokedDuringCommitGetsNoOffsets) {
  CreateTopics(2);
  kafka_.Rebalance({{"in", 0}, {"in", 1}});
  kafka_.Append("in", 0, {{"k0", "!"}});
  kafka_.Append("in", 1, {{"k1", "!"}});
  Start();
  ASSERT_TRUE(WaitForOffset(0, 1) && WaitForOffset(1, 1));
  ASSERT_TRUE(kafka_.WaitUntil([&] { return thread_->task_ids().size() == 2; }, kTimeout));
  // Uncommitted: no commit request.
  kafka_.Append("in", 0, {{"k0", "b"}});
  kafka_.Append("in", 1, {{"k1", "b"}});
  // Both processed: their counts sit in the open transaction.
  ASSERT_TRUE(
      kafka_.WaitUntil([&] { return Metric(metric_names::kProcessTotal) == 4; }, kTimeout));
  kafka_.Rebalance({{"in", 0}});
  const int revoked_at = kafka_.generation();
  EXPECT_TRUE(kafka_.WaitUntil(
      [&] { return thread_->task_ids() == std::vector<TaskId>{TaskId{0, 0}}; }, kTimeout))
      << "the task of the revoked in-1 is still open";
  kafka_.Append("in", 0, {{"k0", "!"}});
  ASSERT_TRUE(WaitForOffset(0, 3));
  thread_->RequestShutdown();
  ASSERT_TRUE(thread_->Join().ok()) << thread_->result();

  for (const FakeKafka::OffsetCommit& commit : kafka_.commit_history()) {
    if (commit.partition == TopicPartition{"in", 1}) {
      EXPECT_LT(commit.generation, revoked_at) << "offset " << commit.offset;
    }
  }
  EXPECT_EQ(kafka_.CommittedOffset({"in", 1}), 1);
  EXPECT_THAT(kafka_.ReadCommitted("out"),
              UnorderedElementsAreArray(KeyValues{
                  {"k0", "1"}, {"k1", "1"}, {"k0", "2"}, {"k0", "3"}}));
  EXPECT_EQ(Metric(metric_names::kAbortTotal), 1);
}

// The state cleaner (state.cleanup.delay.ms) never deletes the directory
// of a task the thread has open, and deletes that of a task revoked from
// it once unused for the delay; a stale directory of another task goes.
TEST_F(StreamThreadTest, StateCleanerKeepsOpenTasksAndDeletesRevokedOnes) {
  CreateTopics(2);
  const std::filesystem::path app = dir_ + "/app";
  std::filesystem::create_directories(app / "0_7");
  kafka_.Rebalance({{"in", 0}, {"in", 1}});
  kafka_.Append("in", 0, {{"k0", "!"}});
  kafka_.Append("in", 1, {{"k1", "!"}});
  Start();  // "!": a commit after the record
  ASSERT_TRUE(WaitForOffset(0, 1) && WaitForOffset(1, 1));
  ASSERT_TRUE(kafka_.WaitUntil([&] { return thread_->task_ids().size() == 2; }, kTimeout));
  // Everything is older than a zero delay a second from now.
  const auto later = [] { return absl::Now() + absl::Seconds(1); };
  EXPECT_THAT(state_directory_->CleanUnused(absl::ZeroDuration(), later()),
              ElementsAre("0_7"));
  EXPECT_TRUE(std::filesystem::exists(app / "0_0"));
  EXPECT_TRUE(std::filesystem::exists(app / "0_1"));

  kafka_.Rebalance({{"in", 0}});
  ASSERT_TRUE(kafka_.WaitUntil(
      [&] { return thread_->task_ids() == std::vector<TaskId>{TaskId{0, 0}}; }, kTimeout));
  EXPECT_THAT(state_directory_->CleanUnused(absl::Hours(1), later()), IsEmpty())
      << "0_1 was closed just now";
  EXPECT_THAT(state_directory_->CleanUnused(absl::ZeroDuration(), later()),
              ElementsAre("0_1"));
  kafka_.Append("in", 0, {{"k0", "!"}});
  ASSERT_TRUE(WaitForOffset(0, 2));
  EXPECT_TRUE(std::filesystem::exists(app / "0_0"));
  thread_->RequestShutdown();
  ASSERT_TRUE(thread_->Join().ok()) << thread_->result();
  EXPECT_THAT(kafka_.ReadCommitted("out"),
              UnorderedElementsAreArray(KeyValues{{"k0", "1"}, {"k1", "1"}, {"k0", "2"}}));
}

// A rebalance while the store is being restored: the restoring task is
// closed with a checkpoint of what it restored, and the restore resumes there
// when the partition comes back: every changelog record restored once, the
// state complete.
TEST_F(StreamThreadTest, RebalanceDuringRestoreResumesWithoutLossOrDuplicates) {
  CreateTopics(1);
  KeyValues changelog;
  for (int i = 0; i < 100; ++i) {
    changelog.emplace_back(absl::StrCat("k", i % 10), absl::StrCat(i / 10 + 1));
  }
  kafka_.Append(kChangelog, 0, changelog);
  std::atomic<bool> rebalanced{false};
  kafka_.SetRestoreHook([&](int64_t restored) {
    if (restored >= 30 && !rebalanced.exchange(true)) kafka_.Rebalance({{"in", 0}});
  });
  kafka_.Rebalance({{"in", 0}});
  KeyValues input;
  for (int i = 0; i < 10; ++i) input.emplace_back(absl::StrCat("k", i), i == 9 ? "!" : "x");
  kafka_.Append("in", 0, input);
  Start(/*restore_records_per_poll=*/10);
  ASSERT_TRUE(WaitForOffset(0, 10));
  thread_->RequestShutdown();
  ASSERT_TRUE(thread_->Join().ok()) << thread_->result();

  EXPECT_TRUE(rebalanced.load());
  EXPECT_EQ(kafka_.generation(), 2);
  KeyValues expected;
  for (int i = 0; i < 10; ++i) expected.emplace_back(absl::StrCat("k", i), "11");
  EXPECT_EQ(kafka_.ReadCommitted("out"), expected);
  EXPECT_EQ(Metric(metric_names::kRestoreRecordsTotal), 100);
}


// A records deleter that keeps every request, checks each offset against the
// group's committed one at that moment, and answers OK or, while `fail`, an
// error for each partition.
struct FakeDeleterLog {
  std::mutex mu;
  std::vector<OffsetMap> requests;
  std::vector<std::string> violations;  // offsets above the committed ones
  bool fail = false;
};

class FakeDeleter : public internal::RecordsDeleter {
 public:
  FakeDeleter(FakeKafka* kafka, FakeDeleterLog* log) : kafka_(kafka), log_(log) {}
  bool Start(const OffsetMap& before) override {
    std::lock_guard<std::mutex> lock(log_->mu);
    for (const auto& [tp, offset] : before) {
      std::optional<int64_t> committed = kafka_->CommittedOffset(tp);
      if (!committed || offset > *committed) {
        log_->violations.push_back(absl::StrCat(tp.first, "[", tp.second, "] below ", offset,
                                                ", committed ", committed.value_or(-1)));
      }
      answers_.push_back({tp, log_->fail ? absl::UnavailableError("injected") : absl::OkStatus(),
                          offset});
    }
    log_->requests.push_back(before);
    return true;
  }
  std::vector<Result> TakeResults() override { return std::exchange(answers_, {}); }

 private:
  FakeKafka* kafka_;
  FakeDeleterLog* log_;
  std::vector<Result> answers_;
};

// Repartition purge: after commits the thread asks to delete the repartition
// partition's records below its committed offset (never above it, never an
// input topic's); failed purges are counted and processing goes on.
TEST_F(StreamThreadTest, RepartitionPurgeDeletesBelowCommittedOffsetsAndSurvivesFailures) {
  topology_ = Topology();
  topology_.AddSource("source", {"in"})
      .AddSink("to-rp", "rp", {"source"})
      .AddRepartitionTopic("rp")
      .AddSource("rp-source", {"rp"})
      .AddProcessor("count", [] { return std::make_unique<CountProcessor>(); }, {"rp-source"})
      .AddStateStore({"counts", StoreType::kRocksDb, true}, {"count"})
      .AddSink("sink", "out", {"count"});
  ASSERT_TRUE(topology_.Build().ok());
  CreateTopics(1);
  kafka_.CreateTopic("rp", 1);
  commit_interval_ = absl::Milliseconds(20);
  purge_interval_ = absl::ZeroDuration();
  FakeDeleterLog log;
  new_deleter_ = [&] { return std::make_unique<FakeDeleter>(&kafka_, &log); };
  kafka_.Rebalance({{"in", 0}, {"rp", 0}});
  kafka_.Append("in", 0, {{"k0", "a"}, {"k1", "a"}, {"k2", "a"}});
  Start();
  auto purged_to_committed = [&] {
    std::optional<int64_t> committed = kafka_.CommittedOffset({"rp", 0});
    std::lock_guard<std::mutex> lock(log.mu);
    return committed && *committed > 0 && !log.requests.empty() &&
           log.requests.back().count({"rp", 0}) > 0 &&
           log.requests.back().at({"rp", 0}) == *committed;
  };
  ASSERT_TRUE(kafka_.WaitUntil([&] {
    return kafka_.ReadCommitted("out").size() == 3 && purged_to_committed();
  }, kTimeout));
  ASSERT_TRUE(kafka_.WaitUntil(
      [&] { return Metric(metric_names::kRepartitionPurgeTotal) > 0; }, kTimeout));

  {
    std::lock_guard<std::mutex> lock(log.mu);
    log.fail = true;
  }
  kafka_.Append("in", 0, {{"k0", "b"}, {"k1", "b"}});
  ASSERT_TRUE(kafka_.WaitUntil([&] {
    return Metric(metric_names::kRepartitionPurgeErrorsTotal) > 0 &&
           kafka_.ReadCommitted("out").size() == 5;
  }, kTimeout));
  kafka_.Append("in", 0, {{"k2", "b"}});
  ASSERT_TRUE(kafka_.WaitUntil([&] { return kafka_.ReadCommitted("out").size() == 6; },
                               kTimeout))
      << "processing stopped after a failed purge";
  EXPECT_NE(thread_->state(), ThreadState::kDead);
  thread_->RequestShutdown();
  ASSERT_TRUE(thread_->Join().ok()) << thread_->result();
  std::lock_guard<std::mutex> lock(log.mu);
  EXPECT_THAT(log.violations, IsEmpty());
  for (const OffsetMap& request : log.requests) {
    for (const auto& [tp, offset] : request) EXPECT_EQ(tp.first, "rp") << "purged an input";
  }
}

}  // namespace
}  // namespace tributary::testing
