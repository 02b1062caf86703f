// Failover harness (not a Google Benchmark): how long a task takes to come
// back on the surviving instance after the instance running it is SIGKILLed,
// with and without a standby replica (num.standby.replicas). Two instances of
// an engine-level application (latest value and count per key in a
// changelogged RocksDB store, one input partition: one task) run as child
// processes (this program re-executed with --instance); the input holds
// --keys distinct keys, so the store and its changelog hold that many
// entries. Per run: fill the input, start A, wait until it processed
// everything, start B, wait until the group is stable with one instance
// running the task and the other without one (with a standby: until the
// other's standby lag is 0; without one, until the other has no directory of
// the task: state.cleanup.delay.ms=0 removes one an earlier ownership left),
// read the output to its end, SIGKILL the active
// one and at once produce a probe record. "processing" is the time from the
// kill until the probe's count is in the output (read_committed): the group's
// session timeout, the rebalance, the survivor's restore, its processing and
// commit. "restoring" is when the survivor's GET /ready (polled every 10 ms)
// first names the task restoring (= "processing" when no look caught it). The
// restored record count is the survivor's restore-records-total. Variants
// alternate; medians of --runs runs are reported.
//
//   failover_bench --bootstrap 127.0.0.1:19092 --keys 200000 --value-bytes 200 --runs 3
//
// Single-threaded driver; every wait is bounded (--timeout-s per step).

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"
#include "engine/kafka_clients.h"
#include "engine/kafka_streams.h"
#include "engine/processor.h"
#include "engine/streams_config.h"
#include "engine/topology.h"
#include "httplib.h"

extern char** environ;

namespace tributary {
namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string bootstrap = "127.0.0.1:19092";
  int64_t keys = 200000;
  int value_bytes = 200;
  int runs = 3;
  int session_timeout_ms = 6000;
  int timeout_s = 180;
  // --instance (child): run one instance until SIGTERM.
  bool instance = false;
  std::string config;
  std::string input;
  std::string output;
  std::string port_file;
};

// --- The instance (child process) ---

std::atomic<bool> stop{false};

// Keeps "<count>:<latest value>" per key; forwards the count.
class LatestProcessor : public Processor {
 public:
  absl::Status Init(ProcessorContext& context) override {
    context_ = &context;
    store_ = context.GetStateStore("latest");
    if (store_ == nullptr) return absl::InternalError("no store 'latest'");
    return absl::OkStatus();
  }
  absl::Status Process(const Record& record) override {
    if (!record.key || !record.value) return absl::OkStatus();
    TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> old, store_->Get(*record.key));
    int64_t count = 0;
    if (old) (void)absl::SimpleAtoi(old->substr(0, old->find(':')), &count);
    ++count;
    TRIBUTARY_RETURN_IF_ERROR(store_->Put(*record.key, absl::StrCat(count, ":", Sv(*record.value))));
    Record out;
    out.key = record.key;
    const std::string value = absl::StrCat(count);
    out.value = value;
    out.timestamp = record.timestamp;
    return context_->Forward(out);
  }

 private:
  ProcessorContext* context_ = nullptr;
  KeyValueStore* store_ = nullptr;
};

int RunInstance(const Options& options) {
  std::signal(SIGTERM, [](int) { stop = true; });
  absl::StatusOr<StreamsConfig> config = StreamsConfig::FromFile(options.config);
  if (!config.ok()) {
    std::fprintf(stderr, "instance: %s\n", config.status().ToString().c_str());
    return 1;
  }
  Topology topology;
  topology.AddSource("source", {options.input})
      .AddProcessor("latest", [] { return std::make_unique<LatestProcessor>(); }, {"source"})
      .AddStateStore({"latest", StoreType::kRocksDb, true}, {"latest"})
      .AddSink("sink", options.output, {"latest"});
  absl::StatusOr<std::unique_ptr<KafkaStreams>> streams =
      KafkaStreams::Open(std::move(topology), *std::move(config));
  absl::Status status = streams.ok() ? (*streams)->Start() : streams.status();
  if (!status.ok()) {
    std::fprintf(stderr, "instance: %s\n", status.ToString().c_str());
    return 1;
  }
  std::ofstream(options.port_file + ".tmp") << (*streams)->metrics_port() << "\n";
  std::filesystem::rename(options.port_file + ".tmp", options.port_file);
  while (!stop && (*streams)->state() == KafkaStreams::State::kRunning) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  status = (*streams)->Close();
  return status.ok() ? 0 : 2;
}

// --- The driver ---

struct Child {
  pid_t pid = -1;
  int port = -1;
  std::string state_dir;
  std::string log;
};

struct Answer {
  int status = 0;  // 0: no answer
  std::string body;
};

Answer Get(int port, const char* path) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(1);
  client.set_read_timeout(2);
  httplib::Result result = client.Get(path);
  if (!result) return {};
  return {result->status, result->body};
}

// The value of series `name` (no labels, or the sum over them) in /metrics.
std::optional<double> Metric(int port, const std::string& name) {
  Answer answer = Get(port, "/metrics");
  if (answer.status != 200) return std::nullopt;
  std::optional<double> sum;
  for (absl::string_view line : absl::StrSplit(answer.body, '\n')) {
    if (!absl::StartsWith(line, name)) continue;
    const absl::string_view rest = line.substr(name.size());
    if (rest.empty() || (rest[0] != ' ' && rest[0] != '{')) continue;
    double value = 0;
    if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &value)) sum = sum.value_or(0) + value;
  }
  return sum;
}

std::string UniqueName(const std::string& base) {
  return absl::StrCat(base, "-", getpid(), "-",
                      std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count());
}

// Waits until `condition` holds, at most `timeout_s`.
template <typename Condition>
absl::Status WaitFor(Condition condition, int timeout_s, const std::string& what) {
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(timeout_s);
  while (!condition()) {
    if (Clock::now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat("waited ", timeout_s, " s for ", what));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return absl::OkStatus();
}

absl::StatusOr<Child> StartChild(const Options& options, const std::string& dir,
                                 const std::string& name, const std::string& app_id,
                                 const std::string& input, const std::string& output,
                                 int standby) {
  Child child;
  child.state_dir = absl::StrCat(dir, "/", name, "-state");
  child.log = absl::StrCat(dir, "/", name, ".log");
  const std::string config = absl::StrCat(dir, "/", name, ".properties");
  const std::string port_file = absl::StrCat(dir, "/", name, ".port");
  std::ofstream(config) << "application.id=" << app_id << "\n"
                        << "bootstrap.servers=" << options.bootstrap << "\n"
                        << "state.dir=" << child.state_dir << "\n"
                        << "num.standby.replicas=" << standby << "\n"
                        << "consumer.session.timeout.ms=" << options.session_timeout_ms << "\n"
                        // A task directory left by an earlier owner goes at
                        // once: without a standby the survivor has no state.
                        << "state.cleanup.delay.ms=0\n"
                        << "metrics.port=0\n";
  std::error_code ec;
  const std::string self = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  if (ec) return absl::InternalError(absl::StrCat("/proc/self/exe: ", ec.message()));
  std::vector<std::string> args = {self,    "--instance", "--config", config, "--input", input,
                                   "--output", output,    "--port-file", port_file};
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, child.log.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  const int err = posix_spawn(&child.pid, self.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) return absl::InternalError(absl::StrCat("posix_spawn: ", std::strerror(err)));
  TRIBUTARY_RETURN_IF_ERROR(WaitFor(
      [&] {
        std::ifstream in(port_file);
        return static_cast<bool>(in >> child.port);
      },
      options.timeout_s, absl::StrCat(name, " to start (log ", child.log, ")")));
  return child;
}

void StopChild(Child& child, bool kill_it) {
  if (child.pid <= 0) return;
  kill(child.pid, kill_it ? SIGKILL : SIGTERM);
  int status = 0;
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(60);
  while (waitpid(child.pid, &status, WNOHANG) == 0) {
    if (Clock::now() > deadline) {
      kill(child.pid, SIGKILL);
      waitpid(child.pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  child.pid = -1;
}

struct RunResult {
  int standby = 0;
  double assigned_s = 0;  // kill -> the survivor is seen restoring the task
  double ready_s = 0;     // kill -> the probe is in the output
  int64_t restored = 0;   // changelog records the survivor restored
  std::string restore_log;  // the survivor's "restored N records ... in T" line
};

std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// The last "task 0_0: restored ..." line of `log`, from "restored" on.
std::string RestoreLine(const std::string& log) {
  std::ifstream in(log);
  std::string line, last;
  while (std::getline(in, line)) {
    const size_t at = line.find("task 0_0: restored ");
    if (at != std::string::npos && line.find(" in ", at) != std::string::npos) {
      last = line.substr(at + 9);
    }
  }
  return last;
}

absl::StatusOr<RunResult> RunOnce(const Options& options, int standby, int run) {
  const std::string app_id = UniqueName(absl::StrCat("failover-", standby, "-", run));
  const std::string input = app_id + "-in";
  const std::string output = app_id + "-out";
  TRIBUTARY_ASSIGN_OR_RETURN(std::unique_ptr<KafkaAdmin> admin,
                             KafkaAdmin::Open({{"bootstrap.servers", options.bootstrap}}));
  TRIBUTARY_RETURN_IF_ERROR(admin->CreateTopics(
      std::vector<KafkaAdmin::NewTopic>{{input, 1, 1}, {output, 1, 1}}, 30000));
  {
    TRIBUTARY_ASSIGN_OR_RETURN(std::unique_ptr<KafkaProducer> producer,
                               KafkaProducer::Open({{"bootstrap.servers", options.bootstrap},
                                                    {"linger.ms", "20"}}));
    const std::string value(options.value_bytes, 'v');
    for (int64_t i = 0; i < options.keys; ++i) {
      TRIBUTARY_RETURN_IF_ERROR(producer->Send(input, 0, absl::StrCat("key-", i), value));
    }
    TRIBUTARY_RETURN_IF_ERROR(producer->Flush(120000));
  }
  const std::string dir = (std::filesystem::temp_directory_path() / app_id).string();
  std::filesystem::create_directories(dir);
  Child a, b;
  auto cleanup = [&] {
    StopChild(a, true);
    StopChild(b, true);
    (void)admin->DeleteTopics(
        std::vector<std::string>{input, output, app_id + "-latest-changelog"}, 30000);
    std::filesystem::remove_all(dir);
  };
  absl::StatusOr<RunResult> result = [&]() -> absl::StatusOr<RunResult> {
    TRIBUTARY_ASSIGN_OR_RETURN(a, StartChild(options, dir, "a", app_id, input, output, standby));
    TRIBUTARY_RETURN_IF_ERROR(WaitFor(
        [&] {
          return Metric(a.port, "tributary_process_total").value_or(0) >=
                 static_cast<double>(options.keys);
        },
        options.timeout_s, "a to process the input"));
    TRIBUTARY_ASSIGN_OR_RETURN(b, StartChild(options, dir, "b", app_id, input, output, standby));
    // One instance runs the task, the other has none (and, with a standby,
    // has caught up on its changelog).
    Child* active = nullptr;
    Child* survivor = nullptr;
    const std::string id_a = ReadFirstLine(absl::StrCat(a.state_dir, "/", app_id, "/process-id"));
    TRIBUTARY_RETURN_IF_ERROR(WaitFor(
        [&] {
          absl::StatusOr<KafkaAdmin::GroupDescription> group = admin->DescribeGroup(app_id, 5000);
          if (!group.ok() || group->state != "Stable" || group->members.size() != 2) return false;
          active = nullptr;
          for (const KafkaAdmin::GroupMember& member : group->members) {
            if (member.assignment.empty()) continue;
            const bool is_a = !id_a.empty() && member.client_id.find(id_a) != std::string::npos;
            active = is_a ? &a : &b;
            survivor = is_a ? &b : &a;
          }
          if (active == nullptr || Get(active->port, "/ready").status != 200) return false;
          if (standby == 0) {
            // The directory of an earlier ownership is gone (cleaned).
            return !std::filesystem::exists(
                absl::StrCat(survivor->state_dir, "/", app_id, "/0_0"));
          }
          return Metric(survivor->port, "tributary_standby_tasks").value_or(0) == 1 &&
                 Metric(survivor->port, "tributary_standby_lag").value_or(-1) == 0;
        },
        options.timeout_s, "one instance running the task, the other without it"));
    // A read_committed reader of the output, at its end: the probe sent after
    // the kill shows when the survivor processes again.
    TRIBUTARY_ASSIGN_OR_RETURN(
        std::unique_ptr<KafkaReader> reader,
        KafkaReader::Open({{"bootstrap.servers", options.bootstrap},
                           {"group.id", app_id + "-probe"},
                           {"enable.partition.eof", "true"}}));
    TRIBUTARY_RETURN_IF_ERROR(reader->AssignFromBeginning(output, 1));
    bool at_end = false;
    TRIBUTARY_RETURN_IF_ERROR(WaitFor(
        [&] {
          while (!at_end) {
            absl::StatusOr<std::optional<ConsumedRecord>> record = reader->Poll(100);
            if (!record.ok() || !*record) break;
            at_end = (*record)->end_of_partition;
          }
          return at_end;
        },
        options.timeout_s, "the output's end"));
    const double restored_before =
        Metric(survivor->port, "tributary_restore_records_total").value_or(0);
    TRIBUTARY_ASSIGN_OR_RETURN(std::unique_ptr<KafkaProducer> producer,
                               KafkaProducer::Open({{"bootstrap.servers", options.bootstrap}}));
    const Clock::time_point killed = Clock::now();
    StopChild(*active, /*kill_it=*/true);
    TRIBUTARY_RETURN_IF_ERROR(producer->Send(input, 0, "probe", "probe"));
    TRIBUTARY_RETURN_IF_ERROR(producer->Flush(30000));
    RunResult r;
    r.standby = standby;
    bool assigned = false;
    TRIBUTARY_RETURN_IF_ERROR(WaitFor(
        [&] {
          const double s = std::chrono::duration<double>(Clock::now() - killed).count();
          if (!assigned &&
              Get(survivor->port, "/ready").body.find("restoring") != std::string::npos) {
            assigned = true;
            r.assigned_s = s;
          }
          while (true) {
            absl::StatusOr<std::optional<ConsumedRecord>> record = reader->Poll(0);
            if (!record.ok() || !*record) return false;
            if (!(*record)->end_of_partition && (*record)->key == "probe") {
              r.ready_s = std::chrono::duration<double>(Clock::now() - killed).count();
              return true;
            }
          }
        },
        options.timeout_s, "the probe in the output"));
    if (!assigned) r.assigned_s = r.ready_s;  // restored before a look saw it restoring
    r.restored = static_cast<int64_t>(
        Metric(survivor->port, "tributary_restore_records_total").value_or(0) - restored_before);
    r.restore_log = RestoreLine(survivor->log);
    StopChild(*survivor, /*kill_it=*/false);
    return r;
  }();
  cleanup();
  return result;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

int Drive(const Options& options) {
  std::map<int, std::vector<RunResult>> results;
  std::printf("failover_bench: %lld keys of %d-byte values, session.timeout.ms %d, %d runs\n",
              static_cast<long long>(options.keys), options.value_bytes,
              options.session_timeout_ms, options.runs);
  std::printf("%-8s %-4s %12s %11s %11s  %s\n", "standby", "run", "restored", "restoring_s",
              "processing_s", "survivor's restore line");
  for (int run = 1; run <= options.runs; ++run) {
    for (int standby : {0, 1}) {
      absl::StatusOr<RunResult> r = RunOnce(options, standby, run);
      if (!r.ok()) {
        std::fprintf(stderr, "failover_bench: standby=%d run %d: %s\n", standby, run,
                     r.status().ToString().c_str());
        return 1;
      }
      std::printf("%-8d %-4d %12lld %11.2f %11.2f  %s\n", standby, run,
                  static_cast<long long>(r->restored), r->assigned_s, r->ready_s,
                  r->restore_log.c_str());
      std::fflush(stdout);
      results[standby].push_back(*r);
    }
  }
  std::printf("medians:\n");
  for (const auto& [standby, runs] : results) {
    std::vector<double> restored, assigned, ready;
    for (const RunResult& r : runs) {
      restored.push_back(static_cast<double>(r.restored));
      assigned.push_back(r.assigned_s);
      ready.push_back(r.ready_s);
    }
    std::printf("%-8d %-4s %12.0f %11.2f %11.2f\n", standby, "med", Median(restored),
                Median(assigned), Median(ready));
  }
  return 0;
}

void Usage() {
  std::fprintf(stderr,
               "usage: failover_bench [--bootstrap HOST:PORT] [--keys N] [--value-bytes N]\n"
               "                      [--runs R] [--session-timeout-ms MS] [--timeout-s S]\n");
}

std::optional<Options> ParseFlags(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--instance") {
      options.instance = true;
      continue;
    }
    if (i + 1 >= argc) return std::nullopt;
    const std::string value = argv[++i];
    bool ok = true;
    if (flag == "--bootstrap") options.bootstrap = value;
    else if (flag == "--keys") ok = absl::SimpleAtoi(value, &options.keys) && options.keys > 0;
    else if (flag == "--value-bytes") ok = absl::SimpleAtoi(value, &options.value_bytes);
    else if (flag == "--runs") ok = absl::SimpleAtoi(value, &options.runs) && options.runs > 0;
    else if (flag == "--session-timeout-ms") ok = absl::SimpleAtoi(value, &options.session_timeout_ms);
    else if (flag == "--timeout-s") ok = absl::SimpleAtoi(value, &options.timeout_s);
    else if (flag == "--config") options.config = value;
    else if (flag == "--input") options.input = value;
    else if (flag == "--output") options.output = value;
    else if (flag == "--port-file") options.port_file = value;
    else ok = false;
    if (!ok) return std::nullopt;
  }
  return options;
}

}  // namespace
}  // namespace tributary

int main(int argc, char** argv) {
  std::optional<tributary::Options> options = tributary::ParseFlags(argc, argv);
  if (!options) {
    tributary::Usage();
    return 2;
  }
  if (options->instance) return tributary::RunInstance(*options);
  return tributary::Drive(*options);
}
