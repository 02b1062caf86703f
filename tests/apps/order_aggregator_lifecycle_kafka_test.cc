// order-aggregator's stop on SIGTERM against the real broker (label kafka),
// as a child process:
//   - under load (cdc-gen writing all along), SIGTERM ends it with exit 0
//     within commit.interval.ms + 30 s; right after, its consumer group has
//     no members (it left: no wait for a session timeout), every input
//     partition has a committed offset, and a restarted instance goes on so
//     that a read_committed reader sees every version of the reference model
//     exactly once (no duplicate, no gap);
//   - a second SIGTERM during the close ends it at once with exit code 143
//     (the close waits for the stream thread's poll, poll.ms = 60 s here).
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "apps/cdc-gen/cdc_generator.h"
#include "apps/cdc-gen/cdc_producer.h"
#include "gtest/gtest.h"
#include "tests/support/aggregate_check.h"
#include "tests/support/child_app.h"
#include "tests/support/kafka_fixture.h"

namespace tributary::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using cdcgen::CdcTopic;
using cdcgen::GeneratorOptions;

constexpr char kOrderAggregator[] = ORDER_AGGREGATOR_PATH;
// The documented bound: commit.interval.ms (100 here) + 30 s.
constexpr auto kCloseBound = 30100ms;
constexpr auto kConditionTimeout = 60s;
constexpr int kTablePartitions = 2;

class OrderAggregatorLifecycleKafkaTest : public KafkaTest {
 protected:
  void SetUp() override {
    KafkaTest::SetUp();
    if (HasFatalFailure()) return;
    start_ = Clock::now();
    absl::StatusOr<ScratchDir> dir = ScratchDir::Create("order_aggregator_lifecycle", "lifecycle");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = *std::move(dir);
    app_id_ = UniqueName("lifecycle");
    options_.seed = 2026;
    options_.topic_prefix = app_id_;
    options_.duplicate_rate = 0.05;
    options_.redelivery_rate = 0.03;
    options_.mix.bulk = 0;
    ASSERT_STATUS_OK(cdcgen::CreateTopics(BootstrapServers(), options_, kTablePartitions));
    output_ = app_id_ + "-out";
    ASSERT_STATUS_OK(CreateTopic(output_, kTablePartitions));
    app_.name = "order-aggregator";
    app_.state_dir = dir_.path() + "/state";
    app_.config_path = dir_.path() + "/order-aggregator.properties";
  }

  void TearDown() override {
    app_.process.reset();  // SIGKILLs a run still going
    dir_.Finish(HasFailure(), "config, state dir, logs");
  }

  void WriteConfig(const std::string& extra) {
    std::ofstream(app_.config_path)
        << "application.id=" << app_id_ << "\n"
        << "bootstrap.servers=" << BootstrapServers() << "\n"
        << "state.dir=" << app_.state_dir << "\n"
        << "processing.guarantee=exactly_once_v2\n"
        << "commit.interval.ms=100\n"
        << "consumer.session.timeout.ms=6000\n"
        << "orders.topic=" << options_.TopicName(CdcTopic::kPurchaseOrder) << "\n"
        << "lines.topic=" << options_.TopicName(CdcTopic::kOrderLine) << "\n"
        << "transaction.topic=" << options_.TopicName(CdcTopic::kTransaction) << "\n"
        << "output.topic=" << output_ << "\n"
        << "dead.letter.topic=" << app_id_ << "-dlq\n"
        << "value.format=raw\n"
        << extra;
  }

  absl::Status StartApp() {
    return app_.Start(dir_.path(), {kOrderAggregator, "--config", app_.config_path});
  }

  template <typename... Args>
  void Note(const Args&... args) {
    const double s = std::chrono::duration<double>(Clock::now() - start_).count();
    std::printf("[lifecycle %6.2fs] %s\n", s, absl::StrCat(args...).c_str());
    std::fflush(stdout);
  }

  // Polls `done` every 50 ms; fails naming `what` after `timeout` or when
  // the run died.
  bool WaitUntil(const std::function<bool()>& done, Clock::duration timeout,
                 const std::string& what) {
    const Clock::time_point deadline = Clock::now() + timeout;
    while (!done()) {
      if (app_.Died()) {
        ADD_FAILURE() << "order-aggregator died while waiting for " << what << "\n"
                      << app_.LogTails();
        return false;
      }
      if (Clock::now() >= deadline) {
        ADD_FAILURE() << "timed out waiting for " << what << "\n" << app_.LogTails();
        return false;
      }
      std::this_thread::sleep_for(50ms);
    }
    return true;
  }

  bool LogHas(const std::string& text) const {
    return absl::StrContains(ReadTextFile(app_.logs.back()), text);
  }

  Clock::time_point start_;
  ScratchDir dir_;
  std::string app_id_;
  std::string output_;
  GeneratorOptions options_;
  ChildApp app_;
};

TEST_F(OrderAggregatorLifecycleKafkaTest, SigtermUnderLoadLeavesTheGroupAndARestartRepeatsNothing) {
  WriteConfig("");
  auto generator = cdcgen::CdcGenerator::Create(options_);
  ASSERT_TRUE(generator.ok()) << generator.status();
  auto expected = ExpectedStream::Create(options_);
  ASSERT_TRUE(expected.ok()) << expected.status();
  auto producer = cdcgen::MakeCdcProducer(BootstrapServers());
  ASSERT_TRUE(producer.ok()) << producer.status();

  // The load: 20 source transactions at a time, 200 a second, until told to
  // stop (at most 4,000).
  std::atomic<bool> stop_producing{false};
  std::atomic<int64_t> produced{0};
  absl::Status produce_status;
  std::thread load([&] {
    CollectingSink sink;
    cdcgen::ProduceOptions paced;
    paced.rate = 200;
    while (!stop_producing && produced < 4000) {
      auto stats = cdcgen::ProduceTransactions(**producer, **generator, 20, paced, &sink);
      if (!stats.ok()) {
        produce_status = stats.status();
        return;
      }
      produce_status = (*expected)->Advance(20);
      if (!produce_status.ok()) return;
      produced += 20;
    }
  });
  struct JoinLoad {
    std::atomic<bool>& stop;
    std::thread& thread;
    ~JoinLoad() {
      stop = true;
      if (thread.joinable()) thread.join();
    }
  } join_load{stop_producing, load};

  auto reader = TopicReader::Open(output_, kTablePartitions);
  ASSERT_TRUE(reader.ok()) << reader.status();
  auto read_at_least = [&](size_t count) {
    return WaitUntil([&] { return (*reader)->Poll(50ms).ok() && (*reader)->size() >= count; },
                     kConditionTimeout, absl::StrCat(count, " committed versions"));
  };

  ASSERT_STATUS_OK(StartApp());
  ASSERT_TRUE(read_at_least(100));
  const int64_t produced_at_stop = produced;
  const auto signalled = Clock::now();
  {
    const absl::Status stopped = app_.Stop(kCloseBound);
    ASSERT_TRUE(stopped.ok()) << stopped << "\n" << app_.LogTails();
  }
  const double close_s = std::chrono::duration<double>(Clock::now() - signalled).count();
  EXPECT_FALSE(stop_producing) << "the load was still on";
  EXPECT_LT(produced_at_stop, 4000);
  Note("SIGTERM with ", (*reader)->size(), " versions read and ", produced_at_stop,
       " transactions produced: exit 0 after ", close_s, " s");
  EXPECT_TRUE(LogHas("order-aggregator: SIGTERM: closing")) << app_.LogTails();
  EXPECT_TRUE(LogHas("order-aggregator: closed cleanly")) << app_.LogTails();

  // Right after the exit: no member left in the group, offsets committed.
  absl::StatusOr<GroupDescription> group = DescribeGroup(app_id_);
  ASSERT_TRUE(group.ok()) << group.status();
  EXPECT_TRUE(group->members.empty()) << group->members.size() << " members, first "
                                      << group->members.front().client_id;
  EXPECT_EQ(group->state, RD_KAFKA_CONSUMER_GROUP_STATE_EMPTY);
  for (CdcTopic topic : {CdcTopic::kPurchaseOrder, CdcTopic::kOrderLine, CdcTopic::kTransaction}) {
    const std::string name = options_.TopicName(topic);
    const int partitions = topic == CdcTopic::kTransaction ? 1 : kTablePartitions;
    absl::StatusOr<std::vector<int64_t>> committed = CommittedOffsets(app_id_, name, partitions);
    ASSERT_TRUE(committed.ok()) << committed.status();
    for (int p = 0; p < partitions; ++p) {
      EXPECT_GT((*committed)[static_cast<size_t>(p)], 0) << name << "[" << p << "]";
    }
  }

  // A restart goes on; once it has produced more, the load stops and it
  // catches up: every version once.
  const size_t at_stop = (*reader)->size();
  ASSERT_STATUS_OK(StartApp());
  ASSERT_TRUE(read_at_least(at_stop + 50));
  stop_producing = true;
  load.join();
  ASSERT_STATUS_OK(produce_status);
  const size_t versions = static_cast<size_t>((*expected)->versions());
  ASSERT_TRUE(read_at_least(versions));
  {
    const absl::Status stopped = app_.Stop(kCloseBound);
    ASSERT_TRUE(stopped.ok()) << stopped << "\n" << app_.LogTails();
  }
  absl::StatusOr<std::vector<ConsumedRecord>> output = ReadWholeTopic(output_, kTablePartitions);
  ASSERT_TRUE(output.ok()) << output.status();
  const SequenceCounts counts = CountSequenceErrors(*output, (*expected)->by_root());
  Note(produced.load(), " transactions, ", versions, " versions expected, ", output->size(),
       " read: ", counts.duplicates, " duplicates, ", counts.gaps, " gaps, ", counts.extras,
       " extras");
  EXPECT_EQ(CheckSequences(*output, (*expected)->by_root()), "");
  EXPECT_EQ(counts.duplicates, 0);
}

TEST_F(OrderAggregatorLifecycleKafkaTest, SecondSigtermExitsAtOnceWith143) {
  // The close begins after the stream thread's current poll: 60 s idle.
  WriteConfig("poll.ms=60000\n");
  ASSERT_STATUS_OK(StartApp());
  ASSERT_TRUE(WaitUntil(
      [&] {
        absl::StatusOr<GroupDescription> group = DescribeGroup(app_id_);
        return group.ok() && group->state == RD_KAFKA_CONSUMER_GROUP_STATE_STABLE &&
               !group->members.empty();
      },
      kConditionTimeout, "a stable group with a member"));
  ASSERT_STATUS_OK(app_.process->Signal(SIGTERM));
  ASSERT_TRUE(WaitUntil([&] { return LogHas("SIGTERM: closing"); }, kConditionTimeout,
                        "the first signal's log line"));
  ASSERT_STATUS_OK(app_.process->Signal(SIGTERM));
  absl::StatusOr<int> status = app_.process->Wait(10s);
  ASSERT_TRUE(status.ok()) << status.status() << "\n" << app_.LogTails();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 143)
      << DescribeWaitStatus(*status) << "\n" << app_.LogTails();
  EXPECT_TRUE(LogHas("second signal (SIGTERM): exiting at once with code 143"))
      << app_.LogTails();
  EXPECT_FALSE(LogHas("closed cleanly")) << app_.LogTails();
  app_.process.reset();
}

}  // namespace
}  // namespace tributary::testing
