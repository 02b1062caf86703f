// tributary-reset's work apart from its command line: what a reset of a
// Tributary application would do (MakePlan) and doing it (ApplyPlan), as
// Kafka Streams' application reset tool does for a Kafka Streams application:
// the consumer group's committed offsets of the input topics moved to a
// target, the application's internal topics (and the group's offsets of
// them) deleted, its local state removed. Single-threaded: the program's main
// thread.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "base/progress_line.h"
#include "engine/kafka_clients.h"
#include "engine/types.h"

namespace tributary::reset {

// Where the input topics' committed offsets go, per partition.
struct ToEarliest {};  // its first offset (the low watermark)
struct ToLatest {};    // its end (the high watermark)
struct ToOffset {      // this offset, clamped to [first, end]
  int64_t offset = 0;
};
struct ToTime {  // the first record stamped at or after `time`; the end when none is
  absl::Time time;
};
using Target = std::variant<ToEarliest, ToLatest, ToOffset, ToTime>;

// "to earliest", "to offset 42", "to 2024-03-01T10:00:00.000Z", ...
std::string DescribeTarget(const Target& target);

// --to-datetime, as Kafka's tool reads it: YYYY-MM-DDTHH:MM:SS, optional
// fraction of a second, optional zone Z, ±HH:MM, ±HHMM or ±HH; without a
// zone the time is UTC.
absl::StatusOr<absl::Time> ParseDateTime(std::string_view text);
// --by-duration, as Kafka's tool reads it (java.time.Duration.parse): ISO-8601
// [-]PnDTnHnMn.nS, e.g. PT1H, P1DT12H, PT0.5S; case-insensitive.
absl::StatusOr<absl::Duration> ParseIsoDuration(std::string_view text);

// Whether `topic` is one of the application's internal topics by Kafka
// Streams' rule: named "<application_id>-...-repartition" or
// "<application_id>-...-changelog", and not one of `input_topics`; or
// "<application_id>-control", KafkaStreams' shutdown channel.
bool IsInternalTopic(std::string_view application_id, std::string_view topic,
                     absl::Span<const std::string> input_topics);

struct Request {
  std::string application_id;
  std::vector<std::string> input_topics;
  Target target = ToEarliest{};
  std::string state_dir;  // the application's state.dir; empty: local state left alone
};

// One input partition's committed offset, now and after the reset.
struct PartitionReset {
  std::string topic;
  Partition partition;
  std::optional<Offset> committed;  // nullopt: the group has none
  KafkaAdmin::Watermarks watermarks;
  Offset target;
  std::string note;  // why `target` is not what was asked, when it is not
};

// What a reset would do, as the cluster and the disk are now.
struct Plan {
  Request request;
  std::string group_state;                       // "Empty", "Stable", "Dead", ...
  std::vector<KafkaAdmin::GroupMember> members;  // active members: refuse
  std::string state_locked;                      // a running instance's lock file: refuse
  std::vector<std::string> missing_topics;       // input topics the cluster lacks: refuse
  std::vector<PartitionReset> offsets;
  std::map<std::string, int32_t> internal_topics;  // name -> partitions
  // The group's committed offsets of internal topics (also of ones already
  // deleted: they would apply to a topic created again under the name).
  std::vector<TopicPartitionOffset> internal_offsets;
  std::string state_path;  // <state_dir>/<application_id>; empty without state_dir
  bool state_exists = false;

  // Whether an instance of the application is running (group members, or
  // the state dir locked on this machine).
  bool active() const { return !members.empty() || !state_locked.empty(); }
};

// Progress of the steps, for a person watching `out`: a line per step and,
// when `out` is a terminal, a count updated in place for long steps.
class Progress {
 public:
  explicit Progress(std::FILE* out);
  void Step(std::string_view what);
  // On a terminal: "<step>: done/total partitions (..%), rate, elapsed" in
  // place (a ProgressLine, redrawn a few times a second; the line ends at
  // done == total or at the next step). Nothing otherwise.
  void Count(int64_t done, int64_t total);

 private:
  std::FILE* out_;
  bool terminal_;
  std::string step_;
  std::optional<ProgressLine> count_;  // the current step's, once counting
};

// Reads what the reset would change: the group, the topics, the offsets,
// the state dir. InvalidArgument for a bad request; Kafka's errors as they
// come. Changes nothing.
absl::StatusOr<Plan> MakePlan(KafkaAdmin& admin, const Request& request, Progress& progress);

// The plan as lines for a person: each input partition's committed offset
// and target, each internal topic, the state dir.
std::string DescribePlan(const Plan& plan);

// Does what `plan` says, in this order: commits the input offsets, deletes
// the group's offsets of internal topics, deletes the internal topics
// (waiting until the cluster no longer lists them), removes the state dir.
// Stops at the first error, which says what was done before it.
// REQUIRES: !plan.active() and plan.missing_topics.empty().
absl::Status ApplyPlan(KafkaAdmin& admin, const Plan& plan, Progress& progress);

// One line: what ApplyPlan did.
std::string DescribeDone(const Plan& plan);

}  // namespace tributary::reset
