// word-count: the README's DSL example, built and run as part of the tree.
// Reads lines from "text", counts words, writes "word-counts" (exactly once).
#include <cstdio>
#include <csignal>
#include <thread>

#include "absl/strings/str_split.h"
#include "engine/kafka_streams.h"
#include "engine/streams_builder.h"

std::atomic<bool> stop{false};

int main(int argc, char** argv) {
  using namespace tributary;
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
    std::fprintf(stderr, "%s\n", (!topology.ok() ? topology.status() : config.status()).ToString().c_str());
    return 1;
  }
  std::printf("%s", topology->Describe().c_str());
  auto streams = KafkaStreams::Open(*std::move(topology), *std::move(config));
  if (!streams.ok() || !(*streams)->Start().ok()) return 2;
  std::signal(SIGINT, [](int) { stop = true; });
  while (!stop && (*streams)->state() == KafkaStreams::State::kRunning) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return (*streams)->Close().ok() ? 0 : 2;
}
