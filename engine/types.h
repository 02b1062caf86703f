// Strong types that cross the engine's APIs: partitions, offsets, timestamps
// and task ids. Plain values; safe to copy between threads.
#pragma once

#include <compare>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"

namespace tributary {

struct Partition {
  int32_t value = -1;
  constexpr auto operator<=>(const Partition&) const = default;
};

struct Offset {
  int64_t value = -1;
  constexpr auto operator<=>(const Offset&) const = default;
};

// Milliseconds since the Unix epoch, as Kafka record timestamps.
struct TimestampMs {
  int64_t value = 0;
  constexpr auto operator<=>(const TimestampMs&) const = default;
};

// What KafkaStreams does when a stream thread ends with an error that the
// thread itself does not recover from (KafkaStreams::SetUncaughtErrorHandler),
// as Kafka Streams' StreamThreadExceptionResponse.
enum class StreamThreadErrorResponse {
  kReplaceThread,        // a new thread (new clients, new group member) takes its place
  kShutdownClient,       // this instance stops (the default)
  kShutdownApplication,  // every instance of the application.id stops
};

// One task: partition index `partition` of sub-topology `subtopology`.
struct TaskId {
  int subtopology = 0;
  int32_t partition = 0;
  constexpr auto operator<=>(const TaskId&) const = default;
  std::string ToString() const { return absl::StrCat(subtopology, "_", partition); }
  template <typename H>
  friend H AbslHashValue(H h, const TaskId& id) {
    return H::combine(std::move(h), id.subtopology, id.partition);
  }
};

}  // namespace tributary
