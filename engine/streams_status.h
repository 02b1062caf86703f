// What a KafkaStreams instance tells of itself beyond its metrics: the
// dead letters it wrote lately and the state of its stream threads' tasks,
// as the status page (GET / on metrics.port) shows them. Plain values,
// copied out of the instance; safe to use on any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/types.h"

namespace tributary {

// One record this instance sent to the dead-letter topic
// (processing.error.policy=continue), as its tributary.* headers describe
// it. Under exactly_once_v2 the send is part of a Kafka transaction that may
// still abort (then the record is processed, and dead-lettered, again).
struct DeadLetterInfo {
  TimestampMs time;          // wall clock when it was sent
  std::string topic;         // the record's source topic (real name)
  Partition partition;
  Offset offset;
  std::string transaction;   // tributary.source.transaction; empty when unknown
  std::string error;         // tributary.error (cut to kMaxErrorBytes)

  // Longer errors are cut (at a UTF-8 character boundary) and end in "...".
  static constexpr size_t kMaxErrorBytes = 2048;
};

// One task of a stream thread, as the thread last published it (at its
// commits, assignment changes and at least once a second).
struct TaskStatus {
  TaskId id;
  std::string state;        // CREATED, RESTORING, RUNNING (TaskStateName)
  int64_t processed = 0;    // records processed since the task was opened here
  int64_t restored = 0;     // changelog records restored so far
  int64_t to_restore = 0;   // records to restore when it was opened (0: none)
};

struct ThreadStatus {
  std::string name;         // as the `thread` metric label
  std::string state;        // RUNNING, PARTITIONS_ASSIGNED, ... (ThreadStateName)
  std::vector<TaskStatus> tasks;  // by task id
};

}  // namespace tributary
