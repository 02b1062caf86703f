#include "engine/streams_builder.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"

namespace tributary {
namespace {

// Kafka Streams' test for a generated name: "KSTREAM.*-[0-9]{10}".
bool IsGeneratedName(std::string_view name) {
  constexpr size_t kDigits = 10;
  if (!absl::StartsWith(Sv(name), "KSTREAM") || name.size() < kDigits + 1)
    return false;
  const std::string_view tail = name.substr(name.size() - kDigits - 1);
  if (tail.front() != '-') return false;
  for (char c : tail.substr(1)) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

std::string StreamsBuilder::NewName(std::string_view prefix) {
  return absl::StrCat(Sv(prefix), absl::Dec(index_++, absl::kZeroPad10));
}

std::string StreamsBuilder::NewStoreName(std::string_view prefix) {
  return absl::StrCat(Sv(prefix), "STATE-STORE-",
                      absl::Dec(index_++, absl::kZeroPad10));
}

std::string StreamsBuilder::NameOr(const Named& named,
                                   std::string_view prefix) {
  return named.name.empty() ? NewName(prefix) : named.name;
}

void StreamsBuilder::Fail(std::string message) {
  if (error_.ok()) {
    error_ =
        absl::InvalidArgumentError(absl::StrCat("StreamsBuilder: ", message));
  }
}

std::string StreamsBuilder::AddRepartition(const std::string& parent,
                                           const std::string& prefix,
                                           int32_t partitions,
                                           StreamPartitioner partitioner) {
  const std::string topic = absl::EndsWith(prefix, "-repartition")
                                ? prefix
                                : absl::StrCat(prefix, "-repartition");
  // As Kafka Streams: generated node names for a generated prefix, names
  // derived from the topic for a user-given one.
  const bool generated = IsGeneratedName(prefix);
  std::string sink =
      generated ? NewName("KSTREAM-SINK-") : absl::StrCat(topic, "-sink");
  std::string source =
      generated ? NewName("KSTREAM-SOURCE-") : absl::StrCat(topic, "-source");
  topology_.AddRepartitionTopic(topic, partitions);
  topology_.AddSink(std::move(sink), topic, {parent}, std::move(partitioner));
  topology_.AddSource(source, {topic});
  return source;
}

StreamsBuilder& StreamsBuilder::AddStateStore(StoreSpec spec) {
  topology_.AddStateStore(std::move(spec), {});
  return *this;
}

absl::StatusOr<Topology> StreamsBuilder::Build() {
  if (built_) {
    return absl::FailedPreconditionError(
        "StreamsBuilder: Build() was already called; the topology has moved "
        "out");
  }
  built_ = true;
  if (!error_.ok()) return error_;
  if (absl::Status status = topology_.Build(); !status.ok()) return status;
  return std::move(topology_);
}

}  // namespace tributary
