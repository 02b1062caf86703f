// Exactly-once chaos tests against a real broker (label `kafka`, broker from
// `scripts/kafka start`): count_app (tests/engine/apps/count_app.cc) runs as
// a child process that is SIGKILLed and restarted, runs as two instances of
// one application, and rebuilds deleted state from its changelog. A
// read_committed reader of its output must then see, for every key, the
// counts 1, 2, ..., n exactly once, n being the key's number of input records
// (design contract G3 and G5).
//
// Every test uses its own topics, application id and temporary directory
// (state dirs, config files and one log per child run); the directory is
// kept, and its path printed, when a test fails.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/kafka_clients.h"
#include "gtest/gtest.h"
#include "state/checkpoint.h"
#include "tests/support/child_app.h"
#include "tests/support/kafka_fixture.h"

namespace tributary::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using KeyValues = std::vector<std::pair<std::string, std::string>>;

constexpr char kCountApp[] = COUNT_APP_PATH;
constexpr int kKeys = 50;
// Bounds on observable conditions; a healthy run needs a fraction of them.
constexpr auto kProgressTimeout = 90s;
constexpr auto kGroupTimeout = 60s;
constexpr auto kExitTimeout = 60s;

// Deterministic input: keys "key-0" .. "key-<keys-1>", half of the records on
// the first ten keys so that the per-key counts differ; remembers how many
// records each key got.
class InputGenerator {
 public:
  InputGenerator(int keys, uint32_t seed) : keys_(keys), rng_(seed) {}

  KeyValues Next(int n) {
    KeyValues records;
    records.reserve(n);
    for (int i = 0; i < n; ++i) {
      const uint32_t r = rng_();
      const int k = (r & 1) != 0 ? static_cast<int>((r >> 1) % 10)
                                 : static_cast<int>((r >> 1) % keys_);
      std::string key = absl::StrCat("key-", k);
      ++expected_[key];
      records.emplace_back(std::move(key), absl::StrCat("v", produced_++));
    }
    return records;
  }
  const std::map<std::string, int64_t>& expected() const { return expected_; }
  int64_t produced() const { return produced_; }

 private:
  int keys_;
  std::mt19937 rng_;
  int64_t produced_ = 0;
  std::map<std::string, int64_t> expected_;
};

std::string Describe(const ConsumedRecord& r) {
  return absl::StrCat("p", r.partition, "@", r.offset, "=",
                      r.value ? *r.value : std::string("<null>"));
}

// "" when `output` holds, for every key of `expected`, exactly the values
// "1", "2", ..., "<expected[key]>" in offset order, all in one partition, and
// nothing else; otherwise a description of the first offending key (in key
// order) with its sequence around the problem, and how many keys offend.
std::string CheckExactlyOnce(std::vector<ConsumedRecord> output,
                             const std::map<std::string, int64_t>& expected) {
  std::stable_sort(output.begin(), output.end(),
                   [](const ConsumedRecord& a, const ConsumedRecord& b) {
                     return std::pair(a.partition, a.offset) <
                            std::pair(b.partition, b.offset);
                   });
  std::map<std::string, std::vector<const ConsumedRecord*>> by_key;
  for (const ConsumedRecord& r : output) {
    if (!r.key || !r.value) {
      return absl::StrCat("record without key or value at p", r.partition, "@",
                          r.offset);
    }
    by_key[*r.key].push_back(&r);
  }
  std::string first;
  int offending = 0;
  auto offend = [&](std::string problem) {
    if (offending++ == 0) first = std::move(problem);
  };
  for (const auto& [key, records] : by_key) {
    if (expected.count(key) == 0) {
      offend(absl::StrCat("unexpected key '", key, "' (", records.size(),
                          " records, first ", Describe(*records.front()), ")"));
    }
  }
  for (const auto& [key, want] : expected) {
    const std::vector<const ConsumedRecord*>& seq = by_key[key];
    auto window = [&](size_t at) {
      std::string text;
      const size_t from = at >= 5 ? at - 5 : 0;
      const size_t to = std::min(seq.size(), at + 6);
      for (size_t j = from; j < to; ++j) {
        absl::StrAppend(&text, j == from ? "" : ", ", j == at ? "[" : "",
                        Describe(*seq[j]), j == at ? "]" : "");
      }
      return absl::StrCat("#", from + 1, "..#", to, ": ", text);
    };
    bool bad = false;
    for (size_t i = 0; i < seq.size() && !bad; ++i) {
      int64_t count = 0;
      if (seq[i]->partition != seq.front()->partition) {
        offend(absl::StrCat("key '", key, "' appears in partitions ",
                            seq.front()->partition, " and ", seq[i]->partition,
                            ": ", window(i)));
        bad = true;
      } else if (!absl::SimpleAtoi(*seq[i]->value, &count) ||
                 count != static_cast<int64_t>(i) + 1) {
        offend(absl::StrCat(
            "key '", key, "': record #", i + 1, " is ", Describe(*seq[i]),
            ", want count ", i + 1, " (",
            count <= static_cast<int64_t>(i) ? "duplicate" : "gap",
            "); want n=", want, ", got ", seq.size(), " records; ", window(i)));
        bad = true;
      }
    }
    if (!bad && static_cast<int64_t>(seq.size()) != want) {
      offend(absl::StrCat(
          "key '", key, "': ", seq.size(), " records, want ", want, "; last ",
          seq.empty() ? std::string("none") : window(seq.size() - 1)));
    }
  }
  if (offending == 0) return "";
  return absl::StrCat(offending, " offending key(s); first: ", first);
}

class EosCountTest : public KafkaTest {
 protected:
  void SetUp() override {
    KafkaTest::SetUp();
    if (HasFatalFailure()) return;
    start_ = Clock::now();
    absl::StatusOr<ScratchDir> dir =
        ScratchDir::Create("eos_count_test", "eos");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = *std::move(dir);
    app_id_ = UniqueName("eos-count");
  }

  void TearDown() override {
    for (auto& app : apps_) app->process.reset();  // SIGKILLs leftovers
    dir_.Finish(HasFailure(), "configs, state dirs, child logs");
  }

  // Progress notes in the test's output, with the time since the start.
  template <typename... Args>
  void Note(const Args&... args) {
    const double s =
        std::chrono::duration<double>(Clock::now() - start_).count();
    std::printf("[eos %6.2fs] %s\n", s, absl::StrCat(args...).c_str());
    std::fflush(stdout);
  }

  void CreateTopics(int input_partitions, int output_partitions) {
    input_ = UniqueTopic("eos-count-in");
    output_ = UniqueTopic("eos-count-out");
    input_partitions_ = input_partitions;
    output_partitions_ = output_partitions;
    ASSERT_STATUS_OK(CreateTopic(input_, input_partitions));
    ASSERT_STATUS_OK(CreateTopic(output_, output_partitions));
    absl::StatusOr<std::unique_ptr<TopicReader>> reader =
        TopicReader::Open(output_, output_partitions);
    ASSERT_TRUE(reader.ok()) << reader.status();
    progress_ = *std::move(reader);
  }

  // An instance of application app_id_ with its own state dir.
  ChildApp& AddApp(const std::string& name,
                   const std::string& guarantee = "exactly_once_v2") {
    auto app = std::make_unique<ChildApp>();
    app->name = name;
    app->state_dir = absl::StrCat(dir_.path(), "/", name, "-state");
    app->config_path = absl::StrCat(dir_.path(), "/", name, ".properties");
    std::ofstream(app->config_path)
        << "application.id=" << app_id_ << "\n"
        << "bootstrap.servers=" << BootstrapServers() << "\n"
        << "state.dir=" << app->state_dir << "\n"
        << "commit.interval.ms=100\n"
        << "num.stream.threads=1\n"
        << "processing.guarantee=" << guarantee << "\n"
        << "consumer.session.timeout.ms=6000\n";
    apps_.push_back(std::move(app));
    return *apps_.back();
  }

  void StartApp(ChildApp& app) {
    ASSERT_STATUS_OK(
        app.Start(dir_.path(), {kCountApp, "--config", app.config_path,
                                "--input", input_, "--output", output_}));
    Note("started ", app.name, " run ", app.logs.size(), " (pid ",
         app.process->pid(), ")");
  }

  void KillApp(ChildApp& app) {
    const absl::Status killed = app.Kill(kExitTimeout);
    ASSERT_TRUE(killed.ok()) << killed << "\n" << LogTails();
    ASSERT_STATUS_OK(progress_->Poll(100ms));
    Note("SIGKILLed ", app.name, " at ", progress_->size(),
         " committed outputs of ", gen_.produced(), " inputs");
  }

  // SIGTERM: the app must close cleanly and exit 0.
  void StopApp(ChildApp& app) {
    const absl::Status stopped = app.Stop(kExitTimeout);
    ASSERT_TRUE(stopped.ok()) << stopped << "\n" << LogTails();
    // count_app prints its metrics on close; show the commit figures.
    std::string commits;
    std::istringstream log(ReadTextFile(app.logs.back()));
    for (std::string line; std::getline(log, line);) {
      if (line.rfind("commit-", 0) == 0 ||
          line.rfind("process-total", 0) == 0) {
        absl::StrAppend(&commits, "\n    ", line.substr(0, line.find('{')),
                        line.substr(line.find('}') + 1));
      }
    }
    Note("stopped ", app.name, commits);
  }

  void Produce(int n) {
    ASSERT_STATUS_OK(ProduceRecords(input_, gen_.Next(n)));
    Note("produced ", n, " inputs (", gen_.produced(), " in all)");
  }

  // Fails unless every started app is still running.
  void ExpectAppsRunning() {
    for (auto& app : apps_) {
      if (app->Died()) {
        FAIL() << app->name
               << " died: " << DescribeWaitStatus(*app->process->wait_status())
               << "\n"
               << LogTails();
      }
    }
  }

  // Waits until `reader` holds at least `count` records; fails when the
  // deadline passes or a running app dies meanwhile.
  void WaitForRecords(TopicReader& reader, size_t count) {
    const Clock::time_point deadline = Clock::now() + kProgressTimeout;
    while (reader.size() < count) {
      ASSERT_NO_FATAL_FAILURE(ExpectAppsRunning());
      ASSERT_LT(Clock::now(), deadline) << "reader has " << reader.size()
                                        << " records, want " << count << "\n"
                                        << LogTails();
      ASSERT_STATUS_OK(reader.Poll(50ms));
    }
  }
  // The same for the read_committed output.
  void WaitForOutput(size_t count) { WaitForRecords(*progress_, count); }

  // Waits until the current run's log of `app`, from byte `from` on,
  // contains `text`.
  void WaitForLog(const ChildApp& app, const std::string& text,
                  size_t from = 0) {
    const Clock::time_point deadline = Clock::now() + kProgressTimeout;
    while (ReadTextFile(app.logs.back()).find(text, from) ==
           std::string::npos) {
      ASSERT_NO_FATAL_FAILURE(ExpectAppsRunning());
      ASSERT_LT(Clock::now(), deadline)
          << "no '" << text << "' in " << app.logs.back() << "\n"
          << LogTails();
      ASSERT_STATUS_OK(progress_->Poll(20ms));  // doubles as the pause
    }
  }

  // Waits until the group application.id is stable and `accept` takes it.
  GroupDescription WaitForGroup(
      const std::function<bool(const GroupDescription&)>& accept,
      const std::string& what) {
    const Clock::time_point deadline = Clock::now() + kGroupTimeout;
    absl::StatusOr<GroupDescription> group;
    while (true) {
      group = DescribeGroup(app_id_);
      if (group.ok() && group->state == RD_KAFKA_CONSUMER_GROUP_STATE_STABLE &&
          accept(*group)) {
        return *group;
      }
      if (Clock::now() >= deadline) break;
      ExpectAppsRunning();
      if (HasFatalFailure()) return {};
      absl::Status polled = progress_->Poll(200ms);  // doubles as the pause
      if (!polled.ok()) ADD_FAILURE() << polled;
    }
    std::string seen =
        group.ok() ? Describe(*group) : group.status().ToString();
    ADD_FAILURE() << "group " << app_id_ << " never got " << what
                  << "; last seen: " << seen << "\n"
                  << LogTails();
    return {};
  }

  // Input partitions each member of `group` owns, by client id.
  std::map<std::string, std::set<int32_t>> InputAssignment(
      const GroupDescription& group) const {
    std::map<std::string, std::set<int32_t>> owned;
    for (const GroupMember& m : group.members) {
      auto& mine = owned[m.client_id];
      for (const auto& [topic, partition] : m.assignment) {
        if (topic == input_) mine.insert(partition);
      }
    }
    return owned;
  }

  std::string Describe(const GroupDescription& group) const {
    std::string text = absl::StrCat("state ", group.state, ", members:");
    for (const auto& [client, partitions] : InputAssignment(group)) {
      absl::StrAppend(&text, " ", client, "={");
      for (int32_t p : partitions) absl::StrAppend(&text, p, ",");
      absl::StrAppend(&text, "}");
    }
    return text;
  }

  // The process id (in the state dir) that names the instance's clients.
  std::string ProcessId(const ChildApp& app) const {
    std::string id =
        ReadTextFile(absl::StrCat(app.state_dir, "/", app_id_, "/process-id"));
    while (!id.empty() && (id.back() == '\n' || id.back() == ' '))
      id.pop_back();
    return id;
  }

  // Sum of "(N records restored)" over the current run's log of `app`.
  int64_t RestoredRecords(const ChildApp& app) const {
    const std::string log = ReadTextFile(app.logs.back());
    static constexpr std::string_view kMarker = "running (";
    int64_t total = 0;
    for (size_t at = log.find(kMarker); at != std::string::npos;
         at = log.find(kMarker, at + 1)) {
      size_t digits = at + kMarker.size();
      size_t end = log.find(" records restored)", digits);
      int64_t n = 0;
      if (end != std::string::npos &&
          absl::SimpleAtoi(absl::string_view(log.data() + digits, end - digits), &n)) {
        total += n;
      }
    }
    return total;
  }

  // The last lines of the last two runs' logs of every app.
  std::string LogTails() const {
    std::string text;
    for (const auto& app : apps_) text += app->LogTails();
    return text;
  }

  // Reads the whole output (no app may be running) and checks it.
  void ExpectExactlyOnce() {
    absl::StatusOr<std::vector<ConsumedRecord>> output =
        ReadWholeTopic(output_, output_partitions_);
    ASSERT_TRUE(output.ok()) << output.status();
    Note("output holds ", output->size(), " committed records for ",
         gen_.produced(), " inputs over ", gen_.expected().size(), " keys");
    const std::string problem = CheckExactlyOnce(*output, gen_.expected());
    EXPECT_EQ(problem, "") << LogTails();
    EXPECT_EQ(output->size(), static_cast<size_t>(gen_.produced()));
  }

  Clock::time_point start_;
  ScratchDir dir_;
  std::string app_id_;
  InputGenerator gen_{kKeys, /*seed=*/20240607};
  std::string input_;  // topic names
  std::string output_;
  int input_partitions_ = 0;
  int output_partitions_ = 0;
  std::unique_ptr<TopicReader> progress_;  // read_committed output reader
  std::vector<std::unique_ptr<ChildApp>> apps_;
};

// One instance, SIGKILLed four times at different points and restarted:
// (1) mid-backlog, as soon as a read_uncommitted reader sees 1500 outputs,
// (2) right after the restarted instance's first commit, (3) right after a
// task's restore, (4) inside a transaction holding outputs of a wave sent
// after the backlog. Input arrives in waves between and during the runs.
TEST_F(EosCountTest, KillNineExactlyOnce) {
  ASSERT_NO_FATAL_FAILURE(CreateTopics(3, 3));
  ChildApp& app = AddApp("solo");
  ASSERT_NO_FATAL_FAILURE(Produce(2500));
  ASSERT_NO_FATAL_FAILURE(Produce(2500));
  // Sees outputs as they are written, before their transaction ends.
  absl::StatusOr<std::unique_ptr<TopicReader>> dirty =
      TopicReader::Open(output_, output_partitions_, /*read_committed=*/false);
  ASSERT_TRUE(dirty.ok()) << dirty.status();
  ASSERT_NO_FATAL_FAILURE(StartApp(app));

  // Kill 1: in the middle of the backlog, probably inside a transaction.
  ASSERT_NO_FATAL_FAILURE(WaitForRecords(**dirty, 1500));
  ASSERT_NO_FATAL_FAILURE(KillApp(app));
  ASSERT_NO_FATAL_FAILURE(Produce(2500));
  ASSERT_NO_FATAL_FAILURE(StartApp(app));

  // Kill 2: right after the restarted instance's first commit.
  ASSERT_NO_FATAL_FAILURE(WaitForLog(app, " running ("));
  ASSERT_NO_FATAL_FAILURE(WaitForOutput(progress_->size() + 1));
  ASSERT_NO_FATAL_FAILURE(KillApp(app));
  ASSERT_NO_FATAL_FAILURE(Produce(2500));
  ASSERT_NO_FATAL_FAILURE(StartApp(app));

  // Kill 3: as soon as a task has restored and runs.
  ASSERT_NO_FATAL_FAILURE(WaitForLog(app, " running ("));
  ASSERT_NO_FATAL_FAILURE(KillApp(app));

  // Kill 4: inside a transaction: once the uncommitted outputs include some
  // of a wave sent after the backlog, whatever has been committed by then.
  ASSERT_STATUS_OK((*dirty)->ReadToEnd(kProgressTimeout));
  const size_t backlog =
      static_cast<size_t>(gen_.produced()) - progress_->size();
  ASSERT_NO_FATAL_FAILURE(StartApp(app));
  ASSERT_NO_FATAL_FAILURE(WaitForLog(app, " running ("));
  ASSERT_NO_FATAL_FAILURE(Produce(5000));
  ASSERT_NO_FATAL_FAILURE(
      WaitForRecords(**dirty, (*dirty)->size() + backlog + 1000));
  ASSERT_NO_FATAL_FAILURE(KillApp(app));
  ASSERT_STATUS_OK((*dirty)->Poll(100ms));
  Note("uncommitted reader saw ", (*dirty)->size(), " outputs so far");
  ASSERT_NO_FATAL_FAILURE(StartApp(app));

  // The rest arrives while the last run works; then a clean stop.
  for (int wave = 0; wave < 2; ++wave) {
    ASSERT_NO_FATAL_FAILURE(Produce(2500));
    ASSERT_NO_FATAL_FAILURE(WaitForOutput(progress_->size() + 500));
  }
  ASSERT_EQ(gen_.produced(), 20000);
  ASSERT_NO_FATAL_FAILURE(WaitForOutput(20000));
  ASSERT_NO_FATAL_FAILURE(StopApp(app));
  ASSERT_NO_FATAL_FAILURE(ExpectExactlyOnce());
}

// Two instances of one application (own state dirs) split a 4-partition
// input; when one stops, the other takes its partitions over.
TEST_F(EosCountTest, TwoInstancesSplitPartitions) {
  ASSERT_NO_FATAL_FAILURE(CreateTopics(4, 4));
  ChildApp& a = AddApp("a");
  ChildApp& b = AddApp("b");
  ASSERT_NO_FATAL_FAILURE(Produce(3000));
  ASSERT_NO_FATAL_FAILURE(StartApp(a));
  ASSERT_NO_FATAL_FAILURE(StartApp(b));

  GroupDescription split = WaitForGroup(
      [&](const GroupDescription& group) {
        auto owned = InputAssignment(group);
        return owned.size() == 2 &&
               std::all_of(owned.begin(), owned.end(),
                           [](const auto& m) { return !m.second.empty(); });
      },
      "two members with input partitions each");
  ASSERT_FALSE(HasFailure());
  Note("split: ", Describe(split));
  ASSERT_NO_FATAL_FAILURE(WaitForLog(a, " running ("));
  ASSERT_NO_FATAL_FAILURE(WaitForLog(b, " running ("));
  const std::string b_id = ProcessId(b);
  ASSERT_FALSE(b_id.empty());
  std::set<int32_t> b_partitions;
  for (const auto& [client, partitions] : InputAssignment(split)) {
    if (client.find(b_id) != std::string::npos) b_partitions = partitions;
  }
  EXPECT_FALSE(b_partitions.empty()) << "no member is b (" << b_id << ")";

  ASSERT_NO_FATAL_FAILURE(Produce(3000));
  ASSERT_NO_FATAL_FAILURE(WaitForOutput(6000));

  const size_t a_mark = ReadTextFile(a.logs.back()).size();
  ASSERT_NO_FATAL_FAILURE(StopApp(b));
  const std::string a_id = ProcessId(a);
  GroupDescription alone = WaitForGroup(
      [&](const GroupDescription& group) {
        auto owned = InputAssignment(group);
        return owned.size() == 1 &&
               owned.begin()->first.find(a_id) != std::string::npos &&
               static_cast<int>(owned.begin()->second.size()) ==
                   input_partitions_;
      },
      "a alone with every input partition");
  ASSERT_FALSE(HasFailure());
  Note("after b stopped: ", Describe(alone));
  for (int32_t p : b_partitions) {
    ASSERT_NO_FATAL_FAILURE(
        WaitForLog(a, absl::StrCat("task 0_", p, " running ("), a_mark));
  }

  ASSERT_NO_FATAL_FAILURE(Produce(3000));
  ASSERT_NO_FATAL_FAILURE(WaitForOutput(9000));
  ASSERT_NO_FATAL_FAILURE(StopApp(a));
  ASSERT_NO_FATAL_FAILURE(ExpectExactlyOnce());
}

// A clean stop, the state dir deleted, more input: the next run restores the
// counts from the changelog and continues them.
TEST_F(EosCountTest, RestoreAfterStateDirDeleted) {
  ASSERT_NO_FATAL_FAILURE(CreateTopics(3, 3));
  ChildApp& app = AddApp("solo");
  ASSERT_NO_FATAL_FAILURE(Produce(3000));
  ASSERT_NO_FATAL_FAILURE(StartApp(app));
  ASSERT_NO_FATAL_FAILURE(WaitForOutput(3000));
  ASSERT_NO_FATAL_FAILURE(StopApp(app));

  std::error_code ec;
  ASSERT_GT(std::filesystem::remove_all(app.state_dir, ec), 0u) << ec.message();
  ASSERT_NO_FATAL_FAILURE(Produce(3000));
  ASSERT_NO_FATAL_FAILURE(StartApp(app));
  ASSERT_NO_FATAL_FAILURE(WaitForOutput(6000));
  const int64_t restored = RestoredRecords(app);
  Note("second run restored ", restored, " changelog records");
  EXPECT_GE(restored, static_cast<int64_t>(kKeys / 2)) << LogTails();
  ASSERT_NO_FATAL_FAILURE(StopApp(app));
  ASSERT_NO_FATAL_FAILURE(ExpectExactlyOnce());
}

// at_least_once without failures: a clean run is exact too.
TEST_F(EosCountTest, AtLeastOnceMode) {
  ASSERT_NO_FATAL_FAILURE(CreateTopics(3, 3));
  ChildApp& app = AddApp("solo", "at_least_once");
  ASSERT_NO_FATAL_FAILURE(Produce(3000));
  ASSERT_NO_FATAL_FAILURE(StartApp(app));
  ASSERT_NO_FATAL_FAILURE(WaitForOutput(3000));
  ASSERT_NO_FATAL_FAILURE(Produce(2000));
  ASSERT_NO_FATAL_FAILURE(WaitForOutput(5000));
  ASSERT_NO_FATAL_FAILURE(StopApp(app));
  ASSERT_NO_FATAL_FAILURE(ExpectExactlyOnce());
}


// num.standby.replicas=1 with two instances and one task: the instance
// without the task keeps a standby of it, whose checkpoint reaches the
// changelog's end; once the active instance is SIGKILLed the survivor takes
// the task over from that checkpoint and restores only the tail (a condition
// on the restored count, not on time); the killed instance, started again,
// rebuilds its state as the new standby; the output stays exactly once.
TEST_F(EosCountTest, StandbyReplicaCatchesUpAndTheSurvivorRestoresOnlyTheTail) {
  ASSERT_NO_FATAL_FAILURE(CreateTopics(1, 1));
  InputGenerator gen(/*keys=*/20000, /*seed=*/7);
  ASSERT_STATUS_OK(ProduceRecords(input_, gen.Next(20000)));
  const size_t store_size = gen.expected().size();
  ChildApp& a = AddApp("a");
  ChildApp& b = AddApp("b");
  for (ChildApp* app : {&a, &b}) {
    std::ofstream(app->config_path, std::ios::app) << "num.standby.replicas=1\n";
  }
  ASSERT_NO_FATAL_FAILURE(StartApp(a));
  ASSERT_NO_FATAL_FAILURE(WaitForOutput(20000));
  ASSERT_NO_FATAL_FAILURE(StartApp(b));
  // The instance that owns the input partition once the group of both is
  // stable.
  auto owner = [&]() -> ChildApp* {
    const GroupDescription group = WaitForGroup(
        [&](const GroupDescription& g) {
          if (g.members.size() != 2) return false;
          for (const GroupMember& m : g.members) {
            if (!m.assignment.empty()) return true;
          }
          return false;
        },
        "two members, one owning the input partition");
    for (const GroupMember& m : group.members) {
      if (!m.assignment.empty()) {
        return m.client_id.find(ProcessId(a)) != std::string::npos ? &a : &b;
      }
    }
    return nullptr;
  };
  ChildApp* active = owner();
  ASSERT_NE(active, nullptr);
  ChildApp& standby = active == &a ? b : a;
  Note(active->name, " owns task 0_0; ", standby.name, " should keep its standby");

  const std::string changelog = absl::StrCat(app_id_, "-counts-changelog");
  absl::StatusOr<std::unique_ptr<KafkaAdmin>> admin =
      KafkaAdmin::Open({{"bootstrap.servers", BootstrapServers()}});
  ASSERT_TRUE(admin.ok()) << admin.status();
  int64_t checkpointed = -1, end = -1;
  // The checkpoint offset of the changelog in `app`'s task directory equals
  // the changelog's end.
  auto standby_caught_up = [&](const ChildApp& app) {
    const std::string checkpoint_path =
        absl::StrCat(app.state_dir, "/", app_id_, "/0_0/.checkpoint");
    const Clock::time_point deadline = Clock::now() + kProgressTimeout;
    while (true) {
      absl::StatusOr<KafkaAdmin::Watermarks> marks =
          (*admin)->QueryWatermarks(changelog, Partition{0}, 5000);
      absl::StatusOr<CheckpointFile::Offsets> offsets = CheckpointFile(checkpoint_path).Read();
      if (marks.ok()) end = marks->high.value;
      if (offsets.ok() && offsets->count({changelog, 0}) > 0) {
        checkpointed = offsets->at({changelog, 0});
      }
      if (end > 0 && checkpointed == end) return;
      ASSERT_NO_FATAL_FAILURE(ExpectAppsRunning());
      ASSERT_LT(Clock::now(), deadline) << "standby checkpoint " << checkpointed
                                        << ", changelog end " << end << "\n" << LogTails();
      ASSERT_STATUS_OK(progress_->Poll(100ms));  // doubles as the pause
    }
  };
  ASSERT_NO_FATAL_FAILURE(standby_caught_up(standby));
  Note("standby checkpoint at the changelog end, ", end);
  // It follows the active task's writes.
  ASSERT_STATUS_OK(ProduceRecords(input_, gen.Next(2000)));
  ASSERT_NO_FATAL_FAILURE(WaitForOutput(22000));
  ASSERT_NO_FATAL_FAILURE(standby_caught_up(standby));
  Note("standby checkpoint followed to ", end);

  const size_t log_at_kill = ReadTextFile(standby.logs.back()).size();
  ASSERT_NO_FATAL_FAILURE(KillApp(*active));
  ASSERT_STATUS_OK(ProduceRecords(input_, gen.Next(1000)));
  ASSERT_NO_FATAL_FAILURE(WaitForOutput(23000));
  // The take-over's "task 0_0 running (N records restored)" line.
  const std::string log = ReadTextFile(standby.logs.back());
  const size_t at = log.find("task 0_0 running (", log_at_kill);
  ASSERT_NE(at, std::string::npos) << LogTails();
  const size_t digits = at + std::string_view("task 0_0 running (").size();
  int64_t restored = -1;
  ASSERT_TRUE(absl::SimpleAtoi(log.substr(digits, log.find(' ', digits) - digits), &restored))
      << log.substr(at, 80);
  Note(standby.name, " took over restoring ", restored, " records; the store holds ",
       store_size, " keys");
  EXPECT_NE(log.find("standby task 0_0 handed over", log_at_kill), std::string::npos);
  EXPECT_LT(restored, static_cast<int64_t>(store_size / 10)) << LogTails();

  // The killed instance comes back (its state has no checkpoint: the task
  // was active under exactly-once, so it is rebuilt): whichever of the two
  // the group gives the task, the other keeps a standby at the end.
  ChildApp& killed = *active;
  ASSERT_NO_FATAL_FAILURE(StartApp(killed));
  ChildApp* owner_now = owner();
  ASSERT_NE(owner_now, nullptr);
  ChildApp& standby_now = owner_now == &a ? b : a;
  ASSERT_NO_FATAL_FAILURE(standby_caught_up(standby_now));
  Note(owner_now->name, " owns the task, ", standby_now.name, " keeps its standby at ", end);
  ASSERT_STATUS_OK(ProduceRecords(input_, gen.Next(500)));
  ASSERT_NO_FATAL_FAILURE(WaitForOutput(23500));
  ASSERT_NO_FATAL_FAILURE(StopApp(killed));
  ASSERT_NO_FATAL_FAILURE(StopApp(standby));
  absl::StatusOr<std::vector<ConsumedRecord>> output = ReadWholeTopic(output_, 1);
  ASSERT_TRUE(output.ok()) << output.status();
  EXPECT_EQ(CheckExactlyOnce(*output, gen.expected()), "") << LogTails();
  EXPECT_EQ(output->size(), static_cast<size_t>(gen.produced()));
}

}  // namespace
}  // namespace tributary::testing
