// word-count: the README's DSL example, built and run as part of the tree.
// Reads lines from "text", counts words, writes "word-counts" (exactly once).
// Stops as order-aggregator does (apps/common/shutdown.h): the first SIGINT
// or SIGTERM closes within commit.interval.ms + 30 s, a second exits at once.
// Exit codes: 0 stopped; 1 bad configuration; 2 the stream failed; 3 the
// close did not finish in time; 130 / 143 a second SIGINT / SIGTERM.
#include <cstdio>

#include "absl/strings/str_split.h"
#include "apps/common/shutdown.h"
#include "engine/kafka_streams.h"
#include "engine/streams_builder.h"

int main(int argc, char** argv) {
  using namespace tributary;
  InstallShutdownSignals("word-count");
  StreamsBuilder builder;
  builder.Stream<std::string, std::string>({"text"})
      .FlatMapValues<std::string>([](const std::string& line) {
        return std::vector<std::string>(absl::StrSplit(line, ' ', absl::SkipEmpty()));
      })
      .GroupBy<std::string>([](const std::string&, const std::string& word) { return word; })
      .Count({.store_name = "counts"})
      .ToStream()
      .To("word-counts", Produced{Serdes::String(), Serdes::Int64()});
  auto topology = builder.Build();
  auto config = StreamsConfig::FromFile(argc > 1 ? argv[1] : "word-count.properties");
  if (!topology.ok() || !config.ok()) {
    std::fprintf(stderr, "word-count: %s\n",
                 (!topology.ok() ? topology.status() : config.status()).ToString().c_str());
    return kExitUsage;
  }
  std::printf("%s", topology->Describe().c_str());
  const absl::Duration close_timeout = config->commit_interval() + kCloseBound;
  auto streams = KafkaStreams::Open(*std::move(topology), *std::move(config));
  if (!streams.ok()) {
    std::fprintf(stderr, "word-count: %s\n", streams.status().ToString().c_str());
    // A full disk is no configuration error (as in order-aggregator).
    return absl::IsResourceExhausted(streams.status()) ? kExitStreamError : kExitUsage;
  }
  if (absl::Status started = (*streams)->Start(); !started.ok()) {
    std::fprintf(stderr, "word-count: cannot start: %s\n", started.ToString().c_str());
    return kExitStreamError;
  }
  RunOptions options;
  options.program = "word-count";
  options.close_timeout = close_timeout;
  return RunUntilShutdown(**streams, options);
}
