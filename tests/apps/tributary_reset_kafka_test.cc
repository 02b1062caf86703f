// tributary-reset against the real broker (label kafka), run as a child
// process as an operator would run it:
//   - replay (design contract G7): order-aggregator works through cdc-gen's
//     traffic and stops; tributary-reset --to-earliest --state-dir; a second
//     run with the same application.id emits exactly the first run's
//     versions again, per order in the same order (keys, values, version
//     numbers, source_tx). Without the reset of the internal topics and the
//     state, the second run would drop every transaction as already released
//     (the tx-meta store is changelogged), so the test proves the reset too;
//   - while an instance runs, the reset refuses (exit 3, each member named)
//     and changes nothing; --dry-run prints the plan and changes nothing;
//   - --to-latest, --to-offset (clamped), --to-datetime (with and without a
//     zone), --by-duration and --to-earliest commit the offsets Kafka's tool
//     would, read back through the group coordinator; a missing input topic
//     (exit 2) and bad flags (exit 1) change nothing.
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
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
constexpr char kReset[] = TRIBUTARY_RESET_PATH;
// Bounds on observable conditions; a healthy run needs a fraction of them.
constexpr auto kOutputTimeout = 120s;
constexpr auto kConditionTimeout = 60s;
constexpr auto kExitTimeout = 60s;

class TributaryResetKafkaTest : public KafkaTest {
 protected:
  void SetUp() override {
    KafkaTest::SetUp();
    if (HasFatalFailure()) return;
    start_ = Clock::now();
    absl::StatusOr<ScratchDir> dir =
        ScratchDir::Create("tributary_reset_kafka_test", "reset");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = *std::move(dir);
    app_id_ = UniqueName("reset");
  }

  void TearDown() override {
    app_.process.reset();  // SIGKILLs a run still going
    dir_.Finish(HasFailure(), "configs, state dir, logs");
  }

  template <typename... Args>
  void Note(const Args&... args) {
    const double s =
        std::chrono::duration<double>(Clock::now() - start_).count();
    std::printf("[reset %6.2fs] %s\n", s, absl::StrCat(args...).c_str());
    std::fflush(stdout);
  }

  struct ResetRun {
    int exit_code = -1;
    std::string output;  // stdout and stderr
  };

  // Runs tributary-reset for app_id_ with `args` to its end.
  ResetRun RunReset(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {kReset, "--application-id", app_id_,
                                     "--bootstrap-servers", BootstrapServers()};
    argv.insert(argv.end(), args.begin(), args.end());
    const std::string log =
        absl::StrCat(dir_.path(), "/reset.run", ++reset_runs_, ".log");
    ResetRun run;
    absl::StatusOr<std::unique_ptr<ChildProcess>> child =
        ChildProcess::Start(argv, log);
    EXPECT_TRUE(child.ok()) << child.status();
    if (!child.ok()) return run;
    absl::StatusOr<int> status = (*child)->Wait(kExitTimeout);
    EXPECT_TRUE(status.ok()) << status.status();
    run.output = ReadTextFile(log);
    if (status.ok() && WIFEXITED(*status)) run.exit_code = WEXITSTATUS(*status);
    Note("tributary-reset ", absl::StrJoin(args, " "), ": exit ",
         run.exit_code);
    return run;
  }

  // Polls `done` every 50 ms; fails naming `what` after `timeout` or when
  // the order-aggregator run died.
  bool WaitUntil(const std::function<bool()>& done, Clock::duration timeout,
                 const std::string& what) {
    const Clock::time_point deadline = Clock::now() + timeout;
    while (!done()) {
      if (app_.Died()) {
        ADD_FAILURE() << "order-aggregator died while waiting for " << what
                      << "\n"
                      << app_.LogTails();
        return false;
      }
      if (Clock::now() >= deadline) {
        ADD_FAILURE() << "timed out waiting for " << what << "\n"
                      << app_.LogTails();
        return false;
      }
      std::this_thread::sleep_for(50ms);
    }
    return true;
  }

  // The group's committed offsets of every input partition, by topic.
  std::map<std::string, std::vector<int64_t>> Committed(
      const std::map<std::string, int>& topics) {
    std::map<std::string, std::vector<int64_t>> offsets;
    for (const auto& [topic, partitions] : topics) {
      absl::StatusOr<std::vector<int64_t>> committed =
          CommittedOffsets(app_id_, topic, partitions);
      EXPECT_TRUE(committed.ok()) << committed.status();
      if (committed.ok()) offsets[topic] = *std::move(committed);
    }
    return offsets;
  }

  // Every topic whose name starts with "<app_id_>-", with its partitions.
  std::map<std::string, int> AppTopics() {
    absl::StatusOr<std::map<std::string, int>> topics = TopicPartitionCounts();
    EXPECT_TRUE(topics.ok()) << topics.status();
    std::map<std::string, int> mine;
    if (!topics.ok()) return mine;
    for (const auto& [name, partitions] : *topics) {
      if (absl::StartsWith(name, app_id_ + "-")) mine[name] = partitions;
    }
    return mine;
  }

  // How many of the group's committed offsets are of `topics`.
  int CountCommitted(const std::map<std::string, int>& topics) {
    int count = 0;
    for (const auto& [topic, offsets] : Committed(topics)) {
      for (int64_t offset : offsets) count += offset >= 0 ? 1 : 0;
    }
    return count;
  }

  Clock::time_point start_;
  ScratchDir dir_;
  std::string app_id_;
  ChildApp app_;
  int reset_runs_ = 0;
};

// The high watermark of each partition of `topic`.
std::vector<int64_t> EndOffsets(const std::string& topic, int partitions) {
  std::vector<int64_t> ends;
  absl::StatusOr<KafkaPtr> client = MakeClient(RD_KAFKA_PRODUCER, {});
  EXPECT_TRUE(client.ok()) << client.status();
  if (!client.ok()) return ends;
  for (int p = 0; p < partitions; ++p) {
    int64_t low = 0, high = 0;
    const rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
        client->get(), topic.c_str(), p, &low, &high, 10000);
    EXPECT_EQ(err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(err);
    ends.push_back(high);
  }
  return ends;
}

// Per key (order id as JSON text), its records' values in offset order
// ("<tombstone>" for one).
std::map<std::string, std::vector<std::string>> ByKey(
    const std::vector<ConsumedRecord>& records) {
  std::vector<const ConsumedRecord*> sorted;
  for (const ConsumedRecord& r : records) sorted.push_back(&r);
  std::stable_sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) {
    return std::pair(a->partition, a->offset) <
           std::pair(b->partition, b->offset);
  });
  std::map<std::string, std::vector<std::string>> by_key;
  for (const ConsumedRecord* r : sorted) {
    by_key[r->key.value_or("<null>")].push_back(
        r->value.value_or("<tombstone>"));
  }
  return by_key;
}

TEST_F(TributaryResetKafkaTest, ReplayAfterResetEmitsTheSameVersions) {
  // cdc-gen's faulty traffic: repeated events, redelivered transactions,
  // restarts inside transactions, primary-key updates.
  GeneratorOptions options;
  options.seed = 1207;
  options.topic_prefix = UniqueName("reset");
  options.duplicate_rate = 0.05;
  options.redelivery_rate = 0.03;
  options.restart_inside_rate = 0.02;
  options.mix.bulk = 0;
  constexpr int kTablePartitions = 3;
  constexpr int kOutputPartitions = 3;
  constexpr int64_t kTransactions = 400;
  ASSERT_STATUS_OK(
      cdcgen::CreateTopics(BootstrapServers(), options, kTablePartitions));
  const std::string orders = options.TopicName(CdcTopic::kPurchaseOrder);
  const std::string lines = options.TopicName(CdcTopic::kOrderLine);
  const std::string tx = options.TopicName(CdcTopic::kTransaction);
  const std::map<std::string, int> inputs = {
      {orders, kTablePartitions}, {lines, kTablePartitions}, {tx, 1}};
  const std::string input_list = absl::StrJoin({orders, lines, tx}, ",");
  const std::string output = UniqueTopic("reset-out");
  ASSERT_STATUS_OK(CreateTopic(output, kOutputPartitions));

  auto generator = cdcgen::CdcGenerator::Create(options);
  ASSERT_TRUE(generator.ok()) << generator.status();
  auto expected = ExpectedStream::Create(options);
  ASSERT_TRUE(expected.ok()) << expected.status();
  auto producer = cdcgen::MakeCdcProducer(BootstrapServers());
  ASSERT_TRUE(producer.ok()) << producer.status();
  CollectingSink sink;
  auto stats = cdcgen::ProduceTransactions(**producer, **generator,
                                           kTransactions, {}, &sink);
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_STATUS_OK((*expected)->Advance(kTransactions));
  ASSERT_EQ(sink.versions, (*expected)->generator_versions());
  const size_t versions = static_cast<size_t>((*expected)->versions());
  Note("produced ", stats->transactions, " transactions (", stats->messages,
       " records, ", stats->redeliveries, " redeliveries); ", versions,
       " versions expected over ", (*expected)->by_root().size(), " orders");

  app_.name = "order-aggregator";
  const std::string state_dir = dir_.path() + "/state";
  const std::string state_path = state_dir + "/" + app_id_;
  app_.config_path = dir_.path() + "/order-aggregator.properties";
  std::ofstream(app_.config_path)
      << "application.id=" << app_id_ << "\n"
      << "bootstrap.servers=" << BootstrapServers() << "\n"
      << "state.dir=" << state_dir << "\n"
      << "processing.guarantee=exactly_once_v2\n"
      << "commit.interval.ms=100\n"
      << "consumer.session.timeout.ms=6000\n"
      << "orders.topic=" << orders << "\n"
      << "lines.topic=" << lines << "\n"
      << "transaction.topic=" << tx << "\n"
      << "output.topic=" << output << "\n"
      << "dead.letter.topic=" << UniqueTopic("reset-dlq") << "\n"
      << "value.format=raw\n";  // the reference model reads wire values
  auto reader = TopicReader::Open(output, kOutputPartitions);
  ASSERT_TRUE(reader.ok()) << reader.status();
  auto read_until = [&](size_t count) {
    return WaitUntil(
        [&] {
          return (*reader)->Poll(50ms).ok() && (*reader)->size() >= count;
        },
        kOutputTimeout, absl::StrCat(count, " committed versions"));
  };

  // Run 1: every version, then idle with every input offset committed.
  ASSERT_STATUS_OK(app_.Start(
      dir_.path(), {kOrderAggregator, "--config", app_.config_path}));
  ASSERT_TRUE(read_until(versions));
  std::map<std::string, std::vector<int64_t>> ends;
  for (const auto& [topic, partitions] : inputs) {
    ends[topic] = EndOffsets(topic, partitions);
  }
  ASSERT_TRUE(WaitUntil([&] { return Committed(inputs) == ends; },
                        kConditionTimeout,
                        "every input offset committed at its end"));
  Note("run 1: ", (*reader)->size(), " versions; input offsets at the end");

  // While it runs the reset refuses, names the member, changes nothing.
  GroupDescription group;
  ASSERT_TRUE(WaitUntil(
      [&] {
        absl::StatusOr<GroupDescription> d = DescribeGroup(app_id_);
        if (!d.ok()) return false;
        group = *std::move(d);
        return group.state == RD_KAFKA_CONSUMER_GROUP_STATE_STABLE &&
               !group.members.empty();
      },
      kConditionTimeout, "a stable group with members"));
  const std::map<std::string, int> internal = AppTopics();
  std::vector<std::string> internal_names;
  size_t changelogs = 0;
  for (const auto& [name, partitions] : internal) {
    internal_names.push_back(name);
    changelogs += absl::EndsWith(name, "-changelog") ? 1 : 0;
  }
  const std::string listed = absl::StrJoin(internal_names, ", ");
  ASSERT_TRUE(internal.count(app_id_ + "-orders-aggregate-repartition"))
      << listed;
  ASSERT_TRUE(internal.count(app_id_ + "-orders-tx-repartition")) << listed;
  ASSERT_GT(changelogs, 0u) << listed;
  const int internal_committed = CountCommitted(internal);
  ASSERT_GT(internal_committed, 0);  // the repartition topics are read
  Note(internal.size(), " internal topics (", changelogs, " changelogs), ",
       internal_committed, " committed offsets of them");
  const std::vector<std::string> full_reset = {
      "--input-topics", input_list, "--to-earliest", "--state-dir", state_dir};
  ResetRun refused = RunReset(full_reset);
  EXPECT_EQ(refused.exit_code, 3) << refused.output;
  for (const GroupMember& m : group.members) {
    EXPECT_TRUE(absl::StrContains(refused.output, m.client_id))
        << m.client_id << " not named in:\n"
        << refused.output;
  }
  EXPECT_EQ(Committed(inputs), ends);
  EXPECT_EQ(AppTopics(), internal);
  EXPECT_TRUE(std::filesystem::exists(state_path));

  // Stopped: the dry run prints the plan and changes nothing.
  ASSERT_STATUS_OK(app_.Stop(kExitTimeout));
  ASSERT_TRUE(WaitUntil(
      [&] {
        absl::StatusOr<GroupDescription> d = DescribeGroup(app_id_);
        return d.ok() && d->members.empty();
      },
      kConditionTimeout, "the group without members"));
  auto first = ReadWholeTopic(output, kOutputPartitions);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->size(), versions);
  EXPECT_EQ(CheckSequences(*first, (*expected)->by_root()), "");
  std::vector<int64_t> first_last(kOutputPartitions, -1);
  for (const ConsumedRecord& r : *first) {
    first_last[r.partition] = std::max(first_last[r.partition], r.offset);
  }
  std::vector<std::string> dry_run_args = full_reset;
  dry_run_args.push_back("--dry-run");
  ResetRun dry = RunReset(dry_run_args);
  EXPECT_EQ(dry.exit_code, 0) << dry.output;
  EXPECT_TRUE(absl::StrContains(dry.output, "nothing changed")) << dry.output;
  for (const auto& [topic, partitions] : inputs) {
    for (int p = 0; p < partitions; ++p) {
      EXPECT_TRUE(absl::StrContains(
          dry.output, absl::StrCat(topic, "[", p, "] committed ",
                                   ends[topic][p], " -> 0")))
          << topic << "[" << p << "] not in:\n"
          << dry.output;
    }
  }
  for (const std::string& t : internal_names) {
    EXPECT_TRUE(absl::StrContains(dry.output, t)) << t << " not in:\n"
                                                  << dry.output;
  }
  EXPECT_TRUE(absl::StrContains(dry.output, state_path)) << dry.output;
  EXPECT_EQ(Committed(inputs), ends);
  EXPECT_EQ(AppTopics(), internal);
  EXPECT_TRUE(std::filesystem::exists(state_path));

  // The reset: offsets at 0, internal topics and their offsets gone, state
  // removed.
  ResetRun done = RunReset(full_reset);
  ASSERT_EQ(done.exit_code, 0) << done.output;
  Note("reset:\n", done.output);
  std::map<std::string, std::vector<int64_t>> zeros;
  for (const auto& [topic, partitions] : inputs) {
    zeros[topic] = std::vector<int64_t>(partitions, 0);
  }
  EXPECT_EQ(Committed(inputs), zeros);
  EXPECT_EQ(AppTopics(), (std::map<std::string, int>{}));
  EXPECT_EQ(CountCommitted(internal), 0);
  EXPECT_FALSE(std::filesystem::exists(state_path));

  // Run 2, same application.id: the same versions once more.
  ASSERT_STATUS_OK(app_.Start(
      dir_.path(), {kOrderAggregator, "--config", app_.config_path}));
  ASSERT_TRUE(read_until(2 * versions));
  ASSERT_STATUS_OK(app_.Stop(kExitTimeout));
  auto all = ReadWholeTopic(output, kOutputPartitions);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->size(), 2 * versions);
  std::vector<ConsumedRecord> second;
  for (const ConsumedRecord& r : *all) {
    if (r.offset > first_last[r.partition]) second.push_back(r);
  }
  ASSERT_EQ(second.size(), versions);
  const auto first_by_key = ByKey(*first);
  const auto second_by_key = ByKey(second);
  EXPECT_EQ(second_by_key.size(), first_by_key.size());
  size_t differing = 0;
  for (const auto& [key, values] : first_by_key) {
    auto it = second_by_key.find(key);
    if (it == second_by_key.end() || it->second != values) {
      if (differing++ == 0) {
        ADD_FAILURE() << "order " << key << ": run 1 emitted\n  "
                      << absl::StrJoin(values, "\n  ") << "\nrun 2 emitted\n  "
                      << (it == second_by_key.end()
                              ? std::string("nothing")
                              : absl::StrJoin(it->second, "\n  "));
      }
    }
  }
  EXPECT_EQ(differing, 0u) << "orders whose versions differ";
  EXPECT_EQ(CheckSequences(second, (*expected)->by_root()), "");
  Note("replay: ", second.size(), " versions of ", second_by_key.size(),
       " orders compared with run 1's: ", differing, " orders differ");
}

// Produces one record per entry of `stamps` (milliseconds since the epoch) to
// `partition` of `topic`, in order, and waits until all are acknowledged.
absl::Status ProduceStamped(const std::string& topic, int32_t partition,
                            const std::vector<int64_t>& stamps) {
  absl::StatusOr<KafkaPtr> producer = MakeClient(RD_KAFKA_PRODUCER, {});
  if (!producer.ok()) return producer.status();
  for (int64_t stamp : stamps) {
    const std::string value = absl::StrCat("at ", stamp);
    const rd_kafka_resp_err_t err = rd_kafka_producev(
        producer->get(), RD_KAFKA_V_TOPIC(topic.c_str()),
        RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(stamp),
        RD_KAFKA_V_END);
    if (absl::Status s = ToStatus(err, "produce to " + topic); !s.ok()) {
      return s;
    }
  }
  return ToStatus(rd_kafka_flush(producer->get(), 30000), "flush " + topic);
}

std::string Utc(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone());
}

// Each way of choosing the input offsets commits, for the group, what
// Kafka's tool would: two topics of timestamped records (a: 2 partitions
// of 10 records a second apart, an hour ago; b: 5 records 10, 8, 6, 4 and
// 2 hours ago), the group never joined by anyone.
TEST_F(TributaryResetKafkaTest, OffsetsGoWhereTheTargetSays) {
  const std::string a = UniqueTopic("reset-a");
  const std::string b = UniqueTopic("reset-b");
  ASSERT_STATUS_OK(CreateTopic(a, 2));
  ASSERT_STATUS_OK(CreateTopic(b, 1));
  const absl::Time base =
      absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now() - absl::Hours(1)));
  std::vector<int64_t> a_stamps;
  for (int i = 0; i < 10; ++i) {
    a_stamps.push_back(absl::ToUnixMillis(base + absl::Seconds(i)));
  }
  std::vector<int64_t> b_stamps;
  for (int hours : {10, 8, 6, 4, 2}) {
    b_stamps.push_back(absl::ToUnixMillis(absl::Now() - absl::Hours(hours)));
  }
  ASSERT_STATUS_OK(ProduceStamped(a, 0, a_stamps));
  ASSERT_STATUS_OK(ProduceStamped(a, 1, a_stamps));
  ASSERT_STATUS_OK(ProduceStamped(b, 0, b_stamps));
  const std::map<std::string, int> topics = {{a, 2}, {b, 1}};
  using Offsets = std::map<std::string, std::vector<int64_t>>;
  const std::string both = a + "," + b;
  // Runs the reset; it must exit `code` and leave the offsets at `want`.
  auto reset = [&](const std::vector<std::string>& args, int code,
                   const Offsets& want) {
    ResetRun run = RunReset(args);
    EXPECT_EQ(run.exit_code, code) << run.output;
    EXPECT_EQ(Committed(topics), want) << absl::StrJoin(args, " ") << "\n"
                                       << run.output;
    return run.output;
  };

  reset({"--input-topics", both, "--to-latest"}, 0, {{a, {10, 10}}, {b, {5}}});
  // Only the topics named move.
  reset({"--input-topics", a, "--to-offset", "3"}, 0,
        {{a, {3, 3}}, {b, {5}}});
  const std::string clamped =
      reset({"--input-topics", a, "--to-offset", "1000"}, 0,
            {{a, {10, 10}}, {b, {5}}});
  EXPECT_TRUE(absl::StrContains(clamped, "offset 1000 is outside [0, 10]"))
      << clamped;
  // The first record at or after the time, whatever zone names it.
  reset({"--input-topics", a, "--to-datetime",
         Utc(base + absl::Milliseconds(4500))},
        0, {{a, {5, 5}}, {b, {5}}});
  reset({"--input-topics", a, "--to-datetime",
         absl::FormatTime("%Y-%m-%dT%H:%M:%S", base + absl::Seconds(2),
                          absl::UTCTimeZone())},
        0, {{a, {2, 2}}, {b, {5}}});
  reset({"--input-topics", a, "--to-datetime",
         absl::FormatTime("%Y-%m-%dT%H:%M:%S%Ez", base + absl::Seconds(7),
                          absl::FixedTimeZone(2 * 3600))},
        0, {{a, {7, 7}}, {b, {5}}});
  const std::string future =
      reset({"--input-topics", a, "--to-datetime",
             Utc(absl::Now() + absl::Hours(24))},
            0, {{a, {10, 10}}, {b, {5}}});
  EXPECT_TRUE(absl::StrContains(future, "no record at or after")) << future;
  // Now minus the duration: the records of 4 and 2 hours ago are after it.
  reset({"--input-topics", b, "--by-duration", "PT5H"}, 0,
        {{a, {10, 10}}, {b, {3}}});
  reset({"--input-topics", both, "--to-earliest"}, 0, {{a, {0, 0}}, {b, {0}}});

  // What must change nothing: a topic that does not exist, bad flags.
  const std::string missing = reset(
      {"--input-topics", a + "," + UniqueTopic("reset-missing"), "--to-latest"},
      2, {{a, {0, 0}}, {b, {0}}});
  EXPECT_TRUE(absl::StrContains(missing, "do not exist")) << missing;
  reset({"--input-topics", a, "--to-latest", "--to-offset", "4"}, 1,
        {{a, {0, 0}}, {b, {0}}});
  reset({"--input-topics", a, "--to-datetime", "yesterday"}, 1,
        {{a, {0, 0}}, {b, {0}}});
  reset({"--input-topics", a, "--by-duration", "1h"}, 1,
        {{a, {0, 0}}, {b, {0}}});
  reset({"--to-latest"}, 1, {{a, {0, 0}}, {b, {0}}});
}

}  // namespace
}  // namespace tributary::testing
