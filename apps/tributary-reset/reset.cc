#include "apps/tributary-reset/reset.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"
#include "engine/streams_config.h"

namespace tributary::reset {
namespace {

constexpr int kTimeoutMs = 30000;

std::string UtcText(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone());
}

// Parses "[-+]digits" at the front of `text`, moving past it.
bool ConsumeInt(std::string_view& text, int64_t& value) {
  size_t n = 0;
  if (n < text.size() && (text[n] == '-' || text[n] == '+')) ++n;
  const size_t digits_at = n;
  while (n < text.size() && absl::ascii_isdigit(static_cast<unsigned char>(text[n]))) ++n;
  if (n == digits_at || n - digits_at > 18) return false;
  if (!absl::SimpleAtoi(Sv(text.substr(0, n)), &value)) return false;
  text.remove_prefix(n);
  return true;
}

// The zone offset of "Z", "±HH:MM", "±HHMM" or "±HH".
std::optional<absl::Duration> ParseZone(std::string_view zone) {
  if (zone == "Z" || zone == "z") return absl::ZeroDuration();
  if (zone.size() < 3 || (zone[0] != '+' && zone[0] != '-')) return std::nullopt;
  std::string digits(zone.substr(1));
  if (digits.size() == 5 && digits[2] == ':') digits.erase(2, 1);
  if (digits.size() != 2 && digits.size() != 4) return std::nullopt;
  if (!std::all_of(digits.begin(), digits.end(),
                   [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); })) {
    return std::nullopt;
  }
  const int hours = std::stoi(digits.substr(0, 2));
  const int minutes = digits.size() == 4 ? std::stoi(digits.substr(2, 2)) : 0;
  if (hours > 23 || minutes > 59) return std::nullopt;
  const absl::Duration offset = absl::Hours(hours) + absl::Minutes(minutes);
  return zone[0] == '-' ? -offset : offset;
}

// The lock file of a running instance in `state_path` ("" when none holds
// it). KafkaStreams holds an flock on <state.dir>/<application.id>/.lock.
std::string LockedBy(const std::string& state_path) {
  const std::string lock_path = state_path + "/.lock";
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return "";
  const bool locked = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  close(fd);  // releases the lock if we took it
  return locked ? lock_path : "";
}

}  // namespace

std::string DescribeTarget(const Target& target) {
  struct Visitor {
    std::string operator()(const ToEarliest&) const { return "to earliest"; }
    std::string operator()(const ToLatest&) const { return "to latest"; }
    std::string operator()(const ToOffset& t) const { return absl::StrCat("to offset ", t.offset); }
    std::string operator()(const ToTime& t) const { return "to " + UtcText(t.time); }
  };
  return std::visit(Visitor{}, target);
}

absl::StatusOr<absl::Time> ParseDateTime(std::string_view text) {
  const auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("'", Sv(text),
                     "' is not a date-time YYYY-MM-DDTHH:MM:SS[.sss][Z|+HH:MM|-HH:MM]"));
  };
  const size_t t = text.find('T');
  if (t == std::string_view::npos) return bad();
  // The zone starts at a trailing Z or at a sign after the 'T'.
  size_t zone_at = text.size();
  if (!text.empty() && (text.back() == 'Z' || text.back() == 'z')) {
    zone_at = text.size() - 1;
  } else if (size_t sign = text.find_first_of("+-", t); sign != std::string_view::npos) {
    zone_at = sign;
  }
  absl::Duration offset = absl::ZeroDuration();
  if (zone_at < text.size()) {
    std::optional<absl::Duration> zone = ParseZone(text.substr(zone_at));
    if (!zone) return bad();
    offset = *zone;
  }
  absl::Time local;
  std::string error;
  if (!absl::ParseTime("%Y-%m-%dT%H:%M:%E*S", Sv(text.substr(0, zone_at)), absl::UTCTimeZone(),
                       &local, &error)) {
    return bad();
  }
  return local - offset;
}

absl::StatusOr<absl::Duration> ParseIsoDuration(std::string_view text) {
  const auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", Sv(text), "' is not an ISO-8601 duration PnDTnHnMn.nS (e.g. PT1H, P1DT12H, PT30M)"));
  };
  std::string upper = absl::AsciiStrToUpper(Sv(text));
  std::string_view rest = upper;
  bool negative = false;
  if (!rest.empty() && (rest[0] == '-' || rest[0] == '+')) {
    negative = rest[0] == '-';
    rest.remove_prefix(1);
  }
  if (rest.empty() || rest[0] != 'P') return bad();
  rest.remove_prefix(1);
  absl::Duration total = absl::ZeroDuration();
  bool any = false;
  int64_t n = 0;
  std::string_view before = rest;
  if (ConsumeInt(rest, n) && !rest.empty() && rest[0] == 'D') {
    rest.remove_prefix(1);
    total += absl::Hours(n) * 24;
    any = true;
  } else {
    rest = before;
  }
  if (!rest.empty() && rest[0] == 'T') {
    rest.remove_prefix(1);
    bool any_time = false;
    for (char unit : {'H', 'M'}) {
      before = rest;
      if (ConsumeInt(rest, n) && !rest.empty() && rest[0] == unit) {
        rest.remove_prefix(1);
        total += unit == 'H' ? absl::Hours(n) : absl::Minutes(n);
        any_time = true;
      } else {
        rest = before;
      }
    }
    before = rest;
    if (ConsumeInt(rest, n)) {
      const bool negative_seconds = before[0] == '-';
      absl::Duration seconds = absl::Seconds(n);
      if (!rest.empty() && (rest[0] == '.' || rest[0] == ',')) {
        rest.remove_prefix(1);
        size_t digits = 0;
        while (digits < rest.size() && digits < 9 &&
               absl::ascii_isdigit(static_cast<unsigned char>(rest[digits]))) {
          ++digits;
        }
        int64_t fraction = 0;
        if (digits > 0 && !absl::SimpleAtoi(Sv(rest.substr(0, digits)), &fraction)) return bad();
        for (size_t i = digits; i < 9; ++i) fraction *= 10;
        seconds += negative_seconds ? -absl::Nanoseconds(fraction) : absl::Nanoseconds(fraction);
        rest.remove_prefix(digits);
      }
      if (rest.empty() || rest[0] != 'S') return bad();
      rest.remove_prefix(1);
      total += seconds;
      any_time = true;
    }
    if (!any_time) return bad();
    any = true;
  }
  if (!any || !rest.empty()) return bad();
  return negative ? -total : total;
}

bool IsInternalTopic(std::string_view application_id, std::string_view topic,
                     absl::Span<const std::string> input_topics) {
  const std::string prefix = absl::StrCat(Sv(application_id), "-");
  if (!absl::StartsWith(Sv(topic), prefix)) return false;
  const std::string_view rest = topic.substr(prefix.size());
  if (rest == "control") {  // the shutdown channel (KafkaStreams::SetUncaughtErrorHandler)
    return std::find(input_topics.begin(), input_topics.end(), topic) == input_topics.end();
  }
  if (!absl::EndsWith(Sv(rest), "-repartition") && !absl::EndsWith(Sv(rest), "-changelog")) {
    return false;
  }
  return std::find(input_topics.begin(), input_topics.end(), topic) == input_topics.end();
}

Progress::Progress(std::FILE* out) : out_(out), terminal_(isatty(fileno(out)) == 1) {}

void Progress::Step(std::string_view what) {
  count_.reset();  // ends its line
  step_ = std::string(what);
  std::fprintf(out_, "tributary-reset: %s\n", step_.c_str());
  std::fflush(out_);
}

void Progress::Count(int64_t done, int64_t total) {
  if (!terminal_) return;
  if (!count_.has_value()) {
    ProgressLine::Options options;
    options.label = absl::StrCat("  ", step_);
    options.total = total;
    options.unit = "partitions";
    count_.emplace(std::move(options), /*enabled=*/true, [out = out_](std::string_view text) {
                     std::fwrite(text.data(), 1, text.size(), out);
                     std::fflush(out);
                   });
  }
  count_->Update(done);
  if (done >= total) count_.reset();  // ends its line
}

absl::StatusOr<Plan> MakePlan(KafkaAdmin& admin, const Request& request, Progress& progress) {
  // The engine's own rule for application.id (it names the group, topics and
  // the state dir, so nothing else is safe to act on).
  absl::StatusOr<StreamsConfig> checked =
      StreamsConfig::FromMap({{"application.id", request.application_id}});
  if (!checked.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--application-id: ", checked.status().message()));
  }
  Plan plan;
  plan.request = request;
  const std::string& group = request.application_id;

  progress.Step(absl::StrCat("describing consumer group ", group));
  TRIBUTARY_ASSIGN_OR_RETURN(KafkaAdmin::GroupDescription description,
                             admin.DescribeGroup(group, kTimeoutMs));
  plan.group_state = description.state;
  plan.members = std::move(description.members);
  if (!request.state_dir.empty()) {
    plan.state_path = (std::filesystem::path(request.state_dir) / group).string();
    std::error_code ec;
    plan.state_exists = std::filesystem::exists(plan.state_path, ec);
    if (plan.state_exists) plan.state_locked = LockedBy(plan.state_path);
  }
  if (plan.active()) return plan;

  progress.Step("listing topics and committed offsets");
  TRIBUTARY_ASSIGN_OR_RETURN(auto topics, admin.ListTopics(kTimeoutMs));
  TRIBUTARY_ASSIGN_OR_RETURN(std::vector<TopicPartitionOffset> committed,
                             admin.CommittedOffsets(group, kTimeoutMs));
  std::map<std::pair<std::string, int32_t>, Offset> committed_at;
  for (const TopicPartitionOffset& c : committed) {
    committed_at[{c.topic, c.partition.value}] = c.offset;
    if (IsInternalTopic(group, c.topic, request.input_topics)) plan.internal_offsets.push_back(c);
  }
  for (const auto& [name, partitions] : topics) {
    if (IsInternalTopic(group, name, request.input_topics)) plan.internal_topics[name] = partitions;
  }

  std::set<std::string> seen;
  int64_t total = 0;
  for (const std::string& topic : request.input_topics) {
    if (!seen.insert(topic).second) continue;
    auto it = topics.find(topic);
    if (it == topics.end()) {
      plan.missing_topics.push_back(topic);
    } else {
      total += it->second;
    }
  }
  if (!plan.missing_topics.empty()) return plan;

  if (total > 0) {
    progress.Step(absl::StrCat("reading the offsets of ", total, " input partitions"));
  }
  int64_t done = 0;
  for (const std::string& topic : seen) {
    std::vector<Partition> partitions;
    for (int32_t p = 0; p < topics.at(topic); ++p) partitions.push_back(Partition{p});
    std::vector<std::optional<Offset>> by_time(partitions.size());
    if (const ToTime* to = std::get_if<ToTime>(&request.target)) {
      TRIBUTARY_ASSIGN_OR_RETURN(by_time,
                                 admin.OffsetsForTime(topic, partitions,
                                                      TimestampMs{absl::ToUnixMillis(to->time)},
                                                      kTimeoutMs));
    }
    for (size_t i = 0; i < partitions.size(); ++i) {
      PartitionReset reset;
      reset.topic = topic;
      reset.partition = partitions[i];
      auto c = committed_at.find({topic, partitions[i].value});
      if (c != committed_at.end()) reset.committed = c->second;
      TRIBUTARY_ASSIGN_OR_RETURN(reset.watermarks,
                                 admin.QueryWatermarks(topic, partitions[i], kTimeoutMs));
      const Offset low = reset.watermarks.low;
      const Offset high = reset.watermarks.high;
      if (std::holds_alternative<ToEarliest>(request.target)) {
        reset.target = low;
      } else if (std::holds_alternative<ToLatest>(request.target)) {
        reset.target = high;
      } else if (const ToOffset* to = std::get_if<ToOffset>(&request.target)) {
        reset.target = Offset{std::clamp(to->offset, low.value, high.value)};
        if (reset.target.value != to->offset) {
          reset.note = absl::StrCat("offset ", to->offset, " is outside [", low.value, ", ",
                                    high.value, "]");
        }
      } else if (by_time[i].has_value()) {
        reset.target = *by_time[i];
      } else {
        reset.target = high;
        reset.note = "no record at or after the time: the end";
      }
      plan.offsets.push_back(std::move(reset));
      progress.Count(++done, total);
    }
  }
  return plan;
}

std::string DescribePlan(const Plan& plan) {
  const Request& r = plan.request;
  std::string text = absl::StrCat("application ", r.application_id, ": consumer group ",
                                  r.application_id, " is ", plan.group_state, "\n");
  if (r.input_topics.empty()) {
    absl::StrAppend(&text, "input topics: none given, no offsets reset\n");
  } else {
    absl::StrAppend(&text, "input topics ", absl::StrJoin(r.input_topics, ","), ", ",
                    DescribeTarget(r.target), " (", plan.offsets.size(), " partitions):\n");
  }
  for (const PartitionReset& p : plan.offsets) {
    absl::StrAppend(&text, "  ", p.topic, "[", p.partition.value, "] committed ",
                    p.committed ? absl::StrCat(p.committed->value) : "none", " -> ",
                    p.target.value, "  (first ", p.watermarks.low.value, ", end ",
                    p.watermarks.high.value, ")", p.note.empty() ? "" : ": ", p.note, "\n");
  }
  absl::StrAppend(&text, "internal topics to delete (", plan.internal_topics.size(), "):\n");
  for (const auto& [name, partitions] : plan.internal_topics) {
    absl::StrAppend(&text, "  ", name, " (", partitions, " partitions)\n");
  }
  absl::StrAppend(&text, "committed offsets of internal topics to delete (",
                  plan.internal_offsets.size(), "):\n");
  for (const TopicPartitionOffset& o : plan.internal_offsets) {
    absl::StrAppend(&text, "  ", o.topic, "[", o.partition.value, "] committed ", o.offset.value,
                    "\n");
  }
  if (plan.state_path.empty()) {
    absl::StrAppend(&text, "local state: left alone (no --state-dir)\n");
  } else {
    absl::StrAppend(&text, "local state to remove: ", plan.state_path,
                    plan.state_exists ? "" : " (does not exist)", "\n");
  }
  return text;
}

absl::Status ApplyPlan(KafkaAdmin& admin, const Plan& plan, Progress& progress) {
  const std::string& group = plan.request.application_id;
  std::vector<std::string> done;
  const auto failed = [&](const absl::Status& status) {
    return absl::Status(status.code(),
                        absl::StrCat(status.message(), " (done before: ",
                                     done.empty() ? "nothing" : absl::StrJoin(done, "; "), ")"));
  };
  if (!plan.offsets.empty()) {
    progress.Step(absl::StrCat("committing ", plan.offsets.size(), " input offsets"));
    std::vector<TopicPartitionOffset> offsets;
    for (const PartitionReset& p : plan.offsets) {
      offsets.push_back({p.topic, p.partition, p.target});
    }
    if (absl::Status s = admin.AlterGroupOffsets(group, offsets, kTimeoutMs); !s.ok()) {
      return failed(s);
    }
    done.push_back(absl::StrCat(offsets.size(), " input offsets committed"));
  }
  if (!plan.internal_offsets.empty()) {
    progress.Step(absl::StrCat("deleting ", plan.internal_offsets.size(),
                               " committed offsets of internal topics"));
    if (absl::Status s = admin.DeleteGroupOffsets(group, plan.internal_offsets, kTimeoutMs);
        !s.ok()) {
      return failed(s);
    }
    done.push_back(absl::StrCat(plan.internal_offsets.size(), " internal offsets deleted"));
  }
  if (!plan.internal_topics.empty()) {
    progress.Step(absl::StrCat("deleting ", plan.internal_topics.size(), " internal topics"));
    std::vector<std::string> names;
    for (const auto& [name, partitions] : plan.internal_topics) names.push_back(name);
    if (absl::Status s = admin.DeleteTopics(names, 2 * kTimeoutMs); !s.ok()) return failed(s);
    done.push_back(absl::StrCat(names.size(), " internal topics deleted"));
  }
  if (plan.state_exists) {
    progress.Step(absl::StrCat("removing ", plan.state_path));
    if (std::string locked = LockedBy(plan.state_path); !locked.empty()) {
      return failed(absl::FailedPreconditionError(
          absl::StrCat(locked, " is locked by a running instance; state not removed")));
    }
    std::error_code ec;
    std::filesystem::remove_all(plan.state_path, ec);
    if (ec) {
      return failed(absl::InternalError(
          absl::StrCat("cannot remove ", plan.state_path, ": ", ec.message())));
    }
  }
  return absl::OkStatus();
}

std::string DescribeDone(const Plan& plan) {
  std::set<std::string> topics;
  for (const PartitionReset& p : plan.offsets) topics.insert(p.topic);
  std::string state = "local state left alone";
  if (plan.state_exists) {
    state = absl::StrCat("local state ", plan.state_path, " removed");
  } else if (!plan.state_path.empty()) {
    state = "no local state to remove";
  }
  return absl::StrCat("done: ", plan.offsets.size(), " offsets of ", topics.size(),
                      " input topics committed (", DescribeTarget(plan.request.target), "); ",
                      plan.internal_topics.size(), " internal topics and ",
                      plan.internal_offsets.size(), " of the group's offsets of them deleted; ",
                      state);
}

}  // namespace tributary::reset
