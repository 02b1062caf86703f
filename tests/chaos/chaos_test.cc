// Chaos verification of exactly-once (design contract G3, with G1, G2, G4,
// G8; issue 11), label `chaos`. The test starts its OWN single-node broker
// (scripts/kafka on ports 19392.., dir /tmp/tributary-kafka-chaos, never the
// suite's shared one), a TCP proxy that the broker advertises to the engine,
// and runs order-aggregator (exactly_once_v2) as child processes under
// cdc-gen's traffic while a seeded schedule of faults hits them:
//   - SIGKILL at random moments: during restore (right after a restart,
//     before the task logs that it is running), during commits (while a
//     read_uncommitted reader of the output sees more than the read_committed
//     one) and at random times after start;
//   - a broker restart on its data (scripts/kafka restart) while the engine
//     runs;
//   - a network outage: the proxy resets every connection for 30 s;
//   - a full state disk (the instance's state.dir is a tmpfs the test
//     mounts): exit code 2 with an error naming the full disk, then a
//     restart with space;
//   - two instances of one application.id: one SIGSTOPped past its session
//     timeout and SIGCONTed (a zombie, which must be fenced), then one of the
//     two SIGKILLed under load while the other takes over;
//   - poison records on the table topics outside transactions (truncated
//     JSON, not JSON, unknown op, wrong types, missing fields, a value over
//     1 MB);
//   - poison inside source transactions that change both tables, written by
//     cdc-gen into seeded transactions of the load (cdcgen::TransactionFault):
//     a line insert replaced by a spoiled copy that keeps its transaction
//     block (the transaction is short of it: released partial), a spoiled
//     extra copy of an event (the transaction stays whole), an END counting
//     more events than were written (released partial, the END
//     dead-lettered).
// Afterwards a read_committed reader of the output must hold, for every
// order, exactly the versions cdc-gen's independent ReferenceModel computes
// (each once, in commit order, partial where the model says so, nothing
// else), and the dead-letter topic each poison record (and each overcounting
// END) once with its error header, and the source transaction of those
// inside one. One figure line sums it up:
//   chaos: seed S: K kills (...), B broker restarts, O outages, Z zombies, ...
//
// Scale and seed come from the environment (defaults: the bounded run of
// the suite, about 3 minutes); tests/chaos/README.md has the long run.
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
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
#include "base/absl_compat.h"
#include "gtest/gtest.h"
#include "tests/chaos/tcp_proxy.h"
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

// Bounds on observable conditions; a healthy run needs a fraction of them.
constexpr auto kProgressTimeout = 120s;
constexpr auto kDrainTimeout = 300s;
constexpr auto kExitTimeout = 60s;
constexpr auto kBrokerTimeout = 180s;
// The engine's group session timeout (the chaos broker allows it) and
// transaction timeout: a SIGSTOPped or killed instance is out of the group,
// and its open transaction aborted, within seconds.
constexpr int kSessionTimeoutMs = 3000;
constexpr int kTransactionTimeoutMs = 6000;

// --- options -------------------------------------------------------------

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* text = std::getenv(name);
  int64_t value = 0;
  if (text == nullptr || !absl::SimpleAtoi(text, &value)) return fallback;
  return value;
}

std::string EnvString(const char* name, std::string fallback) {
  const char* text = std::getenv(name);
  return text != nullptr && *text != '\0' ? std::string(text) : fallback;
}

// The run's scale and seed; every one from an environment variable.
struct ChaosOptions {
  uint64_t seed = 11;          // TRIBUTARY_CHAOS_SEED
  int kills = 20;              // TRIBUTARY_CHAOS_KILLS: of the lone instance
  int64_t events = 20000;      // TRIBUTARY_CHAOS_EVENTS: change events, at least
  double rate = 80;            // TRIBUTARY_CHAOS_RATE: source transactions/s
  int outage_s = 30;           // TRIBUTARY_CHAOS_OUTAGE_S
  int port = 19392;            // TRIBUTARY_CHAOS_PORT: broker; +1 controller,
                               // +2 proxy, +3 proxied listener
  std::string kafka_dir = "/tmp/tributary-kafka-chaos";  // TRIBUTARY_CHAOS_KAFKA_DIR
  std::string tmpfs_size = "256m";  // TRIBUTARY_CHAOS_TMPFS_SIZE
  // TRIBUTARY_CHAOS_STRICT=1: an instance exiting by itself outside the
  // phases that expect it (full disk, zombie) fails the test; by default it
  // is restarted, counted and reported in the figure line.
  bool strict = false;
  // TRIBUTARY_CHAOS_KEEP=1: keep the scratch dir (configs, child logs) after
  // a passing run too.
  bool keep = false;

  static ChaosOptions FromEnvironment() {
    ChaosOptions o;
    o.seed = static_cast<uint64_t>(EnvInt("TRIBUTARY_CHAOS_SEED", 11));
    o.kills = static_cast<int>(EnvInt("TRIBUTARY_CHAOS_KILLS", o.kills));
    o.events = EnvInt("TRIBUTARY_CHAOS_EVENTS", o.events);
    o.rate = static_cast<double>(EnvInt("TRIBUTARY_CHAOS_RATE", 80));
    o.outage_s = static_cast<int>(EnvInt("TRIBUTARY_CHAOS_OUTAGE_S", 30));
    o.port = static_cast<int>(EnvInt("TRIBUTARY_CHAOS_PORT", o.port));
    o.kafka_dir = EnvString("TRIBUTARY_CHAOS_KAFKA_DIR", o.kafka_dir);
    o.tmpfs_size = EnvString("TRIBUTARY_CHAOS_TMPFS_SIZE", o.tmpfs_size);
    o.strict = EnvInt("TRIBUTARY_CHAOS_STRICT", 0) != 0;
    o.keep = EnvInt("TRIBUTARY_CHAOS_KEEP", 0) != 0;
    return o;
  }
};

// `text` with its line breaks as spaces, for a figure or finding line.
std::string OneLine(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

// --- the load --------------------------------------------------------------

// A poison record: written to a table topic between two waves of the load,
// so outside any source transaction; or written by cdc-gen inside one.
struct Poison {
  std::string kind;
  std::string topic;
  std::string key;
  std::string value;
  // Inside a source transaction: its xid, which the dead letter's
  // tributary.source.transaction names ("<xid>:<lsn>"); else empty.
  std::string xid;
  // An END counting events never written: the engine dead-letters its own
  // account of it (not its bytes), found by its offset in `topic`; else -1.
  int64_t end_offset = -1;
};

// Bad input for cdc-gen to write into a source transaction of the load's
// next wave (see cdcgen::TransactionFault).
struct FaultRequest {
  cdcgen::TransactionFault fault = cdcgen::TransactionFault::kNone;
  int64_t after_transactions = 0;  // into the wave
};

// Produces cdc-gen's traffic in waves of `wave` source transactions paced at
// `rate`, on its own thread, until asked to stop once at least `events`
// change events are out, every fault asked for is written and a whole wave
// has followed the last (its events move every input partition past the
// faulted transactions). Between waves it writes the poison records queued
// for it, and arms the generator with the faults queued for it. Each wave's
// size and the faults armed before it are kept so that the expected stream
// can be replayed with the same calls.
class Load {
 public:
  Load(cdcgen::CdcGenerator& generator, KafkaProducer& producer,
       cdcgen::ProduceOptions options, int64_t wave, int64_t events)
      : generator_(generator),
        producer_(producer),
        options_(options),
        wave_(wave),
        events_(events) {}
  ~Load() { (void)Finish(); }  // its error was the test's to ask for

  void Start() {
    thread_ = std::thread([this] { Run(); });
  }
  // Queues poison for the next gap between waves.
  void AddPoison(std::vector<Poison> poison) {
    std::lock_guard<std::mutex> lock(mu_);
    for (Poison& p : poison) queued_.push_back(std::move(p));
  }
  // Queues faults for the next wave.
  void AddFaults(std::vector<FaultRequest> faults) {
    std::lock_guard<std::mutex> lock(mu_);
    for (FaultRequest& f : faults) faults_.push_back(f);
  }
  // Whether every queued poison record and fault is written.
  bool PoisonWritten() {
    std::lock_guard<std::mutex> lock(mu_);
    return queued_.empty() && faults_.empty() && faults_armed_ == 0;
  }
  struct Wave {
    int64_t transactions = 0;
    std::vector<FaultRequest> faults;  // armed before it
  };
  // Asks the thread to stop once `events` are out, and waits for it; the
  // first error it met.
  absl::Status Finish() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return status_;
  }
  const std::vector<Wave>& waves() const { return waves_; }
  const cdcgen::ProduceStats& totals() const { return totals_; }
  int64_t events_produced() const { return events_so_far_; }

 private:
  bool FaultsSettled() {
    std::lock_guard<std::mutex> lock(mu_);
    return faults_.empty() && faults_armed_ == 0 && waves_since_fault_ >= 1;
  }

  void Run() {
    while (status_.ok() &&
           !(stop_ && events_so_far_ >= events_ && FaultsSettled())) {
      Wave wave;
      wave.transactions = wave_;
      {
        std::lock_guard<std::mutex> lock(mu_);
        wave.faults.swap(faults_);
      }
      for (const FaultRequest& f : wave.faults) {
        generator_.InjectFault(f.fault, f.after_transactions);
      }
      absl::StatusOr<cdcgen::ProduceStats> stats = cdcgen::ProduceTransactions(
          producer_, generator_, wave_, options_, /*expected=*/nullptr);
      if (!stats.ok()) {
        status_ = stats.status();
        return;
      }
      waves_.push_back(std::move(wave));
      totals_.transactions += stats->transactions;
      totals_.redeliveries += stats->redeliveries;
      totals_.change_events += stats->change_events;
      totals_.messages += stats->messages;
      totals_.faulted_transactions += stats->faulted_transactions;
      events_so_far_ = totals_.change_events;
      {
        std::lock_guard<std::mutex> lock(mu_);
        faults_armed_ = generator_.faults_armed();
        waves_since_fault_ =
            stats->faulted_transactions > 0 ? 0 : waves_since_fault_ + 1;
      }
      std::vector<Poison> poison;
      {
        std::lock_guard<std::mutex> lock(mu_);
        poison = queued_;
      }
      for (const Poison& p : poison) {
        absl::Status s = ProduceRecords(p.topic, {{p.key, p.value}}, 60000,
                                        {{"message.max.bytes", "8388608"}});
        if (!s.ok()) {
          status_ = absl::InternalError(
              absl::StrCat("poison '", p.kind, "': ", s.ToString()));
          return;
        }
      }
      std::lock_guard<std::mutex> lock(mu_);
      queued_.erase(queued_.begin(),
                    queued_.begin() + static_cast<ptrdiff_t>(poison.size()));
    }
  }

  cdcgen::CdcGenerator& generator_;
  KafkaProducer& producer_;
  const cdcgen::ProduceOptions options_;
  const int64_t wave_;
  const int64_t events_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> events_so_far_{0};
  std::mutex mu_;
  std::vector<Poison> queued_;        // guarded by mu_
  std::vector<FaultRequest> faults_;  // guarded by mu_
  int64_t faults_armed_ = 0;          // guarded by mu_: not yet written
  int64_t waves_since_fault_ = 1;     // guarded by mu_
  // Written by the thread; read after Finish.
  std::vector<Wave> waves_;
  cdcgen::ProduceStats totals_;
  absl::Status status_;
  std::thread thread_;
};

// The poison records, made from a real order-line event of the run.
std::vector<Poison> MakePoison(const GeneratorOptions& options,
                               const std::string& line_event) {
  const std::string orders = options.TopicName(CdcTopic::kPurchaseOrder);
  const std::string lines = options.TopicName(CdcTopic::kOrderLine);
  // `line_event` with the first `from` replaced by `to`.
  auto edited = [&](std::string_view from, std::string_view to) {
    std::string text = line_event;
    const size_t at = text.find(from);
    if (at == std::string::npos) return std::string();
    text.replace(at, from.size(), to);
    return text;
  };
  std::string huge = R"({"before":null,"after":{"id":990011,"note":")";
  huge.append(1200 * 1024, 'x');  // over 1 MB, and never closed
  // Outside any transaction: no xid, no END offset.
  const auto between = [](std::string kind, std::string topic, std::string key,
                          std::string value) {
    return Poison{std::move(kind), std::move(topic), std::move(key),
                  std::move(value), "", -1};
  };
  std::vector<Poison> poison = {
      between("truncated JSON", orders, R"({"id":990001})",
              R"({"before":null,"after":{"id":990001,)"),
      between("truncated JSON", lines, R"({"id":990002})",
              line_event.substr(0, line_event.size() / 2)),
      between("not JSON", lines, R"({"id":990003})", "not json at all"),
      between("not an object", orders, R"({"id":990004})", "[1,2,3]"),
      between("unknown op", lines, R"({"id":990005})",
              edited("\"op\":\"c\"", "\"op\":\"x\"")),
      between("wrong type: op", lines, R"({"id":990006})",
              edited("\"op\":\"c\"", "\"op\":5")),
      between("wrong type: source", lines, R"({"id":990007})",
              edited("\"source\":{", "\"source\":[],\"x\":{")),
      between("wrong type: transaction", lines, R"({"id":990008})",
              edited("\"transaction\":{", "\"transaction\":\"571\",\"x\":{")),
      between("missing op", lines, R"({"id":990009})",
              edited("\"op\":\"c\",", "")),
      between("missing source", lines, R"({"id":990010})",
              edited("\"source\":{", "\"not_source\":{")),
      between("value over 1 MB", orders, R"({"id":990011})", huge),
  };
  return poison;
}

// --- the test --------------------------------------------------------------

enum class KillMoment { kRestore, kCommit, kRandom };

class ChaosTest : public ::testing::Test {
 protected:
  void SetUp() override {
    start_ = Clock::now();
    options_ = ChaosOptions::FromEnvironment();
    rng_.seed(options_.seed);
    const int port = options_.port;
    proxy_port_ = port + 2;
    // Every helper of kafka_fixture (topics, readers, DescribeGroup) talks to
    // the chaos broker's direct listener; only the engine goes through the
    // proxy. The scripts/kafka child reads its settings from here too.
    setenv("TRIBUTARY_BOOTSTRAP", absl::StrCat("127.0.0.1:", port).c_str(), 1);
    setenv("TRIBUTARY_KAFKA_PORT", absl::StrCat(port).c_str(), 1);
    setenv("TRIBUTARY_KAFKA_CONTROLLER_PORT", absl::StrCat(port + 1).c_str(), 1);
    setenv("TRIBUTARY_KAFKA_PROXIED_ADVERTISED_PORT",
           absl::StrCat(proxy_port_).c_str(), 1);
    setenv("TRIBUTARY_KAFKA_PROXIED_PORT", absl::StrCat(port + 3).c_str(), 1);
    setenv("TRIBUTARY_KAFKA_DIR", options_.kafka_dir.c_str(), 1);
    // Short sessions, so that a SIGSTOPped or killed instance leaves the
    // group in seconds; timed-out transactions aborted within a second;
    // records over 1 MB accepted.
    setenv("TRIBUTARY_KAFKA_EXTRA_PROPERTIES",
           "group.min.session.timeout.ms=1000 "
           "transaction.abort.timed.out.transaction.cleanup.interval.ms=1000 "
           "message.max.bytes=8388608",
           1);
    Note("seed ", options_.seed, ", ", options_.kills, " kills, ",
         options_.events, " change events at least, ", options_.rate,
         " transactions/s, a ", options_.outage_s, " s outage");

    absl::StatusOr<ScratchDir> dir = ScratchDir::Create("chaos_test", "chaos");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = *std::move(dir);

    absl::StatusOr<std::unique_ptr<TcpProxy>> proxy =
        TcpProxy::Start(proxy_port_, port + 3);
    ASSERT_TRUE(proxy.ok()) << proxy.status();
    proxy_ = *std::move(proxy);
    ASSERT_NO_FATAL_FAILURE(RunKafkaScript("start"));
    broker_started_ = true;
    ASSERT_STATUS_OK(CheckBrokerReachable(30000));

    tmpfs_ = absl::StrCat(dir_.path(), "/state-a");
    std::filesystem::create_directories(tmpfs_);
    const std::string data = absl::StrCat("size=", options_.tmpfs_size);
    if (mount("tmpfs", tmpfs_.c_str(), "tmpfs", 0, data.c_str()) == 0) {
      tmpfs_mounted_ = true;
    } else if (errno == EPERM || errno == EACCES) {
      // Not root (or no CAP_SYS_ADMIN): every other fault still runs; the
      // figure line says the full disk did not.
      no_disk_fault_ = absl::StrCat("mount -t tmpfs: ", std::strerror(errno));
      Note("no full-disk fault in this run (", no_disk_fault_,
           "; the chaos test runs it as root)");
    } else {
      FAIL() << "mount -t tmpfs -o " << data << " tmpfs " << tmpfs_ << ": "
             << std::strerror(errno);
    }
  }

  void TearDown() override {
    load_.reset();  // joins the load thread
    for (auto& instance : instances_) instance->process.reset();  // SIGKILL
    if (tmpfs_mounted_ && umount(tmpfs_.c_str()) != 0) {
      umount2(tmpfs_.c_str(), MNT_DETACH);
    }
    proxy_.reset();
    if (broker_started_) {
      const bool failed = HasFailure();
      RunKafkaScript("stop");
      if (failed) {
        Note("chaos broker logs: ", options_.kafka_dir, "/logs (until the "
             "next chaos run wipes them)");
      }
    }
    dir_.Finish(HasFailure() || options_.keep, "configs, child logs");
  }

  template <typename... Args>
  void Note(const Args&... args) {
    std::printf("[chaos %7.2fs] %s\n", Seconds(), absl::StrCat(args...).c_str());
    std::fflush(stdout);
  }
  double Seconds() const {
    return std::chrono::duration<double>(Clock::now() - start_).count();
  }

  // Runs `scripts/kafka <command>` with this process's TRIBUTARY_KAFKA_*.
  void RunKafkaScript(const std::string& command) {
    const std::string log =
        absl::StrCat(dir_.path(), "/kafka-", command, "-", ++script_runs_, ".log");
    ASSERT_STATUS_OK(tributary::testing::RunKafkaScript(command, {}, log, kBrokerTimeout));
    Note("scripts/kafka ", command, ": ", TailOfFile(log, 1));
  }

  // Topics, generator, expected stream, producer, readers, the first wave.
  void SetUpStream() {
    GeneratorOptions g;
    g.seed = options_.seed;
    g.topic_prefix = UniqueName("chaos");
    g.duplicate_rate = 0.05;
    g.redelivery_rate = 0.03;
    g.restart_inside_rate = 0.02;
    g.mix.bulk = 0;  // keeps versions small: many restores
    generator_options_ = g;
    ASSERT_STATUS_OK(cdcgen::CreateTopics(BootstrapServers(), g, kTablePartitions));
    output_ = UniqueTopic("chaos-out");
    dead_letters_ = UniqueTopic("chaos-dlq");
    ASSERT_STATUS_OK(CreateTopic(output_, kOutputPartitions));
    ASSERT_STATUS_OK(CreateTopic(dead_letters_, 1));
    app_id_ = UniqueName("chaos");

    auto generator = cdcgen::CdcGenerator::Create(g);
    ASSERT_TRUE(generator.ok()) << generator.status();
    generator_ = *std::move(generator);
    auto expected = ExpectedStream::Create(g);
    ASSERT_TRUE(expected.ok()) << expected.status();
    expected_ = *std::move(expected);
    auto producer = cdcgen::MakeCdcProducer(BootstrapServers());
    ASSERT_TRUE(producer.ok()) << producer.status();
    producer_ = *std::move(producer);
    auto committed = TopicReader::Open(output_, kOutputPartitions);
    ASSERT_TRUE(committed.ok()) << committed.status();
    committed_ = *std::move(committed);
    auto dirty = TopicReader::Open(output_, kOutputPartitions,
                                   /*read_committed=*/false);
    ASSERT_TRUE(dirty.ok()) << dirty.status();
    dirty_ = *std::move(dirty);

    // A backlog the first run starts with; its sample line event makes the
    // poison.
    produce_options_.skew_transactions = 5;
    auto stats = cdcgen::ProduceTransactions(*producer_, *generator_, kFirstWave,
                                             produce_options_, nullptr);
    ASSERT_TRUE(stats.ok()) << stats.status();
    first_wave_ = *stats;
    ASSERT_STATUS_OK(expected_->Advance(kFirstWave));
    poison_ = MakePoison(g, expected_->sample_line_event());
    for (const Poison& p : poison_) {
      ASSERT_FALSE(p.value.empty()) << "poison '" << p.kind
                                    << "': the sample event has no such field: "
                                    << expected_->sample_line_event();
    }
    cdcgen::ProduceOptions paced = produce_options_;
    paced.rate = options_.rate;
    load_ = std::make_unique<Load>(*generator_, *producer_, paced, kWave,
                                   options_.events - first_wave_.change_events);
  }

  // --- instances ---

  ChildApp& NewInstance(const std::string& name, const std::string& state_dir) {
    auto& app = *instances_.emplace_back(std::make_unique<ChildApp>());
    app.name = name;
    app.state_dir = state_dir;
    app.config_path = absl::StrCat(dir_.path(), "/", name, ".properties");
    std::ofstream(app.config_path)
        << "application.id=" << app_id_ << "\n"
        << "bootstrap.servers=127.0.0.1:" << proxy_port_ << "\n"
        << "state.dir=" << state_dir << "\n"
        << "processing.guarantee=exactly_once_v2\n"
        << "num.stream.threads=1\n"
        << "commit.interval.ms=100\n"
        << "transaction.timeout.ms=" << kTransactionTimeoutMs << "\n"
        << "consumer.session.timeout.ms=" << kSessionTimeoutMs << "\n"
        << "consumer.heartbeat.interval.ms=500\n"
        << "producer.message.max.bytes=8388608\n"
        // 1 MiB of write buffers: memtables flush (and meet a full disk)
        // often.
        << "rocksdb.block.cache.bytes=4194304\n"
        << "status.interval.ms=5000\n"
        << "orders.topic="
        << generator_options_.TopicName(CdcTopic::kPurchaseOrder) << "\n"
        << "lines.topic=" << generator_options_.TopicName(CdcTopic::kOrderLine)
        << "\n"
        << "transaction.topic="
        << generator_options_.TopicName(CdcTopic::kTransaction) << "\n"
        << "output.topic=" << output_ << "\n"
        << "dead.letter.topic=" << dead_letters_ << "\n"
        << "value.format=raw\n";  // the reference model reads wire values
    return app;
  }

  void Start(ChildApp& app) {
    // Everything an earlier run wrote is in the log by now: what the
    // uncommitted reader sees beyond this mark comes from the new run.
    ASSERT_STATUS_OK(dirty_->ReadToEnd(kProgressTimeout));
    dirty_at_start_[&app] = dirty_->size();
    absl::StatusOr<GroupDescription> group = DescribeGroup(app_id_, 5000);
    if (group.ok()) {
      for (const GroupMember& m : group->members) {
        members_before_[&app].insert(m.member_id);
      }
    }
    ASSERT_STATUS_OK(app.Start(dir_.path(),
                               {kOrderAggregator, "--config", app.config_path}));
    Note("started ", app.name, " run ", app.logs.size(), " (pid ",
         app.process->pid(), ")");
  }

  // Whether the current run of `app` (the lone instance) has written output
  // yet, committed or not: its tasks have restored and run.
  bool HasWritten(const ChildApp& app) {
    return dirty_->size() > dirty_at_start_[&app];
  }

  // Whether the group is stable with a member of `app`'s current run (a
  // member id its earlier runs did not have) that owns partitions: its
  // tasks are assigned and restore now.
  bool Assigned(const ChildApp& app) {
    const std::string id = ReadTextFile(
        absl::StrCat(app.state_dir, "/", app_id_, "/process-id"));
    if (id.size() < 16) return false;
    absl::StatusOr<GroupDescription> group = DescribeGroup(app_id_, 5000);
    if (!group.ok() || group->state != RD_KAFKA_CONSUMER_GROUP_STATE_STABLE) {
      return false;
    }
    const std::set<std::string>& before = members_before_[&app];
    for (const GroupMember& m : group->members) {
      if (m.client_id.find(id.substr(0, 16)) != std::string::npos &&
          before.count(m.member_id) == 0 && !m.assignment.empty()) {
        return true;
      }
    }
    return false;
  }

  void Kill(ChildApp& app, const std::string& why) {
    ASSERT_STATUS_OK(dirty_->Poll(10ms));
    const size_t dirty = dirty_->size();
    const absl::Status killed = app.Kill(kExitTimeout);
    ASSERT_TRUE(killed.ok()) << killed << "\n" << app.LogTails();
    ++kills_;
    ASSERT_STATUS_OK(committed_->Poll(10ms));
    Note("kill ", kills_, ": SIGKILLed ", app.name, " ", why, " (",
         committed_->size(), " committed, ", dirty, " uncommitted versions seen)");
  }

  std::string CurrentLog(const ChildApp& app) const {
    return ReadTextFile(app.logs.back());
  }
  // The last line of the current run's log holding `text`.
  std::string LogLine(const ChildApp& app, std::string_view text) const {
    const std::string log = CurrentLog(app);
    const size_t at = log.rfind(text);
    if (at == std::string::npos) return "";
    const size_t from = log.rfind('\n', at);
    const size_t to = log.find('\n', at);
    return log.substr(from == std::string::npos ? 0 : from + 1,
                      to == std::string::npos ? std::string::npos
                                              : to - (from + 1));
  }

  // An instance that exited by itself where no phase expects it: a failure
  // under TRIBUTARY_CHAOS_STRICT, else noted, counted and restarted.
  bool HandleUnplannedExits() {
    for (auto& instance : instances_) {
      ChildApp& app = *instance;
      if (expecting_exit_.count(&app) != 0 || !app.Died()) continue;
      const std::string how = DescribeWaitStatus(*app.process->wait_status());
      std::string last = OneLine(LogLine(app, "error"));
      ++unplanned_exits_;
      unplanned_notes_.push_back(absl::StrCat(app.name, " ", how, " at ",
                                              static_cast<int>(Seconds()),
                                              " s: ", last));
      if (options_.strict) {
        ADD_FAILURE() << app.name << " " << how << " by itself\n"
                      << app.LogTails();
        return false;
      }
      Note("UNPLANNED: ", app.name, " ", how, " by itself; last error: ",
           last, "; restarting it");
      findings_.push_back(unplanned_notes_.back());
      Start(app);
      if (HasFatalFailure()) return false;
    }
    return true;
  }

  // Polls the readers (which doubles as the pause) until `done`; fails
  // naming `what` when `timeout` passes (an empty `what`: returns false
  // without failing, the caller decides).
  bool WaitUntil(const std::function<bool()>& done, Clock::duration timeout,
                 const std::string& what) {
    const Clock::time_point deadline = Clock::now() + timeout;
    while (!done()) {
      if (!HandleUnplannedExits()) return false;
      if (Clock::now() >= deadline) {
        if (what.empty()) return false;
        std::string tails;
        for (auto& instance : instances_) {
          absl::StrAppend(&tails, instance->LogTails(15));
        }
        ADD_FAILURE() << "timed out after "
                      << std::chrono::duration_cast<std::chrono::seconds>(timeout).count()
                      << " s waiting for " << what << " (" << committed_->size()
                      << " committed versions)\n" << tails;
        return false;
      }
      // Poll drains what has arrived until its deadline (one record when
      // that is now), so both readers keep up with the output.
      absl::Status polled = committed_->Poll(20ms);
      if (polled.ok()) polled = dirty_->Poll(10ms);
      if (!polled.ok()) {
        ADD_FAILURE() << polled;
        return false;
      }
    }
    return true;
  }

  // Waits until the committed output grows by `n` versions from now.
  void WaitForProgress(const std::string& after, size_t n = 20) {
    const size_t from = committed_->size();
    ASSERT_TRUE(WaitUntil([&] { return committed_->size() >= from + n; },
                          kProgressTimeout,
                          absl::StrCat(n, " more committed versions after ", after)));
  }

  // Waits until the read_uncommitted reader has seen a new output record
  // beyond every record the read_committed reader has, polled after it: a
  // transaction of the engine is open (or aborted) over it.
  void WaitInsideTransaction() {
    size_t seen = dirty_->size();   // dirty records already judged
    size_t pending = seen;          // seen before the last committed poll
    ASSERT_TRUE(WaitUntil(
        [&] {
          for (; committed_scanned_ < committed_->size(); ++committed_scanned_) {
            const ConsumedRecord& r = committed_->records()[committed_scanned_];
            int64_t& max = committed_max_[r.partition];
            max = std::max(max, r.offset);
          }
          // Records of [seen, pending) came before the committed poll that
          // just ran: one the committed reader has not reached is open.
          for (; seen < pending; ++seen) {
            const ConsumedRecord& r = dirty_->records()[seen];
            auto max = committed_max_.find(r.partition);
            if (max == committed_max_.end() || r.offset > max->second) return true;
          }
          pending = dirty_->size();
          return false;
        },
        kProgressTimeout, "an open transaction with output"));
  }

  // One SIGKILL of the lone instance at `moment`, and its restart.
  void KillAt(ChildApp& app, KillMoment moment) {
    switch (moment) {
      case KillMoment::kRestore: {
        // Right after a restart: once the group has given the new run its
        // tasks (which then restore their stores from the changelogs),
        // before it has written any output.
        ASSERT_TRUE(WaitUntil([&] { return Assigned(app) || HasWritten(app); },
                              kProgressTimeout,
                              absl::StrCat(app.name, " assigned its tasks")));
        ASSERT_STATUS_OK(dirty_->Poll(0ms));
        const bool written = HasWritten(app);
        restore_kills_ += written ? 0 : 1;
        ASSERT_NO_FATAL_FAILURE(
            Kill(app, written ? "right after start (it had written already)"
                              : "during restore (assigned, nothing written)"));
        break;
      }
      case KillMoment::kCommit:
        ASSERT_TRUE(WaitUntil([&] { return HasWritten(app); }, kProgressTimeout,
                              absl::StrCat(app.name, " writing output")));
        ASSERT_NO_FATAL_FAILURE(WaitInsideTransaction());
        ++commit_kills_;
        ASSERT_NO_FATAL_FAILURE(Kill(app, "inside a transaction"));
        break;
      case KillMoment::kRandom: {
        ASSERT_TRUE(WaitUntil([&] { return HasWritten(app); }, kProgressTimeout,
                              absl::StrCat(app.name, " writing output")));
        // The random moment itself; every condition is waited for above.
        const auto delay = std::chrono::milliseconds(
            std::uniform_int_distribution<int>(0, 2000)(rng_));
        const Clock::time_point at = Clock::now() + delay;
        ASSERT_TRUE(WaitUntil([&] { return Clock::now() >= at; }, delay + 5s,
                              "a random moment"));
        ASSERT_NO_FATAL_FAILURE(
            Kill(app, absl::StrCat(delay.count(), " ms after it wrote output")));
        break;
      }
    }
    ASSERT_NO_FATAL_FAILURE(Start(app));
  }

  // --- the faults besides kills ---

  void RestartBroker(ChildApp& app) {
    ASSERT_NO_FATAL_FAILURE(WaitForProgress(absl::StrCat(app.name, "'s start")));
    Note("restarting the broker on its data while ", app.name, " runs");
    ASSERT_NO_FATAL_FAILURE(RunKafkaScript("restart"));
    ++broker_restarts_;
    ASSERT_NO_FATAL_FAILURE(WaitForProgress("the broker restart"));
  }

  void Outage(ChildApp& app) {
    ASSERT_NO_FATAL_FAILURE(WaitForProgress(absl::StrCat(app.name, "'s start")));
    proxy_->SetReachable(false);
    Note("broker unreachable for ", options_.outage_s, " s (proxy resets "
         "every connection)");
    const Clock::time_point end = Clock::now() + std::chrono::seconds(options_.outage_s);
    // The outage's length is the fault itself, not a stand-in for a
    // condition; the instances are watched throughout.
    const bool lasted = WaitUntil([&] { return Clock::now() >= end; },
                                  std::chrono::seconds(options_.outage_s + 5),
                                  "the outage to end");
    proxy_->SetReachable(true);
    ASSERT_TRUE(lasted);
    ++outages_;
    Note("broker reachable again (", proxy_->reset(), " connections reset "
         "so far)");
    ASSERT_NO_FATAL_FAILURE(WaitForProgress("the outage"));
  }

  // Appends to the filler until the tmpfs has no block left; false (with
  // a failure) on any other error.
  bool TopUpFiller(const std::string& filler) {
    std::FILE* f = std::fopen(filler.c_str(), "a");
    if (f == nullptr) {
      if (errno == ENOSPC) return true;  // not even room for the open
      ADD_FAILURE() << filler << ": " << std::strerror(errno);
      return false;
    }
    std::setvbuf(f, nullptr, _IONBF, 0);
    const std::string block(4096, '\0');
    while (std::fwrite(block.data(), 1, block.size(), f) == block.size()) {
    }
    const int error = errno;
    std::fclose(f);
    if (error != ENOSPC) {
      ADD_FAILURE() << "filling " << filler << ": " << std::strerror(error);
      return false;
    }
    return true;
  }

  // Fills the tmpfs under `app`'s state.dir, and keeps it full (what the
  // instance frees, wiping its stores after an unclean stop, is taken
  // again): the instance must stop with a non-zero exit, and should stop
  // with exit code 2 and a line naming the full disk (a signal, such as
  // RocksDB 7.8's assert()s once gave, or a silent exit is a finding);
  // with the space back it restarts and loses nothing.
  void FillDisk(ChildApp& app) {
    if (!tmpfs_mounted_) return;  // see SetUp
    ASSERT_NO_FATAL_FAILURE(WaitForProgress(absl::StrCat(app.name, "'s start")));
    expecting_exit_.insert(&app);
    const std::string filler = absl::StrCat(tmpfs_, "/filler");
    ASSERT_TRUE(TopUpFiller(filler));
    Note("state disk of ", app.name, " full (",
         std::filesystem::file_size(filler) >> 20, " MiB of filler)");
    const auto full = [&] { return TopUpFiller(filler) && app.Died(); };
    // It fails once RocksDB must write a file: a memtable flush (its block
    // cache is small, so they are frequent) or a store opened on restart.
    if (!WaitUntil(full, 45s, /*what=*/"") && !app.Died()) {
      ASSERT_NO_FATAL_FAILURE(
          Kill(app, "on a full disk (it had not failed in 45 s)"));
      ASSERT_NO_FATAL_FAILURE(Start(app));
      ASSERT_TRUE(WaitUntil(full, kProgressTimeout,
                            absl::StrCat(app.name, " to fail on a full disk")));
    }
    const int status = *app.process->wait_status();
    std::string named = LogLine(app, "No space left on device");
    if (named.empty()) named = LogLine(app, "RESOURCE_EXHAUSTED");
    Note(app.name, " on a full disk ", DescribeWaitStatus(status), ": ",
         Truncated(named.empty() ? OneLine(TailOfFile(app.logs.back(), 1)) : named,
                   400));
    EXPECT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "exit 0 on a full state disk";
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 2 || named.empty()) {
      Finding(absl::StrCat(
          "on a full state disk ", app.name, " ", DescribeWaitStatus(status),
          named.empty() ? " without an error naming the full disk"
                        : absl::StrCat(" after logging: ", Truncated(named, 300)),
          "; its last line: ",
          Truncated(OneLine(TailOfFile(app.logs.back(), 1)), 300)));
    }
    ++disk_fills_;
    std::filesystem::remove(filler);
    expecting_exit_.erase(&app);
    Note("space back on ", app.name, "'s state disk");
    ASSERT_NO_FATAL_FAILURE(Start(app));
    ASSERT_NO_FATAL_FAILURE(WaitForProgress("space returned"));
  }

  // Something the engine should do better that does not break exactly-once
  // output: a failure under TRIBUTARY_CHAOS_STRICT, else a line after the
  // figure line.
  void Finding(const std::string& text) {
    Note("FINDING: ", text);
    findings_.push_back(text);
    if (options_.strict) ADD_FAILURE() << text;
  }

  // The members of the group with an assignment, by client id.
  absl::StatusOr<std::vector<std::string>> AssignedMembers() {
    absl::StatusOr<GroupDescription> group = DescribeGroup(app_id_, 5000);
    if (!group.ok()) return group.status();
    std::vector<std::string> members;
    if (group->state != RD_KAFKA_CONSUMER_GROUP_STATE_STABLE) return members;
    for (const GroupMember& m : group->members) {
      if (!m.assignment.empty()) members.push_back(m.client_id);
    }
    return members;
  }
  void WaitForMembers(size_t n, const std::string& what) {
    ASSERT_TRUE(WaitUntil(
        [&] {
          absl::StatusOr<std::vector<std::string>> members = AssignedMembers();
          return members.ok() && members->size() == n;
        },
        kProgressTimeout, what));
  }

  // `zombie` SIGSTOPped until the group has dropped it and the other has
  // taken over, then SIGCONTed: whatever it had open must be fenced.
  void Zombie(ChildApp& zombie) {
    ASSERT_STATUS_OK(zombie.process->Signal(SIGSTOP));
    expecting_exit_.insert(&zombie);
    Note("SIGSTOPped ", zombie.name, " (session timeout ", kSessionTimeoutMs, " ms)");
    ASSERT_NO_FATAL_FAILURE(WaitForMembers(1, "the group without the stopped instance"));
    ASSERT_NO_FATAL_FAILURE(WaitForProgress("the take-over from the stopped instance"));
    ASSERT_STATUS_OK(zombie.process->Signal(SIGCONT));
    Note("SIGCONTed ", zombie.name, ", a zombie now");
    ++zombies_;
    // It learns it was fenced (and, by the engine's design, stops with that
    // error), or rejoins the group.
    ASSERT_TRUE(WaitUntil(
        [&] {
          if (zombie.Died()) return true;
          absl::StatusOr<std::vector<std::string>> members = AssignedMembers();
          return members.ok() && members->size() == 2;
        },
        kProgressTimeout, "the zombie fenced or back in the group"));
    if (zombie.Died()) {
      Note("the zombie ", DescribeWaitStatus(*zombie.process->wait_status()), ": ",
           Truncated(LogLine(zombie, "error"), 400));
      ASSERT_NO_FATAL_FAILURE(Start(zombie));
    } else {
      Note("the zombie rejoined the group");
    }
    expecting_exit_.erase(&zombie);
    ASSERT_NO_FATAL_FAILURE(WaitForMembers(2, "both instances in the group again"));
    ASSERT_NO_FATAL_FAILURE(WaitForProgress("the zombie"));
  }

  // Queues one fault of each kind for the load's next wave, each into a
  // seeded transaction of its first half (so that the wave's second half
  // moves every input partition past them).
  void QueueFaults() {
    std::vector<FaultRequest> faults;
    for (cdcgen::TransactionFault fault :
         {cdcgen::TransactionFault::kReplacedEvent,
          cdcgen::TransactionFault::kExtraCopy,
          cdcgen::TransactionFault::kOvercountingEnd}) {
      faults.push_back(
          {fault, std::uniform_int_distribution<int64_t>(0, kWave / 2)(rng_)});
    }
    load_->AddFaults(std::move(faults));
    ++fault_groups_;
    Note("queued ", fault_groups_ == 1 ? "a replaced event, an extra copy and "
                                         "an overcounting END"
                                       : "three more faults",
         " inside transactions of the next wave");
  }

  // The faults the generator wrote into transactions, as poison the
  // dead-letter topic must hold.
  void AddInjectedPoison() {
    for (const InjectedFault& f : expected_->injected()) {
      Poison p;
      p.kind = absl::StrCat(Sv(cdcgen::TransactionFaultName(f.fault)), " (",
                            f.detail, ") in transaction ", f.xid);
      p.xid = f.xid;
      if (f.fault == cdcgen::TransactionFault::kOvercountingEnd) {
        p.topic = generator_options_.TopicName(CdcTopic::kTransaction);
        p.key = f.xid;  // the engine's key: the match id
        p.end_offset = f.end_offset;
      } else {
        p.topic = generator_options_.TopicName(f.record.topic);
        p.key = f.record.key;
        p.value = f.record.value.value_or("");
      }
      ++injected_[f.fault];
      poison_.push_back(std::move(p));
    }
  }

  // --- the verifier ---

  void Verify() {
    absl::StatusOr<std::vector<ConsumedRecord>> output =
        ReadWholeTopic(output_, kOutputPartitions, true, 120s);
    ASSERT_TRUE(output.ok()) << output.status();
    const std::string problem = CheckSequences(*output, expected_->by_root());
    EXPECT_EQ(problem, "");
    counts_ = CountSequenceErrors(*output, expected_->by_root());
    EXPECT_EQ(static_cast<int64_t>(output->size()), expected_->versions());
    EXPECT_EQ(counts_.checked, expected_->versions());
    EXPECT_EQ(counts_.duplicates, 0);
    EXPECT_EQ(counts_.gaps, 0);
    EXPECT_EQ(counts_.extras, 0);

    absl::StatusOr<std::vector<ConsumedRecord>> dead =
        ReadWholeTopic(dead_letters_, 1, true, 120s);
    ASSERT_TRUE(dead.ok()) << dead.status();
    dead_letters_seen_ = static_cast<int64_t>(dead->size());
    for (const Poison& p : poison_) {
      int seen = 0;
      for (const ConsumedRecord& d : *dead) {
        if (p.end_offset >= 0
                ? d.Header("tributary.source.topic") != p.topic ||
                      d.Header("tributary.source.offset") !=
                          absl::StrCat(p.end_offset)
                : d.value != p.value) {
          continue;
        }
        ++seen;
        EXPECT_EQ(d.key, p.key) << p.kind;
        const std::optional<std::string> error = d.Header("tributary.error");
        EXPECT_TRUE(error.has_value() && !error->empty())
            << "no tributary.error on poison '" << p.kind << "'";
        EXPECT_EQ(d.Header("tributary.source.topic"), p.topic) << p.kind;
        EXPECT_TRUE(d.Header("tributary.source.partition").has_value()) << p.kind;
        EXPECT_TRUE(d.Header("tributary.source.offset").has_value()) << p.kind;
        if (!p.xid.empty()) {
          const std::optional<std::string> tx =
              d.Header("tributary.source.transaction");
          EXPECT_TRUE(tx.has_value() && tx->rfind(p.xid + ":", 0) == 0)
              << p.kind << ": tributary.source.transaction "
              << tx.value_or("(none)");
        }
        if (error && seen == 1) {
          Note("dead letter (", p.kind, "): ", Truncated(*error, 160));
        }
      }
      EXPECT_GE(seen, 1) << "poison '" << p.kind << "' not on the dead-letter topic";
      // Written inside a source transaction, or by the assembler: once.
      if (!p.xid.empty()) {
        EXPECT_EQ(seen, 1) << "poison '" << p.kind << "'";
      }
      if (seen > 1) {
        dead_letter_repeats_ += seen - 1;
        Finding(absl::StrCat("poison '", p.kind, "' is ", seen,
                             " times on the dead-letter topic (read_committed): "
                             "its source partition was processed again"));
      }
    }
    EXPECT_EQ(static_cast<int64_t>(dead->size()),
              static_cast<int64_t>(poison_.size()) + dead_letter_repeats_)
        << "dead letters that are no poison record of this run";
  }

  static constexpr int kTablePartitions = 3;
  static constexpr int kOutputPartitions = 3;
  static constexpr int64_t kFirstWave = 300;
  static constexpr int64_t kWave = 100;

  Clock::time_point start_;
  ChaosOptions options_;
  std::mt19937_64 rng_;
  ScratchDir dir_;
  int proxy_port_ = 0;
  std::unique_ptr<TcpProxy> proxy_;
  bool broker_started_ = false;
  int script_runs_ = 0;
  std::string tmpfs_;
  bool tmpfs_mounted_ = false;
  std::string no_disk_fault_;  // why there is no full-disk fault, if none

  GeneratorOptions generator_options_;
  cdcgen::ProduceOptions produce_options_;
  std::string output_;
  std::string dead_letters_;
  std::string app_id_;
  std::unique_ptr<cdcgen::CdcGenerator> generator_;
  std::unique_ptr<ExpectedStream> expected_;
  std::unique_ptr<KafkaProducer> producer_;
  std::unique_ptr<TopicReader> committed_;
  std::unique_ptr<TopicReader> dirty_;
  cdcgen::ProduceStats first_wave_;
  std::vector<Poison> poison_;
  std::unique_ptr<Load> load_;

  std::vector<std::unique_ptr<ChildApp>> instances_;
  std::set<const ChildApp*> expecting_exit_;
  std::map<const ChildApp*, size_t> dirty_at_start_;
  std::map<const ChildApp*, std::set<std::string>> members_before_;
  std::vector<std::string> findings_;
  size_t committed_scanned_ = 0;            // committed_ records in committed_max_
  std::map<int32_t, int64_t> committed_max_;  // partition -> highest offset
  int64_t dead_letter_repeats_ = 0;

  int fault_groups_ = 0;
  std::map<cdcgen::TransactionFault, int> injected_;  // by kind

  int kills_ = 0;
  int restore_kills_ = 0;
  int commit_kills_ = 0;
  int broker_restarts_ = 0;
  int outages_ = 0;
  int zombies_ = 0;
  int disk_fills_ = 0;
  int unplanned_exits_ = 0;
  std::vector<std::string> unplanned_notes_;
  SequenceCounts counts_;
  int64_t dead_letters_seen_ = 0;
};

TEST_F(ChaosTest, ExactlyOnceThroughKillsBrokerRestartOutageDiskFullAndZombies) {
  ASSERT_NO_FATAL_FAILURE(SetUpStream());
  ChildApp& a = NewInstance("a", tmpfs_);
  ASSERT_NO_FATAL_FAILURE(Start(a));
  load_->Start();

  // The lone instance's kills: a seeded shuffle of restore, commit and
  // random moments, a third each; the broker restart, the outage and the
  // full disk after seeded kills among them; poison in three groups.
  std::vector<KillMoment> moments;
  for (int i = 0; i < options_.kills; ++i) {
    moments.push_back(i % 3 == 0   ? KillMoment::kRestore
                      : i % 3 == 1 ? KillMoment::kCommit
                                   : KillMoment::kRandom);
  }
  std::shuffle(moments.begin(), moments.end(), rng_);
  std::vector<int> slots;
  for (int i = 0; i < options_.kills; ++i) slots.push_back(i);
  std::shuffle(slots.begin(), slots.end(), rng_);
  const auto slot = [&](size_t i) {
    return slots.size() > i ? slots[i] : -1;
  };
  const int broker_restart_at = slot(0);
  const int outage_at = slot(1);
  const int disk_at = slot(2);
  const std::set<int> poison_at = {slot(3), slot(4), slot(5)};
  size_t poison_group = 0;
  const size_t group_size = (poison_.size() + 2) / 3;
  // Poison inside transactions: groups of one fault of each kind, three in
  // the bounded run, one per ten kills in a longer one.
  const int fault_groups = std::max(3, options_.kills / 10);
  std::set<int> faults_at;
  for (int g = 0; g < fault_groups; ++g) faults_at.insert(slot(6 + g));
  Note("schedule: broker restart after kill ", broker_restart_at + 1,
       ", outage after kill ", outage_at + 1, ", full disk after kill ",
       disk_at + 1);

  for (int i = 0; i < options_.kills; ++i) {
    ASSERT_NO_FATAL_FAILURE(KillAt(a, moments[i]));
    if (i == broker_restart_at) {
      ASSERT_NO_FATAL_FAILURE(RestartBroker(a));
    }
    if (i == outage_at) {
      ASSERT_NO_FATAL_FAILURE(Outage(a));
    }
    if (i == disk_at) {
      ASSERT_NO_FATAL_FAILURE(FillDisk(a));
    }
    if (poison_at.count(i) != 0 && poison_group < 3) {
      const size_t from = std::min(poison_.size(), poison_group * group_size);
      const size_t to = std::min(poison_.size(), from + group_size);
      load_->AddPoison({poison_.begin() + static_cast<ptrdiff_t>(from),
                        poison_.begin() + static_cast<ptrdiff_t>(to)});
      ++poison_group;
      Note("queued ", to - from, " poison records");
    }
    if (faults_at.count(i) != 0 && fault_groups_ < fault_groups) {
      QueueFaults();
    }
  }
  // Fewer kills than fault slots: the faults left out run now.
  if (broker_restart_at < 0) {
    ASSERT_NO_FATAL_FAILURE(RestartBroker(a));
  }
  if (outage_at < 0) {
    ASSERT_NO_FATAL_FAILURE(Outage(a));
  }
  if (disk_at < 0) {
    ASSERT_NO_FATAL_FAILURE(FillDisk(a));
  }
  for (; poison_group < 3; ++poison_group) {
    const size_t from = std::min(poison_.size(), poison_group * group_size);
    const size_t to = std::min(poison_.size(), from + group_size);
    load_->AddPoison({poison_.begin() + static_cast<ptrdiff_t>(from),
                      poison_.begin() + static_cast<ptrdiff_t>(to)});
  }
  while (fault_groups_ < fault_groups) QueueFaults();

  // Two instances of the application: a zombie, then one killed under load.
  ChildApp& b = NewInstance("b", absl::StrCat(dir_.path(), "/state-b"));
  ASSERT_NO_FATAL_FAILURE(Start(b));
  ASSERT_NO_FATAL_FAILURE(WaitForMembers(2, "a and b both owning tasks"));
  ASSERT_NO_FATAL_FAILURE(WaitForProgress("b joined"));
  const bool a_first = std::uniform_int_distribution<int>(0, 1)(rng_) == 0;
  ASSERT_NO_FATAL_FAILURE(Zombie(a_first ? a : b));
  ChildApp& victim = a_first ? b : a;
  Note("killing ", victim.name, " inside a transaction, under load");
  ASSERT_NO_FATAL_FAILURE(WaitInsideTransaction());
  ASSERT_NO_FATAL_FAILURE(Kill(victim, "under load, one of two"));
  ASSERT_NO_FATAL_FAILURE(WaitForMembers(1, "the survivor owning every task"));
  ASSERT_NO_FATAL_FAILURE(WaitForProgress("the take-over"));
  ASSERT_NO_FATAL_FAILURE(Start(victim));
  ASSERT_NO_FATAL_FAILURE(WaitForMembers(2, "both instances again"));

  // Drain: the load ends, every expected version must come out.
  ASSERT_TRUE(WaitUntil([&] { return load_->PoisonWritten(); }, kProgressTimeout,
                        "the poison written"));
  Note("stopping the load at ", load_->events_produced(), " change events");
  ASSERT_STATUS_OK(load_->Finish());
  for (const Load::Wave& wave : load_->waves()) {
    for (const FaultRequest& f : wave.faults) {
      expected_->InjectFault(f.fault, f.after_transactions);
    }
    ASSERT_STATUS_OK(expected_->Advance(wave.transactions));
  }
  AddInjectedPoison();
  ASSERT_EQ(static_cast<int64_t>(expected_->injected().size()),
            load_->totals().faulted_transactions)
      << "the replay wrote other faults than the load";
  const size_t want = static_cast<size_t>(expected_->versions());
  Note("produced ", first_wave_.transactions + load_->totals().transactions,
       " transactions, ", first_wave_.change_events + load_->totals().change_events,
       " change events; ", want, " versions expected over ",
       expected_->by_root().size(), " orders");
  // On a timeout the instances are still stopped and the output checked, so
  // that the failure says which versions are missing.
  // The engine may lag the load by then; a long run has more to catch up.
  const auto drain_timeout =
      kDrainTimeout + std::chrono::milliseconds(load_->events_produced() / 1000 * 1000);
  EXPECT_TRUE(WaitUntil([&] { return committed_->size() >= want; }, drain_timeout,
                        absl::StrCat(want, " committed versions")));
  for (auto& instance : instances_) {
    const absl::Status stopped = instance->Stop(kExitTimeout);
    EXPECT_TRUE(stopped.ok()) << instance->name << ": " << stopped << "\n"
                              << instance->LogTails();
  }
  ASSERT_NO_FATAL_FAILURE(Verify());

  const int64_t events =
      first_wave_.change_events + load_->totals().change_events;
  std::printf(
      "chaos: seed %llu: %d kills (%d in restore, %d in commits), %d broker "
      "restarts, %d outages, %d zombies, %d full disks, %lld events, %lld "
      "versions checked, %lld duplicates, %lld gaps, %lld extras, %lld dead "
      "letters (%lld repeated), %d poison in transactions (%d replaced "
      "events, %d extra copies, %d overcounting ENDs), %lld partial "
      "transactions, %d unplanned exits, %zu findings, %.0f s\n",
      static_cast<unsigned long long>(options_.seed), kills_, restore_kills_,
      commit_kills_, broker_restarts_, outages_, zombies_, disk_fills_,
      static_cast<long long>(events), static_cast<long long>(counts_.checked),
      static_cast<long long>(counts_.duplicates),
      static_cast<long long>(counts_.gaps), static_cast<long long>(counts_.extras),
      static_cast<long long>(dead_letters_seen_),
      static_cast<long long>(dead_letter_repeats_),
      static_cast<int>(expected_->injected().size()),
      injected_[cdcgen::TransactionFault::kReplacedEvent],
      injected_[cdcgen::TransactionFault::kExtraCopy],
      injected_[cdcgen::TransactionFault::kOvercountingEnd],
      static_cast<long long>(expected_->replay().partial_transactions()),
      unplanned_exits_,
      findings_.size(), Seconds());
  if (!no_disk_fault_.empty()) {
    std::printf("chaos: no full-disk fault: %s\n", no_disk_fault_.c_str());
  }
  for (const std::string& finding : findings_) {
    std::printf("chaos: finding: %s\n", finding.c_str());
  }
  std::fflush(stdout);
}

}  // namespace
}  // namespace tributary::testing
