// CheckpointFile: the small text file in a task directory that records, per
// changelog topic partition, the offset up to which the local store is known
// to reflect the changelog (Kafka Streams' ".checkpoint"). Format, as Kafka
// Streams' OffsetCheckpoint: a version line "0", a count line, then one
// "<topic> <partition> <offset>" line per entry.
// Thread-safety: a CheckpointFile is immutable; concurrent Write/Delete calls
// on the same path from different threads race (last rename wins), so one
// task thread owns each path.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tributary {

class CheckpointFile {
 public:
  struct TopicPartition {
    std::string topic;
    int32_t partition = 0;
    auto operator<=>(const TopicPartition&) const = default;
  };
  using Offsets = std::map<TopicPartition, int64_t>;

  explicit CheckpointFile(std::string path) : path_(std::move(path)) {}

  const std::string& path() const { return path_; }

  // Returns the stored offsets; an empty map if the file does not exist.
  // A malformed file yields DataLoss naming the path and line number.
  absl::StatusOr<Offsets> Read() const;

  // Replaces the file atomically: writes "<path>.tmp", fsyncs it, renames it
  // over the path and fsyncs the directory. A crash leaves either the old or
  // the new content, never a mix.
  // REQUIRES: the directory exists; topics are non-empty and contain no
  // whitespace (true of every legal Kafka topic name), else InvalidArgument.
  absl::Status Write(const Offsets& offsets) const;

  // Removes the file; OK if it does not exist. Used when the store is wiped or
  // is about to be written outside a checkpointed state (EOS processing).
  absl::Status Delete() const;

 private:
  std::string path_;
};

}  // namespace tributary
