// kShutdownApplication against the real broker (label kafka): two
// KafkaStreams instances of one application.id in this process split a
// two-partition input; a fatal error injected into the instance that owns
// partition 0, whose uncaught-error handler answers kShutdownApplication,
// stops both: each goes RUNNING -> PENDING_ERROR -> ERROR, the failed one
// with its error, the other with ABORTED naming the request (read from
// <application.id>-control). A third instance started afterwards is not
// stopped by the old request.
#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "engine/kafka_streams.h"
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

// Passes records on; fails on the value "fatal".
class FailOnFatal : public Processor {
 public:
  absl::Status Init(ProcessorContext& context) override {
    context_ = &context;
    return absl::OkStatus();
  }
  absl::Status Process(const Record& record) override {
    if (record.value == "fatal") return absl::InternalError("injected fatal error");
    Record out;
    out.key = record.key;
    out.value = record.value;
    return context_->Forward(out);
  }

 private:
  ProcessorContext* context_ = nullptr;
};

// One instance, the states its listener saw.
struct Instance {
  std::unique_ptr<KafkaStreams> streams;
  std::string state_dir;
  absl::Mutex mu;
  std::vector<std::string> seen ABSL_GUARDED_BY(mu);
  State last ABSL_GUARDED_BY(mu) = State::kCreated;

  bool WaitFor(State state) {
    absl::MutexLock lock(&mu);
    auto reached = [this, state]() ABSL_SHARED_LOCKS_REQUIRED(mu) { return last == state; };
    return mu.AwaitWithTimeout(absl::Condition(&reached), kTimeout);
  }
  std::vector<std::string> Seen() {
    absl::MutexLock lock(&mu);
    return seen;
  }
};

class ShutdownApplicationKafkaTest : public KafkaTest {
 protected:
  void TearDown() override {
    for (auto& instance : instances_) {
      instance->streams.reset();
      std::filesystem::remove_all(instance->state_dir);
    }
  }

  Instance& Open(const std::string& application_id, const std::string& input,
                 const std::string& output) {
    auto instance = std::make_unique<Instance>();
    Instance& ref = *instance;
    instances_.push_back(std::move(instance));
    absl::StatusOr<std::string> dir = MakeTempDir("shutdown_application_kafka_test");
    EXPECT_TRUE(dir.ok()) << dir.status();
    ref.state_dir = dir.value_or("");
    Topology topology;
    topology.AddSource("source", {input})
        .AddProcessor("fail", [] { return std::make_unique<FailOnFatal>(); }, {"source"})
        .AddSink("sink", output, {"fail"});
    absl::StatusOr<StreamsConfig> config = StreamsConfig::FromMap({
        {"application.id", application_id},
        {"bootstrap.servers", BootstrapServers()},
        {"state.dir", ref.state_dir},
        {"consumer.session.timeout.ms", "6000"},
    });
    EXPECT_TRUE(config.ok()) << config.status();
    if (!config.ok()) return ref;
    auto streams = KafkaStreams::Open(std::move(topology), *std::move(config));
    EXPECT_TRUE(streams.ok()) << streams.status();
    if (!streams.ok()) return ref;
    ref.streams = *std::move(streams);
    ref.streams->SetStateListener([&ref](State new_state, State old_state) {
      absl::MutexLock lock(&ref.mu);
      ref.seen.push_back(absl::StrCat(StateName(old_state), "->", StateName(new_state)));
      ref.last = new_state;
    });
    ref.streams->SetUncaughtErrorHandler(
        [](const absl::Status&) { return StreamThreadErrorResponse::kShutdownApplication; });
    return ref;
  }

  std::vector<std::unique_ptr<Instance>> instances_;
};

// Polls `condition` every 50 ms until it holds or kTimeout passes.
template <typename Condition>
bool WaitUntil(Condition condition) {
  const absl::Time deadline = absl::Now() + kTimeout;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return true;
}

TEST_F(ShutdownApplicationKafkaTest, FatalErrorInOneInstanceStopsEveryInstance) {
  const std::string application_id = UniqueName("shutdown-app");
  const std::string input = UniqueTopic("shutdown-app-in");
  const std::string output = UniqueTopic("shutdown-app-out");
  ASSERT_STATUS_OK(CreateTopic(input, 2));
  ASSERT_STATUS_OK(CreateTopic(output, 2));
  Instance& a = Open(application_id, input, output);
  Instance& b = Open(application_id, input, output);
  ASSERT_TRUE(a.streams && b.streams);
  ASSERT_STATUS_OK(a.streams->Start());
  ASSERT_STATUS_OK(b.streams->Start());
  // Both running, one partition (one task) each.
  ASSERT_TRUE(WaitUntil([&] {
    return a.streams->state() == State::kRunning && b.streams->state() == State::kRunning &&
           a.streams->tasks().size() == 1 && b.streams->tasks().size() == 1;
  })) << StateName(a.streams->state()) << " " << StateName(b.streams->state());
  Instance& owner = a.streams->tasks()[0].partition == 0 ? a : b;
  Instance& other = &owner == &a ? b : a;

  // The fatal record goes to partition 0 ("k0" by murmur2 of 2 partitions
  // would not do: the partition is set explicitly).
  absl::StatusOr<KafkaPtr> producer = MakeClient(RD_KAFKA_PRODUCER, {});
  ASSERT_TRUE(producer.ok()) << producer.status();
  ASSERT_EQ(rd_kafka_producev(producer->get(), RD_KAFKA_V_TOPIC(input.c_str()),
                              RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_VALUE(const_cast<char*>("fatal"), 5),
                              RD_KAFKA_V_END),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_EQ(rd_kafka_flush(producer->get(), 30000), RD_KAFKA_RESP_ERR_NO_ERROR);

  ASSERT_TRUE(owner.WaitFor(State::kError)) << ::testing::PrintToString(owner.Seen());
  ASSERT_TRUE(other.WaitFor(State::kError)) << ::testing::PrintToString(other.Seen());
  for (Instance* instance : {&owner, &other}) {
    const std::vector<std::string> seen = instance->Seen();
    ASSERT_GE(seen.size(), 2u);
    EXPECT_THAT(std::vector<std::string>(seen.end() - 2, seen.end()),
                ElementsAre("RUNNING->PENDING_ERROR", "PENDING_ERROR->ERROR"))
        << ::testing::PrintToString(seen);
  }
  EXPECT_THAT(owner.streams->error().ToString(), HasSubstr("injected fatal error"));
  const absl::Status stopped = other.streams->error();
  EXPECT_EQ(stopped.code(), absl::StatusCode::kAborted) << stopped;
  EXPECT_THAT(stopped.message(), HasSubstr("shut down by instance"));
  EXPECT_THAT(stopped.message(), HasSubstr("injected fatal error"));
  EXPECT_THAT(owner.streams->Close(kTimeout).ToString(), HasSubstr("injected fatal error"));
  EXPECT_EQ(other.streams->Close(kTimeout).code(), absl::StatusCode::kAborted);

  // A later instance starts at the control topic's end: the old request is
  // not for it. It reads partition 0 from the committed offset, before the
  // fatal record, so it fails in turn: that is its own error.
  Instance& c = Open(application_id, input, output);
  ASSERT_TRUE(c.streams);
  ASSERT_STATUS_OK(c.streams->Start());
  ASSERT_TRUE(c.WaitFor(State::kError)) << ::testing::PrintToString(c.Seen());
  EXPECT_THAT(c.streams->error().ToString(), HasSubstr("injected fatal error"));
  EXPECT_NE(c.streams->error().code(), absl::StatusCode::kAborted);
}

}  // namespace
}  // namespace tributary::testing
