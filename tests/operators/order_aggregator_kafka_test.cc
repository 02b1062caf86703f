// Real-broker tests of the transaction-consistent order aggregation (label
// `kafka`, broker from `scripts/kafka start`): cdc-gen's Debezium traffic
// (duplicates, redelivered transactions, order lines lagging behind their
// END markers) goes through AddTransactionAggregate, in-process or as the
// order-aggregator program run as a child process, and a read_committed
// reader of the output must see, for every order, exactly the versions the
// independent ReferenceModel computes from the emitted bytes in commit order
// (design contract G1-G5, G8): same length, same aggregates, source_tx.id the
// source transaction, source_tx.position its END marker's offset (strictly
// increasing), version 1..n, tombstones where the order was deleted.
//
// Every test uses its own topics (a unique Debezium topic.prefix),
// application id and temporary directory (state dirs, config files, one log
// per child run); the directory is kept, and its path printed, on failure.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "apps/cdc-gen/cdc_generator.h"
#include "apps/cdc-gen/cdc_producer.h"
#include "apps/cdc-gen/expected_version.h"
#include "apps/cdc-gen/reference_model.h"
#include "base/absl_compat.h"
#include "engine/kafka_streams.h"
#include "engine/streams_config.h"
#include "engine/topology.h"
#include "gtest/gtest.h"
#include "operators/transaction_aggregate.h"
#include "tests/support/aggregate_check.h"
#include "tests/support/child_app.h"
#include "tests/support/kafka_fixture.h"

namespace tributary::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using cdcgen::CdcMessage;
using cdcgen::CdcTopic;
using cdcgen::ExpectedVersion;
using cdcgen::GeneratedTransaction;
using cdcgen::GeneratorOptions;

constexpr char kOrderAggregator[] = ORDER_AGGREGATOR_PATH;
// Bounds on observable conditions; a healthy run needs a fraction of them.
constexpr auto kOutputTimeout = 150s;
constexpr auto kProgressTimeout = 90s;
constexpr auto kExitTimeout = 60s;

class OrderAggregatorKafkaTest : public KafkaTest {
 protected:
  void SetUp() override {
    KafkaTest::SetUp();
    if (HasFatalFailure()) return;
    start_ = Clock::now();
    absl::StatusOr<ScratchDir> dir =
        ScratchDir::Create("order_aggregator_kafka_test", "oagg");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = *std::move(dir);
    app_id_ = UniqueName("oagg");
    child_.name = "order-aggregator";
  }

  void TearDown() override {
    if (background_.joinable()) background_.join();
    if (child_.process != nullptr) child_.process.reset();  // SIGKILLs it
    for (auto& [name, streams] : instances_) {
      absl::Status closed = streams->Close();
      if (!closed.ok()) Note(name, " closed with ", closed.ToString());
    }
    instances_.clear();
    dir_.Finish(HasFailure(), "state dirs, configs, child logs");
  }

  template <typename... Args>
  void Note(const Args&... args) {
    const double s =
        std::chrono::duration<double>(Clock::now() - start_).count();
    std::printf("[oagg %6.2fs] %s\n", s, absl::StrCat(args...).c_str());
    std::fflush(stdout);
  }

  // Topics for `options` (its prefix made unique), the output topic, the
  // generator, its mirror and a producer.
  void SetUpStream(GeneratorOptions options, int table_partitions,
                   int output_partitions) {
    options.topic_prefix = UniqueName("oagg");
    options_ = options;
    ASSERT_STATUS_OK(cdcgen::CreateTopics(BootstrapServers(), options,
                                          table_partitions));
    table_partitions_ = table_partitions;
    output_ = UniqueTopic("oagg-out");
    output_partitions_ = output_partitions;
    dead_letters_ = UniqueTopic("oagg-dlq");
    ASSERT_STATUS_OK(CreateTopic(output_, output_partitions));
    auto generator = cdcgen::CdcGenerator::Create(options);
    ASSERT_TRUE(generator.ok()) << generator.status();
    generator_ = *std::move(generator);
    auto expected = ExpectedStream::Create(options);
    ASSERT_TRUE(expected.ok()) << expected.status();
    expected_ = *std::move(expected);
    auto producer = cdcgen::MakeCdcProducer(BootstrapServers());
    ASSERT_TRUE(producer.ok()) << producer.status();
    producer_ = *std::move(producer);
    auto reader = TopicReader::Open(output_, output_partitions);
    ASSERT_TRUE(reader.ok()) << reader.status();
    committed_ = *std::move(reader);
  }

  // Writes the next `count` source transactions and replays them into the
  // expected stream; the two generators must agree.
  void Produce(int64_t count) {
    absl::StatusOr<cdcgen::ProduceStats> stats = cdcgen::ProduceTransactions(
        *producer_, *generator_, count, produce_options_, &sink_);
    ASSERT_TRUE(stats.ok()) << stats.status();
    ASSERT_NO_FATAL_FAILURE(Account(*stats, count));
  }

  // Produce(count) in a background thread, paced at `rate` transactions per
  // second, until FinishProducing; the test thread must not produce
  // meanwhile.
  void StartProducing(int64_t count, double rate) {
    ASSERT_FALSE(background_.joinable());
    cdcgen::ProduceOptions options = produce_options_;
    options.rate = rate;
    background_count_ = count;
    background_ = std::thread([this, count, options] {
      background_stats_ = cdcgen::ProduceTransactions(
          *producer_, *generator_, count, options, &sink_);
    });
    Note("producing ", count, " transactions at ", rate, "/s");
  }

  void FinishProducing() {
    ASSERT_TRUE(background_.joinable());
    background_.join();
    ASSERT_TRUE(background_stats_.ok()) << background_stats_.status();
    ASSERT_NO_FATAL_FAILURE(Account(*background_stats_, background_count_));
  }

  // Replays what was produced into the expected stream.
  void Account(const cdcgen::ProduceStats& stats, int64_t count) {
    ASSERT_STATUS_OK(expected_->Advance(count));
    messages_ += stats.messages;
    transactions_ += stats.transactions;
    ASSERT_EQ(messages_, expected_->messages());
    ASSERT_EQ(sink_.versions, expected_->generator_versions());
    Note("produced ", stats.transactions, " transactions (",
         stats.redeliveries, " redeliveries, ", stats.messages,
         " records); ", transactions_, " in all, ", expected_->versions(),
         " versions expected over ", expected_->by_root().size(), " orders");
  }

  TransactionAggregateSpec Spec(int aggregate_partitions) const {
    TransactionAggregateSpec spec;
    spec.name = "orders";
    spec.root = {options_.TopicName(CdcTopic::kPurchaseOrder),
                 cdcgen::DataCollection(CdcTopic::kPurchaseOrder), "id", "",
                 ""};
    spec.children = {{options_.TopicName(CdcTopic::kOrderLine),
                      cdcgen::DataCollection(CdcTopic::kOrderLine), "id",
                      "order_id", "lines"}};
    spec.transaction_topic = options_.TopicName(CdcTopic::kTransaction);
    spec.output_topic = output_;
    spec.aggregate_partitions = aggregate_partitions;
    // The reference model reads values as they are on the wire. Readable
    // values (schemas on) are checked on the real connector's samples
    // (debezium_test) and end to end (tests/e2e).
    spec.value_mode = ValueMode::kRaw;
    return spec;
  }

  // Starts an in-process instance of application app_id_ with its own
  // state dir.
  KafkaStreams* StartInstance(const std::string& name, int threads,
                              int aggregate_partitions = 0) {
    Topology topology;
    absl::Status added =
        AddTransactionAggregate(topology, Spec(aggregate_partitions));
    EXPECT_TRUE(added.ok()) << added;
    if (!added.ok()) return nullptr;
    absl::StatusOr<StreamsConfig> config = StreamsConfig::FromMap({
        {"application.id", app_id_},
        {"bootstrap.servers", BootstrapServers()},
        {"state.dir", absl::StrCat(dir_.path(), "/", name, "-state")},
        {"processing.guarantee", "exactly_once_v2"},
        {"num.stream.threads", absl::StrCat(threads)},
        {"commit.interval.ms", "100"},
        {"processing.error.policy", "continue"},
        {"dead.letter.topic", dead_letters_},
        {"consumer.session.timeout.ms", "6000"},
    });
    EXPECT_TRUE(config.ok()) << config.status();
    if (!config.ok()) return nullptr;
    auto streams = KafkaStreams::Open(std::move(topology), *std::move(config));
    EXPECT_TRUE(streams.ok()) << streams.status();
    if (!streams.ok()) return nullptr;
    absl::Status started = (*streams)->Start();
    EXPECT_TRUE(started.ok()) << started;
    if (!started.ok()) return nullptr;
    KafkaStreams* raw = streams->get();
    instances_.emplace_back(name, *std::move(streams));
    Note("started instance ", name, " (", threads, " stream threads)");
    return raw;
  }

  void CloseInstances() {
    for (auto& [name, streams] : instances_) {
      absl::Status closed = streams->Close();
      EXPECT_TRUE(closed.ok()) << name << ": " << closed;
    }
    Note("closed ", instances_.size(), " instance(s)");
  }

  // --- the order-aggregator child ---

  void WriteChildConfig() {
    child_.state_dir = absl::StrCat(dir_.path(), "/child-state");
    child_.config_path =
        absl::StrCat(dir_.path(), "/order-aggregator.properties");
    std::ofstream(child_.config_path)
        << "application.id=" << app_id_ << "\n"
        << "bootstrap.servers=" << BootstrapServers() << "\n"
        << "state.dir=" << child_.state_dir << "\n"
        << "processing.guarantee=exactly_once_v2\n"
        << "num.stream.threads=1\n"
        << "commit.interval.ms=100\n"
        << "consumer.session.timeout.ms=6000\n"
        << "orders.topic=" << options_.TopicName(CdcTopic::kPurchaseOrder)
        << "\n"
        << "lines.topic=" << options_.TopicName(CdcTopic::kOrderLine) << "\n"
        << "transaction.topic=" << options_.TopicName(CdcTopic::kTransaction)
        << "\n"
        << "output.topic=" << output_ << "\n"
        << "dead.letter.topic=" << dead_letters_ << "\n"
        << "value.format=raw\n";  // as Spec(): the model reads wire values
  }

  void StartChild() {
    ASSERT_STATUS_OK(child_.Start(
        dir_.path(), {kOrderAggregator, "--config", child_.config_path}));
    Note("started order-aggregator run ", child_.logs.size(), " (pid ",
         child_.process->pid(), ")");
  }

  void KillChild() {
    const absl::Status killed = child_.Kill(kExitTimeout);
    ASSERT_TRUE(killed.ok()) << killed << "\n" << LogTails();
    ASSERT_STATUS_OK(committed_->Poll(100ms));
    Note("SIGKILLed order-aggregator at ", committed_->size(),
         " committed versions of ", expected_->versions());
  }

  // SIGTERM: the app must close cleanly and exit 0.
  void StopChild() {
    const absl::Status stopped = child_.Stop(kExitTimeout);
    ASSERT_TRUE(stopped.ok()) << stopped << "\n" << LogTails();
    Note("stopped order-aggregator: exit 0");
  }

  std::string LogTails() const { return child_.LogTails(); }

  // --- waiting ---

  // Adds a failure and returns false when an instance or the child died.
  bool Healthy() {
    for (auto& [name, streams] : instances_) {
      if ((streams->state() == KafkaStreams::State::kPendingError ||
         streams->state() == KafkaStreams::State::kError)) {
        ADD_FAILURE() << "instance " << name << " failed: " << streams->error();
        return false;
      }
    }
    if (child_.Died()) {
      ADD_FAILURE() << "order-aggregator died: "
                    << DescribeWaitStatus(*child_.process->wait_status())
                    << "\n"
                    << LogTails();
      return false;
    }
    return true;
  }

  // Polls the committed reader (which doubles as the pause) until `done`;
  // adds a failure naming `what` when `timeout` passes or something dies.
  bool WaitUntil(const std::function<bool()>& done, Clock::duration timeout,
                 const std::string& what) {
    const Clock::time_point deadline = Clock::now() + timeout;
    while (!done()) {
      if (!Healthy()) return false;
      if (Clock::now() >= deadline) {
        ADD_FAILURE() << "timed out waiting for " << what << " ("
                      << committed_->size() << " committed versions of "
                      << expected_->versions() << ")\n"
                      << LogTails();
        return false;
      }
      absl::Status polled = committed_->Poll(50ms);
      if (!polled.ok()) {
        ADD_FAILURE() << polled;
        return false;
      }
    }
    return true;
  }

  // Waits until the read_committed output holds every expected version.
  bool WaitForAllVersions() {
    const size_t want = static_cast<size_t>(expected_->versions());
    const bool ok = WaitUntil([&] { return committed_->size() >= want; },
                              kOutputTimeout,
                              absl::StrCat(want, " committed versions"));
    Note("read ", committed_->size(), " committed versions (", want,
         " expected)");
    return ok;
  }

  // Waits until the current child run's log contains `text`.
  bool WaitForLog(const std::string& text) {
    return WaitUntil(
        [&] {
          return ReadTextFile(child_.logs.back()).find(text) !=
                 std::string::npos;
        },
        kProgressTimeout, absl::StrCat("'", text, "' in ", child_.logs.back()));
  }

  // Reads the whole output (nothing may be writing it any more) and checks
  // every order's sequence of versions against the reference model.
  void ExpectExactSequences() {
    absl::StatusOr<std::vector<ConsumedRecord>> output =
        ReadWholeTopic(output_, output_partitions_);
    ASSERT_TRUE(output.ok()) << output.status();
    int64_t tombstones = 0;
    for (const auto& r : *output) tombstones += r.value ? 0 : 1;
    Note("output holds ", output->size(), " committed records (", tombstones,
         " tombstones); the reference model expects ", expected_->versions(),
         " versions of ", expected_->by_root().size(), " orders");
    const std::string problem = CheckSequences(*output, expected_->by_root());
    EXPECT_EQ(problem, "");
    EXPECT_EQ(static_cast<int64_t>(output->size()), expected_->versions());
  }

  // Says how often the traffic had a primary-key update (two events at one
  // LSN), a restart inside a transaction and a TOAST placeholder; each must
  // have occurred.
  void NoteReplay() {
    const cdcgen::ReferenceReplay& r = expected_->replay();
    Note("traffic: ", r.shared_lsn_events(), " events sharing an LSN, ",
         r.restarts_seen(), " restarts inside transactions (",
         r.undercounting_ends(), " undercounting ENDs), ",
         r.model().placeholders_filled(), " TOAST placeholders, ",
         r.repeats_dropped(), " repeated events, ", r.redeliveries_skipped(),
         " redelivered transactions");
    EXPECT_GT(r.shared_lsn_events(), 0);
    EXPECT_GT(r.restarts_seen(), 0);
    EXPECT_GT(r.undercounting_ends(), 0);
    EXPECT_GT(r.model().placeholders_filled(), 0);
  }

  int64_t MetricSum(KafkaStreams& streams, std::string_view name) {
    int64_t sum = 0;
    for (const MetricSample& sample : streams.metrics().Snapshot()) {
      if (sample.name == name) sum += sample.value;
    }
    return sum;
  }

  Clock::time_point start_;
  ScratchDir dir_;
  std::string app_id_;
  GeneratorOptions options_;
  cdcgen::ProduceOptions produce_options_;
  int table_partitions_ = 0;
  std::string output_;
  int output_partitions_ = 0;
  std::string dead_letters_;
  std::unique_ptr<cdcgen::CdcGenerator> generator_;
  std::unique_ptr<ExpectedStream> expected_;
  std::unique_ptr<KafkaProducer> producer_;
  CollectingSink sink_;
  int64_t messages_ = 0;
  int64_t transactions_ = 0;
  std::thread background_;  // StartProducing's
  int64_t background_count_ = 0;
  absl::StatusOr<cdcgen::ProduceStats> background_stats_;
  std::unique_ptr<TopicReader> committed_;  // read_committed output reader
  std::vector<std::pair<std::string, std::unique_ptr<KafkaStreams>>> instances_;
  ChildApp child_;
};

// Faulty traffic (repeated events, redelivered transactions, lines lagging
// five transactions behind their END markers) through one in-process
// instance with two stream threads: every order's versions are exactly the
// reference model's.
TEST_F(OrderAggregatorKafkaTest, SequencesMatchReferenceModel) {
  GeneratorOptions options;
  options.seed = 101;
  options.schemas = false;
  options.duplicate_rate = 0.05;
  options.redelivery_rate = 0.03;
  options.bulk_lines = 40;
  options.mix.rekey = 6;
  options.restart_inside_rate = 0.02;
  options.long_note_rate = 0.2;
  options.note_unchanged_rate = 0.75;
  ASSERT_NO_FATAL_FAILURE(SetUpStream(options, 3, 3));
  produce_options_.skew_transactions = 5;
  ASSERT_NE(StartInstance("solo", /*threads=*/2), nullptr);
  ASSERT_NO_FATAL_FAILURE(Produce(1500));
  // The second half paced, so that it arrives while the first is processed.
  produce_options_.rate = 1500;
  ASSERT_NO_FATAL_FAILURE(Produce(1500));
  NoteReplay();
  WaitForAllVersions();
  CloseInstances();
  ExpectExactSequences();
}

// Debezium's JSON converter with schemas; two instances of one application
// in this process (own state dirs), the second joining while the first works
// through a backlog; 4-partition table topics and by-order repartition
// topic. Both must own tasks, and the sequences must be exact (G5).
TEST_F(OrderAggregatorKafkaTest, SchemaModeAndTwoInstances) {
  GeneratorOptions options;
  options.seed = 202;
  options.schemas = true;
  options.duplicate_rate = 0.05;
  options.redelivery_rate = 0.03;
  options.mix.bulk = 0;
  options.mix.rekey = 6;
  options.restart_inside_rate = 0.02;
  options.long_note_rate = 0.2;
  options.note_unchanged_rate = 0.75;
  ASSERT_NO_FATAL_FAILURE(SetUpStream(options, 4, 4));
  produce_options_.skew_transactions = 3;
  KafkaStreams* a = StartInstance("a", 1, /*aggregate_partitions=*/4);
  ASSERT_NE(a, nullptr);
  ASSERT_NO_FATAL_FAILURE(Produce(750));
  const size_t first_half = static_cast<size_t>(expected_->versions());
  ASSERT_TRUE(WaitUntil([&] { return committed_->size() >= first_half / 4; },
                        kProgressTimeout, "a's first outputs"));
  KafkaStreams* b = StartInstance("b", 1, /*aggregate_partitions=*/4);
  ASSERT_NE(b, nullptr);
  auto describe = [](const std::vector<TaskId>& tasks) {
    std::string text;
    for (const TaskId& t : tasks) absl::StrAppend(&text, t.ToString(), " ");
    return text;
  };
  // Route: 4 + 4 table partitions + 1 transaction-topic task; assemble: 1;
  // aggregate: 4.
  constexpr size_t kTasks = 14;
  std::vector<TaskId> a_tasks;
  std::vector<TaskId> b_tasks;
  const bool split = WaitUntil(
      [&] {
        a_tasks = a->tasks();
        b_tasks = b->tasks();
        if (a_tasks.empty() || b_tasks.empty()) return false;
        std::set<TaskId> all(a_tasks.begin(), a_tasks.end());
        for (const TaskId& t : b_tasks) {
          if (!all.insert(t).second) return false;  // not settled yet
        }
        return all.size() == kTasks;
      },
      kProgressTimeout,
      "both instances owning distinct tasks, all 14 between them");
  Note("a owns ", describe(a_tasks), "; b owns ", describe(b_tasks));
  EXPECT_TRUE(split) << "a owns " << describe(a->tasks()) << "; b owns "
                     << describe(b->tasks());
  ASSERT_NO_FATAL_FAILURE(Produce(750));
  NoteReplay();
  WaitForAllVersions();
  EXPECT_FALSE(a->tasks().empty());
  EXPECT_FALSE(b->tasks().empty());
  Note("at the end a owns ", describe(a->tasks()), "; b owns ",
       describe(b->tasks()));
  CloseInstances();
  ExpectExactSequences();
}

// order-aggregator as a child process, SIGKILLed three times at different
// points while traffic keeps arriving (paced, in waves), and restarted each
// time: (1) mid-stream, once a read_uncommitted reader sees 250 versions and
// more than the committed reader, i.e. inside a transaction, (2) right after
// the restarted instance's first commit, (3) inside a transaction again once
// it has restored and worked through 150 more versions. Then a clean stop: a
// read_committed reader sees every version once, no duplicate, no gap (G3).
TEST_F(OrderAggregatorKafkaTest, KillNineMidRun) {
  GeneratorOptions options;
  options.seed = 303;
  options.duplicate_rate = 0.05;
  options.redelivery_rate = 0.03;
  options.mix.bulk = 0;
  ASSERT_NO_FATAL_FAILURE(SetUpStream(options, 3, 3));
  produce_options_.skew_transactions = 5;
  WriteChildConfig();
  absl::StatusOr<std::unique_ptr<TopicReader>> dirty =
      TopicReader::Open(output_, output_partitions_, /*read_committed=*/false);
  ASSERT_TRUE(dirty.ok()) << dirty.status();
  // Versions the two readers have seen since the marks, the
  // read_uncommitted one's including open (and aborted) transactions.
  size_t dirty_mark = 0;
  size_t committed_mark = 0;
  auto mark = [&] {
    ASSERT_STATUS_OK((*dirty)->ReadToEnd(kProgressTimeout));
    ASSERT_STATUS_OK(committed_->ReadToEnd(kProgressTimeout));
    dirty_mark = (*dirty)->size();
    committed_mark = committed_->size();
  };
  // At least `n` new uncommitted-reader versions, more than committed ones.
  auto inside_transaction = [&](size_t n) {
    return [&, n] {
      if (!(*dirty)->Poll(20ms).ok()) return false;
      const size_t seen = (*dirty)->size() - dirty_mark;
      return seen >= n && seen > committed_->size() - committed_mark;
    };
  };
  auto kill = [&] {
    ASSERT_STATUS_OK((*dirty)->Poll(20ms));
    const size_t seen = (*dirty)->size();
    ASSERT_NO_FATAL_FAILURE(KillChild());
    Note("  the read_uncommitted reader had seen ", seen, " versions");
  };

  // Wave 1 waits as a backlog; wave 2 streams in while the app runs.
  ASSERT_NO_FATAL_FAILURE(Produce(200));
  ASSERT_NO_FATAL_FAILURE(StartChild());
  ASSERT_NO_FATAL_FAILURE(StartProducing(800, /*rate=*/35));
  // Kill 1: mid-stream, inside a transaction.
  ASSERT_TRUE(WaitUntil(inside_transaction(250), kProgressTimeout,
                        "250 versions and an open transaction"));
  ASSERT_NO_FATAL_FAILURE(kill());

  // Kill 2: right after the restarted instance's first commit.
  ASSERT_NO_FATAL_FAILURE(StartChild());
  ASSERT_TRUE(WaitForLog(" running ("));
  const size_t before_commit = committed_->size();
  ASSERT_TRUE(WaitUntil([&] { return committed_->size() > before_commit; },
                        kProgressTimeout, "a commit after the restart"));
  ASSERT_NO_FATAL_FAILURE(kill());

  // Kill 3: restored, 150 more versions, inside a transaction.
  ASSERT_NO_FATAL_FAILURE(mark());
  ASSERT_NO_FATAL_FAILURE(StartChild());
  ASSERT_TRUE(WaitForLog(" running ("));
  ASSERT_TRUE(WaitUntil(inside_transaction(150), kProgressTimeout,
                        "150 more versions and an open transaction"));
  ASSERT_NO_FATAL_FAILURE(kill());
  ASSERT_NO_FATAL_FAILURE(FinishProducing());

  // The last run gets wave 3 live, then stops cleanly.
  ASSERT_NO_FATAL_FAILURE(StartChild());
  ASSERT_NO_FATAL_FAILURE(StartProducing(500, /*rate=*/150));
  ASSERT_TRUE(WaitForLog(" running ("));
  ASSERT_NO_FATAL_FAILURE(FinishProducing());
  WaitForAllVersions();
  ASSERT_NO_FATAL_FAILURE(StopChild());
  ExpectExactSequences();
}

// Undecodable records among the generated traffic on the table topics go to
// the dead-letter topic, each once, with the error and where it came from in
// its headers; the count is in the metrics; every aggregate stays exact (G8).
TEST_F(OrderAggregatorKafkaTest, PoisonRecordsGoToDeadLetterTopic) {
  GeneratorOptions options;
  options.seed = 404;
  options.duplicate_rate = 0.05;
  options.redelivery_rate = 0.03;
  options.mix.bulk = 0;
  ASSERT_NO_FATAL_FAILURE(SetUpStream(options, 3, 3));
  produce_options_.skew_transactions = 5;
  KafkaStreams* streams = StartInstance("solo", 1);
  ASSERT_NE(streams, nullptr);
  ASSERT_NO_FATAL_FAILURE(Produce(750));

  // A real order-line event with an op Debezium never writes.
  std::string unknown_op = expected_->sample_line_event();
  const size_t op_at = unknown_op.find("\"op\":\"");
  ASSERT_NE(op_at, std::string::npos) << unknown_op;
  unknown_op[op_at + 6] = 'x';
  const std::string orders = options_.TopicName(CdcTopic::kPurchaseOrder);
  const std::string lines = options_.TopicName(CdcTopic::kOrderLine);
  struct Poison {
    std::string topic;
    std::string key;
    std::string value;
  };
  const std::vector<Poison> poison = {
      {orders, R"({"id":990001})", R"({"before":null,"after":{"id":990001,)"},
      {lines, R"({"id":990002})", unknown_op},
      {lines, R"({"id":990003})", "not json at all"},
      {orders, R"({"id":990004})", "[1,2,3]"},
  };
  for (const Poison& p : poison) {
    ASSERT_STATUS_OK(ProduceRecords(p.topic, {{p.key, p.value}}));
  }
  Note("injected ", poison.size(), " poison records");
  ASSERT_NO_FATAL_FAILURE(Produce(750));

  absl::StatusOr<std::unique_ptr<TopicReader>> dlq =
      TopicReader::Open(dead_letters_, 1);
  ASSERT_TRUE(dlq.ok()) << dlq.status();
  WaitForAllVersions();
  WaitUntil(
      [&] {
        absl::Status polled = (*dlq)->Poll(20ms);
        return polled.ok() && (*dlq)->size() >= poison.size();
      },
      kProgressTimeout, "every poison record on the dead-letter topic");
  EXPECT_EQ(MetricSum(*streams, "records-dead-lettered-total"),
            static_cast<int64_t>(poison.size()));
  CloseInstances();
  ExpectExactSequences();

  // The dead-letter topic holds each poison record once, as it was, with
  // headers pointing at the record in its source topic.
  absl::StatusOr<std::vector<ConsumedRecord>> dead =
      ReadWholeTopic(dead_letters_, 1);
  ASSERT_TRUE(dead.ok()) << dead.status();
  EXPECT_EQ(dead->size(), poison.size());
  std::map<std::string, std::vector<ConsumedRecord>> sources;
  for (const std::string& topic : {orders, lines}) {
    auto records = ReadWholeTopic(topic, table_partitions_,
                                  /*read_committed=*/false);
    ASSERT_TRUE(records.ok()) << records.status();
    sources[topic] = *std::move(records);
  }
  for (const Poison& p : poison) {
    int seen = 0;
    for (const ConsumedRecord& d : *dead) {
      if (d.value != p.value) continue;
      ++seen;
      EXPECT_EQ(d.key, p.key);
      const std::optional<std::string> error = d.Header("tributary.error");
      ASSERT_TRUE(error.has_value()) << "no tributary.error on " << p.value;
      EXPECT_FALSE(error->empty());
      EXPECT_EQ(d.Header("tributary.source.topic"), p.topic);
      int64_t partition = -1;
      int64_t offset = -1;
      const auto partition_text = d.Header("tributary.source.partition");
      const auto offset_text = d.Header("tributary.source.offset");
      ASSERT_TRUE(partition_text && offset_text) << p.value;
      ASSERT_TRUE(absl::SimpleAtoi(*partition_text, &partition));
      ASSERT_TRUE(absl::SimpleAtoi(*offset_text, &offset));
      const std::vector<ConsumedRecord>& source = sources[p.topic];
      auto at = std::find_if(source.begin(), source.end(), [&](const auto& r) {
        return r.partition == partition && r.offset == offset;
      });
      ASSERT_NE(at, source.end()) << p.topic << "[" << partition << "]@"
                                  << offset << " does not exist";
      EXPECT_EQ(at->value, p.value)
          << "headers point at " << p.topic << "[" << partition << "]@"
          << offset;
      Note("dead letter ", p.topic, "[", partition, "]@", offset, ": ",
           Truncated(*error, 160));
    }
    EXPECT_EQ(seen, 1) << "poison value " << Truncated(p.value, 80);
  }
}

}  // namespace
}  // namespace tributary::testing
