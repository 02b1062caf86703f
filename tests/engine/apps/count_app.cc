// count_app: a count-by-key application on the engine's low-level processor
// API, run as a child process by the real-broker EOS tests (which SIGKILL and
// restart it). Reads `--input`, keeps a changelogged RocksDB count per key and
// writes "<count>" per update to `--output`. Runs until SIGTERM/SIGINT; exits
// 0 after a clean close, 2 on a stream error.
#include <csignal>
#include <cstdio>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/kafka_streams.h"
#include "engine/processor.h"
#include "engine/topology.h"

ABSL_FLAG(std::string, config, "", "properties file (application.id, bootstrap.servers, ...)");
ABSL_FLAG(std::string, input, "input", "input topic");
ABSL_FLAG(std::string, output, "output", "output topic");

namespace {

std::atomic<bool> stop{false};

class CountProcessor : public tributary::Processor {
 public:
  absl::Status Init(tributary::ProcessorContext& context) override {
    context_ = &context;
    store_ = context.GetStateStore("counts");
    if (store_ == nullptr) return absl::InternalError("no store 'counts'");
    return absl::OkStatus();
  }
  absl::Status Process(const tributary::Record& record) override {
    if (!record.key) return absl::OkStatus();
    TRIBUTARY_ASSIGN_OR_RETURN(std::optional<std::string> old, store_->Get(*record.key));
    int64_t count = 0;
    if (old && !absl::SimpleAtoi(*old, &count)) {
      return absl::DataLossError("corrupt count");
    }
    std::string next = absl::StrCat(count + 1);
    TRIBUTARY_RETURN_IF_ERROR(store_->Put(*record.key, next));
    tributary::Record out;
    out.key = record.key;
    out.value = next;
    out.timestamp = record.timestamp;
    return context_->Forward(out);
  }

 private:
  tributary::ProcessorContext* context_ = nullptr;
  tributary::KeyValueStore* store_ = nullptr;
};

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::signal(SIGTERM, [](int) { stop = true; });
  std::signal(SIGINT, [](int) { stop = true; });
  auto config = tributary::StreamsConfig::FromFile(absl::GetFlag(FLAGS_config));
  if (!config.ok()) {
    std::fprintf(stderr, "count_app: %s\n", config.status().ToString().c_str());
    return 1;
  }
  tributary::Topology topology;
  topology.AddSource("source", {absl::GetFlag(FLAGS_input)})
      .AddProcessor("count", [] { return std::make_unique<CountProcessor>(); }, {"source"})
      .AddStateStore({"counts", tributary::StoreType::kRocksDb, true}, {"count"})
      .AddSink("sink", absl::GetFlag(FLAGS_output), {"count"});
  auto streams = tributary::KafkaStreams::Open(std::move(topology), *std::move(config));
  if (!streams.ok()) {
    std::fprintf(stderr, "count_app: %s\n", streams.status().ToString().c_str());
    return 1;
  }
  if (absl::Status s = (*streams)->Start(); !s.ok()) {
    std::fprintf(stderr, "count_app: %s\n", s.ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "count_app: running\n");
  while (!stop && tributary::IsRunningOrRebalancing((*streams)->state())) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  absl::Status closed = (*streams)->Close();
  std::fprintf(stderr, "count_app: closed: %s\n%s\n", closed.ToString().c_str(),
               (*streams)->metrics().ToString().c_str());
  return closed.ok() ? 0 : 2;
}
