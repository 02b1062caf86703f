// KafkaStreams' lifecycle on the embedded mock cluster (label unit): the
// state listener's sequence over a run and a close, the default
// uncaught-error handler (the client shuts down), kReplaceThread (a new
// thread goes on from the last commit, exactly once) and its bound, a Close
// that does not finish within its timeout, and a Close before Start.
//
// The topology: "in" -> a processor that passes each value on, fails on
// "boom" while `failures_left` > 0 (or always with -1), and blocks on
// "block" until the test releases it -> "out".
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "engine/kafka_clients.h"
#include "engine/kafka_streams.h"
#include "engine/metrics.h"
#include "engine/processor.h"
#include "engine/streams_config.h"
#include "engine/topology.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/kafka_fixture.h"

namespace tributary::testing {
namespace {

using State = KafkaStreams::State;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr absl::Duration kTimeout = absl::Seconds(60);

struct Injected {
  std::atomic<int> failures_left{0};  // -1: fail on every "boom"
  std::atomic<int> failed{0};
  absl::Notification blocked;  // a "block" record is being processed
  absl::Notification release;  // lets it go on
};
Injected* injected = nullptr;

class InjectingProcessor : public Processor {
 public:
  // Whether this "boom" fails (one of failures_left taken, or -1).
  static bool TakeFailure() {
    int left = injected->failures_left.load();
    while (left > 0) {
      if (injected->failures_left.compare_exchange_weak(left, left - 1)) return true;
    }
    return left < 0;
  }
  absl::Status Init(ProcessorContext& context) override {
    context_ = &context;
    return absl::OkStatus();
  }
  absl::Status Process(const Record& record) override {
    if (record.value == "boom" && TakeFailure()) {
      ++injected->failed;
      return absl::InternalError("injected failure");
    }
    if (record.value == "block" && !injected->release.HasBeenNotified()) {
      if (!injected->blocked.HasBeenNotified()) injected->blocked.Notify();
      injected->release.WaitForNotification();
    }
    Record out;
    out.key = record.key;
    out.value = record.value;
    return context_->Forward(out);
  }

 private:
  ProcessorContext* context_ = nullptr;
};

// Every transition the listener saw, as "OLD->NEW".
class Transitions {
 public:
  void Add(State new_state, State old_state) {
    absl::MutexLock lock(&mu_);
    seen_.push_back(absl::StrCat(StateName(old_state), "->", StateName(new_state)));
    last_ = new_state;
  }
  bool WaitFor(State state) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, state]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return last_ == state; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), kTimeout);
  }
  std::vector<std::string> seen() {
    absl::MutexLock lock(&mu_);
    return seen_;
  }
  // The transitions after the first `from` of them.
  std::vector<std::string> since(size_t from) {
    std::vector<std::string> all = seen();
    return std::vector<std::string>(all.begin() + static_cast<long>(std::min(from, all.size())),
                                    all.end());
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> seen_ ABSL_GUARDED_BY(mu_);
  State last_ ABSL_GUARDED_BY(mu_) = State::kCreated;
};

class KafkaStreamsLifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    injected = &injected_;
    absl::StatusOr<std::string> dir = MakeTempDir("kafka_streams_lifecycle_test");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = *dir;
  }
  void TearDown() override {
    streams_.reset();
    injected = nullptr;
    std::filesystem::remove_all(dir_);
  }

  // Opens the instance on its own mock cluster with "in" and "out".
  void Open() {
    Topology topology;
    topology.AddSource("source", {"in"})
        .AddProcessor("inject", [] { return std::make_unique<InjectingProcessor>(); },
                      {"source"})
        .AddSink("sink", "out", {"inject"});
    absl::StatusOr<StreamsConfig> config = StreamsConfig::FromMap({
        {"application.id", "lifecycle"},
        {"state.dir", dir_},
        {"commit.interval.ms", "50"},
        // The mock cluster's group waits up to a session timeout for a
        // replaced thread's new member.
        {"consumer.session.timeout.ms", "6000"},
    });
    ASSERT_TRUE(config.ok()) << config.status();
    auto streams = KafkaStreams::Open(std::move(topology), *std::move(config));
    ASSERT_TRUE(streams.ok()) << streams.status();
    streams_ = *std::move(streams);
    ASSERT_STATUS_OK(streams_->mock_cluster()->CreateTopic("in", 1));
    ASSERT_STATUS_OK(streams_->mock_cluster()->CreateTopic("out", 1));
    streams_->SetStateListener(
        [this](State new_state, State old_state) { transitions_.Add(new_state, old_state); });
  }

  void Produce(const std::vector<std::string>& values) {
    auto producer = KafkaProducer::Open({{"bootstrap.servers", streams_->bootstrap_servers()}});
    ASSERT_TRUE(producer.ok()) << producer.status();
    for (const std::string& value : values) {
      ASSERT_STATUS_OK((*producer)->Send("in", 0, "k", value));
    }
    ASSERT_STATUS_OK((*producer)->Flush(30000));
  }

  // Reads "out" (read_committed) until it holds `count` records.
  std::vector<std::string> ReadOutput(size_t count) {
    auto reader = KafkaReader::Open({{"bootstrap.servers", streams_->bootstrap_servers()},
                                     {"group.id", "lifecycle-test-reader"}});
    EXPECT_TRUE(reader.ok()) << reader.status();
    if (!reader.ok()) return {};
    EXPECT_TRUE((*reader)->AssignFromBeginning("out", 1).ok());
    std::vector<std::string> values;
    const absl::Time deadline = absl::Now() + kTimeout;
    while (values.size() < count && absl::Now() < deadline) {
      auto record = (*reader)->Poll(100);
      if (record.ok() && record->has_value() && !(*record)->end_of_partition) {
        values.push_back((*record)->value.value_or(""));
      }
    }
    return values;
  }

  Injected injected_;
  std::string dir_;
  Transitions transitions_;
  std::unique_ptr<KafkaStreams> streams_;
};

TEST_F(KafkaStreamsLifecycleTest, ListenerSeesEveryTransitionOfARunAndAClose) {
  Open();
  ASSERT_STATUS_OK(streams_->Start());
  ASSERT_TRUE(transitions_.WaitFor(State::kRunning)) << ::testing::PrintToString(transitions_.seen());
  Produce({"a", "b"});
  EXPECT_THAT(ReadOutput(2), ElementsAre("a", "b"));
  ASSERT_STATUS_OK(streams_->Close(kTimeout));
  EXPECT_EQ(streams_->state(), State::kNotRunning);
  // One rebalance to the first assignment: a consumer group of one.
  EXPECT_THAT(transitions_.seen(),
              ElementsAre("CREATED->REBALANCING", "REBALANCING->RUNNING",
                          "RUNNING->PENDING_SHUTDOWN", "PENDING_SHUTDOWN->NOT_RUNNING"));
  EXPECT_TRUE(streams_->Close().ok()) << "idempotent";
}

TEST_F(KafkaStreamsLifecycleTest, DefaultHandlerShutsTheClientDown) {
  injected_.failures_left = -1;
  Open();
  ASSERT_STATUS_OK(streams_->Start());
  ASSERT_TRUE(transitions_.WaitFor(State::kRunning));
  Produce({"boom"});
  ASSERT_TRUE(transitions_.WaitFor(State::kError)) << ::testing::PrintToString(transitions_.seen());
  EXPECT_THAT(transitions_.since(2), ElementsAre("RUNNING->PENDING_ERROR", "PENDING_ERROR->ERROR"));
  EXPECT_EQ(injected_.failed.load(), 1);
  const absl::Status closed = streams_->Close(kTimeout);
  EXPECT_THAT(closed.ToString(), HasSubstr("injected failure"));
  EXPECT_EQ(streams_->state(), State::kError) << "Close after ERROR changes nothing";
  EXPECT_EQ(transitions_.seen().size(), 4u);
}

TEST_F(KafkaStreamsLifecycleTest, ReplacedThreadGoesOnFromTheLastCommitExactlyOnce) {
  injected_.failures_left = 2;
  Open();
  std::atomic<int> asked{0};
  streams_->SetUncaughtErrorHandler([&asked](const absl::Status& error) {
    EXPECT_THAT(error.ToString(), HasSubstr("injected failure"));
    ++asked;
    return StreamThreadErrorResponse::kReplaceThread;
  });
  ASSERT_STATUS_OK(streams_->Start());
  ASSERT_TRUE(transitions_.WaitFor(State::kRunning));
  Produce({"a", "boom", "c"});
  // "a" was in the aborted transaction of each failed thread; the output
  // (read_committed) has every record once.
  EXPECT_THAT(ReadOutput(3), ElementsAre("a", "boom", "c"));
  EXPECT_EQ(asked.load(), 2);
  EXPECT_EQ(injected_.failed.load(), 2);
  int64_t replacements = 0;
  for (const MetricSample& sample : streams_->metrics().Snapshot()) {
    if (sample.name == metric_names::kThreadReplacementsTotal) replacements += sample.value;
  }
  EXPECT_EQ(replacements, 2);
  ASSERT_TRUE(transitions_.WaitFor(State::kRunning));
  ASSERT_STATUS_OK(streams_->Close(kTimeout));
  EXPECT_EQ(streams_->state(), State::kNotRunning);
  // Each replacement: REBALANCING until the new thread has its assignment.
  EXPECT_THAT(transitions_.seen(),
              ElementsAre("CREATED->REBALANCING", "REBALANCING->RUNNING",
                          "RUNNING->REBALANCING", "REBALANCING->RUNNING",
                          "RUNNING->REBALANCING", "REBALANCING->RUNNING",
                          "RUNNING->PENDING_SHUTDOWN", "PENDING_SHUTDOWN->NOT_RUNNING"));
}

TEST_F(KafkaStreamsLifecycleTest, ReplacementsInARowWithoutACommitAreBounded) {
  injected_.failures_left = -1;
  Open();
  std::atomic<int> asked{0};
  streams_->SetUncaughtErrorHandler(
      [&asked](const absl::Status&) {
        ++asked;
        return StreamThreadErrorResponse::kReplaceThread;
      },
      /*max_replacements_in_a_row=*/2);
  ASSERT_STATUS_OK(streams_->Start());
  ASSERT_TRUE(transitions_.WaitFor(State::kRunning));
  Produce({"boom"});
  ASSERT_TRUE(transitions_.WaitFor(State::kError)) << ::testing::PrintToString(transitions_.seen());
  // Two replacements; the third failure in a row shuts the client down.
  EXPECT_EQ(asked.load(), 3);
  EXPECT_EQ(injected_.failed.load(), 3);
  EXPECT_THAT(streams_->Close(kTimeout).ToString(), HasSubstr("injected failure"));
}

TEST_F(KafkaStreamsLifecycleTest, CloseThatDoesNotFinishInTimeSaysSoAndCanBeWaitedFor) {
  Open();
  ASSERT_STATUS_OK(streams_->Start());
  ASSERT_TRUE(transitions_.WaitFor(State::kRunning));
  Produce({"block"});
  ASSERT_TRUE(injected_.blocked.WaitForNotificationWithTimeout(kTimeout));
  // The thread is inside Process until released: the close cannot finish.
  const absl::Status closed = streams_->Close(absl::Milliseconds(200));
  EXPECT_EQ(closed.code(), absl::StatusCode::kDeadlineExceeded) << closed;
  EXPECT_THAT(closed.message(), HasSubstr("stream thread(s) 0"));
  EXPECT_EQ(streams_->state(), State::kPendingShutdown);
  injected_.release.Notify();
  ASSERT_STATUS_OK(streams_->Close(kTimeout));
  EXPECT_EQ(streams_->state(), State::kNotRunning);
  EXPECT_THAT(ReadOutput(1), ElementsAre("block")) << "the close committed it";
}

TEST_F(KafkaStreamsLifecycleTest, CloseBeforeStart) {
  Open();
  ASSERT_STATUS_OK(streams_->Close());
  EXPECT_EQ(streams_->state(), State::kNotRunning);
  EXPECT_THAT(transitions_.seen(),
              ElementsAre("CREATED->PENDING_SHUTDOWN", "PENDING_SHUTDOWN->NOT_RUNNING"));
  EXPECT_EQ(streams_->Start().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace tributary::testing
