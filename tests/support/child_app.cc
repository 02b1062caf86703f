#include "tests/support/child_app.h"

#include <signal.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace tributary::testing {

absl::Status ChildApp::Start(const std::string& dir,
                             const std::vector<std::string>& argv) {
  if (process != nullptr && process->Running()) {
    return absl::FailedPreconditionError(
        absl::StrCat(name, " is already running"));
  }
  logs.push_back(absl::StrCat(dir, "/", name, ".run", logs.size() + 1, ".log"));
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::Start(argv, logs.back());
  if (!child.ok()) return child.status();
  process = *std::move(child);
  return absl::OkStatus();
}

absl::Status ChildApp::Kill(std::chrono::milliseconds timeout) {
  absl::Status signalled = process->Signal(SIGKILL);
  if (!signalled.ok()) return signalled;
  absl::StatusOr<int> status = process->Wait(timeout);
  if (!status.ok()) return status.status();
  process.reset();
  if (!WIFSIGNALED(*status) || WTERMSIG(*status) != SIGKILL) {
    return absl::InternalError(
        absl::StrCat(name, " ", DescribeWaitStatus(*status)));
  }
  return absl::OkStatus();
}

absl::Status ChildApp::Stop(std::chrono::milliseconds timeout) {
  absl::Status signalled = process->Signal(SIGTERM);
  if (!signalled.ok()) return signalled;
  absl::StatusOr<int> status = process->Wait(timeout);
  if (!status.ok()) return status.status();
  process.reset();
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    return absl::InternalError(
        absl::StrCat(name, " ", DescribeWaitStatus(*status)));
  }
  return absl::OkStatus();
}

std::string ChildApp::LogTails(int lines) const {
  std::string text;
  const size_t n = logs.size();
  for (size_t i = n >= 2 ? n - 2 : 0; i < n; ++i) {
    absl::StrAppend(&text, "---- tail of ", logs[i], " ----\n",
                    TailOfFile(logs[i], lines));
  }
  return text;
}

int ChildApp::LoggedPort(std::string_view prefix, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline && !Died()) {
    const std::string log = ReadTextFile(logs.back());
    const size_t at = log.find(prefix);
    if (at != std::string::npos) {
      const size_t begin = at + prefix.size();
      const size_t end = log.find_first_not_of("0123456789", begin);
      int port = 0;
      if (end != std::string::npos && absl::SimpleAtoi(log.substr(begin, end - begin), &port)) {
        return port;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polls the log for the line
  }
  return 0;
}

absl::StatusOr<ScratchDir> ScratchDir::Create(std::string_view base,
                                              std::string tag) {
  absl::StatusOr<std::string> path = MakeTempDir(base);
  if (!path.ok()) return path.status();
  ScratchDir dir;
  dir.path_ = *std::move(path);
  dir.tag_ = std::move(tag);
  return dir;
}

void ScratchDir::Finish(bool failed, std::string_view what) const {
  if (path_.empty()) return;
  if (failed) {
    std::printf("[%s] kept %s (%s)\n", tag_.c_str(), path_.c_str(),
                std::string(what).c_str());
  } else {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
}

absl::StatusOr<OrderAggregatorTopics> OrderAggregatorTopics::Create(const std::string& prefix,
                                                                  const ChildApp& app,
                                                                  std::string_view extra) {
  OrderAggregatorTopics t;
  t.orders = prefix + ".inventory.purchaseorder";
  t.lines = prefix + ".inventory.orderline";
  t.tx = prefix + ".transaction";
  t.output = prefix + "-out";
  t.dead_letters = prefix + "-dlq";
  for (const std::string& topic : {t.orders, t.lines, t.tx, t.output}) {
    TRIBUTARY_RETURN_IF_ERROR(CreateTopic(topic, 1));
  }
  std::ofstream config(app.config_path);
  config << "application.id=" << prefix << "\n"
         << "bootstrap.servers=" << BootstrapServers() << "\n"
         << "state.dir=" << app.state_dir << "\n"
         << "processing.guarantee=exactly_once_v2\n"
         << "commit.interval.ms=100\n"
         << "orders.topic=" << t.orders << "\n"
         << "lines.topic=" << t.lines << "\n"
         << "transaction.topic=" << t.tx << "\n"
         << "output.topic=" << t.output << "\n"
         << "dead.letter.topic=" << t.dead_letters << "\n"
         << extra;
  if (!config.flush()) return absl::InternalError("cannot write " + app.config_path);
  return t;
}

absl::Status RunKafkaScript(const std::string& command, const std::vector<std::string>& env,
                            const std::string& log_path, std::chrono::milliseconds timeout) {
  std::vector<std::string> argv = {"/usr/bin/env"};
  argv.insert(argv.end(), env.begin(), env.end());
  argv.insert(argv.end(), {"/bin/bash", KAFKA_SCRIPT_PATH, command});
  absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::Start(argv, log_path);
  if (!child.ok()) return child.status();
  absl::StatusOr<int> status = (*child)->Wait(timeout);
  if (!status.ok()) {
    return absl::Status(status.status().code(),
                        absl::StrCat("scripts/kafka ", command, ": ", status.status().message(),
                                     "\n", TailOfFile(log_path)));
  }
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    return absl::InternalError(absl::StrCat("scripts/kafka ", command, " ",
                                            DescribeWaitStatus(*status), "\n",
                                            TailOfFile(log_path)));
  }
  return absl::OkStatus();
}

OwnBroker::OwnBroker(Options options) : options_(std::move(options)) {
  env_ = {absl::StrCat("TRIBUTARY_KAFKA_PORT=", options_.port),
          absl::StrCat("TRIBUTARY_KAFKA_CONTROLLER_PORT=", options_.port + 1),
          absl::StrCat("TRIBUTARY_KAFKA_DIR=", options_.dir)};
  env_.insert(env_.end(), options_.env.begin(), options_.env.end());
}

absl::StatusOr<std::unique_ptr<OwnBroker>> OwnBroker::Start(Options options) {
  if (options.port <= 0 || options.dir.empty() || options.log_dir.empty()) {
    return absl::InvalidArgumentError("OwnBroker needs a port, a dir and a log_dir");
  }
  std::unique_ptr<OwnBroker> broker(new OwnBroker(std::move(options)));
  broker->running_ = true;  // from here on the destructor stops what may have started
  TRIBUTARY_RETURN_IF_ERROR(broker->Run("start"));
  return broker;
}

OwnBroker::~OwnBroker() {
  absl::Status stopped = Stop();
  if (!stopped.ok()) std::fprintf(stderr, "OwnBroker: %s\n", stopped.ToString().c_str());
}

std::string OwnBroker::bootstrap_servers() const {
  return absl::StrCat("127.0.0.1:", options_.port);
}

absl::Status OwnBroker::Stop() {
  if (!running_) return absl::OkStatus();
  running_ = false;
  return Run("stop");
}

absl::Status OwnBroker::Run(const std::string& command) {
  const std::string log =
      absl::StrCat(options_.log_dir, "/kafka-", command, "-", ++runs_, ".log");
  return RunKafkaScript(command, env_, log, options_.timeout);
}

}  // namespace tributary::testing
