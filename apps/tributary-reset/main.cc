// tributary-reset: resets a Tributary application so that it processes its
// input again (design contract G7, replayable), as Kafka Streams'
// kafka-streams-application-reset does for a Kafka Streams application.
//
//   tributary-reset --application-id ID [--bootstrap-servers HOST:PORT,...]
//       [--input-topics T1,T2,...]
//       [--to-earliest | --to-latest | --to-offset N |
//        --to-datetime YYYY-MM-DDTHH:MM:SS[.sss][Z|+HH:MM|-HH:MM] |
//        --by-duration PnDTnHnMnS]
//       [--state-dir DIR] [--dry-run]
//
// With every instance of the application stopped, it (1) commits, for the
// consumer group ID, the chosen offset of every partition of the input topics
// (default --to-earliest, as Kafka's tool), (2) deletes the group's committed
// offsets of the application's internal topics and (3) those topics, every
// "ID-...-repartition" and "ID-...-changelog", and (4) with --state-dir, the
// local state DIR/ID. Output topics (the dead-letter topic too) are left
// alone. --dry-run prints the same plan and changes nothing.
//
// Exit codes:
//   0  done (with --dry-run: the plan printed, nothing changed)
//   1  usage: a bad or missing flag
//   2  a Kafka or file-system error, or an input topic that does not exist
//      (then nothing was changed; otherwise the message says what was done)
//   3  the application is running: its consumer group has active members
//      (each named), or its state dir is locked by an instance on this
//      machine; nothing was changed
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "apps/common/command_line.h"
#include "apps/tributary-reset/reset.h"
#include "engine/kafka_clients.h"

ABSL_FLAG(std::string, application_id, "",
          "the application's application.id: its consumer group and the prefix of its internal "
          "topics (required)");
ABSL_FLAG(std::string, bootstrap_servers, "",
          "Kafka bootstrap servers (default: $TRIBUTARY_BOOTSTRAP, else 127.0.0.1:19092)");
ABSL_FLAG(std::vector<std::string>, input_topics, {},
          "comma-separated input topics whose committed offsets to reset");
ABSL_FLAG(bool, to_earliest, false, "reset input offsets to each partition's first (default)");
ABSL_FLAG(bool, to_latest, false, "reset input offsets to each partition's end");
ABSL_FLAG(std::string, to_offset, "", "reset input offsets to N (clamped to each partition)");
ABSL_FLAG(std::string, to_datetime, "",
          "reset input offsets to the first record at or after YYYY-MM-DDTHH:MM:SS[.sss]"
          "[Z|+HH:MM|-HH:MM] (no zone: UTC)");
ABSL_FLAG(std::string, by_duration, "",
          "reset input offsets to the first record at or after now minus an ISO-8601 duration "
          "PnDTnHnMnS (e.g. PT1H)");
ABSL_FLAG(std::string, state_dir, "",
          "the application's state.dir: removes STATE_DIR/APPLICATION_ID (default: local state "
          "left alone)");
ABSL_FLAG(bool, dry_run, false, "print what would be done; change nothing");

namespace tributary {
namespace {

constexpr int kDone = 0;
constexpr int kUsage = 1;
constexpr int kFailed = 2;
constexpr int kRunning = 3;

int Usage(const std::string& message) {
  std::fprintf(stderr, "tributary-reset: %s (--help for usage)\n", message.c_str());
  return kUsage;
}

std::string DefaultBootstrap() {
  const char* env = std::getenv("TRIBUTARY_BOOTSTRAP");
  return env != nullptr && *env != '\0' ? env : "127.0.0.1:19092";
}

int Main(const std::vector<std::string>& positional) {
  if (positional.size() > 1) {
    return Usage(absl::StrCat("unexpected argument '", positional[1], "'"));
  }
  reset::Request request;
  request.application_id = absl::GetFlag(FLAGS_application_id);
  if (request.application_id.empty()) return Usage("--application-id is required");
  for (const std::string& topic : absl::GetFlag(FLAGS_input_topics)) {
    if (!topic.empty()) request.input_topics.push_back(topic);
  }
  request.state_dir = absl::GetFlag(FLAGS_state_dir);

  std::vector<std::string> targets;
  if (absl::GetFlag(FLAGS_to_earliest)) targets.push_back("--to-earliest");
  if (absl::GetFlag(FLAGS_to_latest)) {
    targets.push_back("--to-latest");
    request.target = reset::ToLatest{};
  }
  if (const std::string n = absl::GetFlag(FLAGS_to_offset); !n.empty()) {
    targets.push_back("--to-offset");
    int64_t offset = 0;
    if (!absl::SimpleAtoi(n, &offset) || offset < 0) {
      return Usage(absl::StrCat("--to-offset '", n, "' is not an offset (0 or more)"));
    }
    request.target = reset::ToOffset{offset};
  }
  if (const std::string text = absl::GetFlag(FLAGS_to_datetime); !text.empty()) {
    targets.push_back("--to-datetime");
    absl::StatusOr<absl::Time> time = reset::ParseDateTime(text);
    if (!time.ok()) return Usage(absl::StrCat("--to-datetime: ", time.status().message()));
    request.target = reset::ToTime{*time};
  }
  if (const std::string text = absl::GetFlag(FLAGS_by_duration); !text.empty()) {
    targets.push_back("--by-duration");
    absl::StatusOr<absl::Duration> duration = reset::ParseIsoDuration(text);
    if (!duration.ok()) return Usage(absl::StrCat("--by-duration: ", duration.status().message()));
    request.target = reset::ToTime{absl::Now() - *duration};
  }
  if (targets.size() > 1) {
    return Usage(absl::StrCat("choose one of ", absl::StrJoin(targets, ", ")));
  }
  if (!targets.empty() && request.input_topics.empty()) {
    return Usage(absl::StrCat(targets[0], " needs --input-topics"));
  }

  std::string bootstrap = absl::GetFlag(FLAGS_bootstrap_servers);
  if (bootstrap.empty()) bootstrap = DefaultBootstrap();
  absl::StatusOr<std::unique_ptr<KafkaAdmin>> admin =
      KafkaAdmin::Open({{"bootstrap.servers", bootstrap}, {"client.id", "tributary-reset"}});
  if (!admin.ok()) {
    std::fprintf(stderr, "tributary-reset: %s\n", admin.status().ToString().c_str());
    return kFailed;
  }
  reset::Progress progress(stderr);
  absl::StatusOr<reset::Plan> plan = reset::MakePlan(**admin, request, progress);
  if (!plan.ok()) {
    if (absl::IsInvalidArgument(plan.status())) return Usage(std::string(plan.status().message()));
    std::fprintf(stderr, "tributary-reset: %s; nothing changed\n",
                 plan.status().ToString().c_str());
    return kFailed;
  }
  if (plan->active()) {
    std::string text = absl::StrCat("tributary-reset: application ", request.application_id,
                                    " is running; stop every instance first. Nothing changed.\n");
    if (!plan->members.empty()) {
      absl::StrAppend(&text, "  consumer group ", request.application_id, " is ",
                      plan->group_state, " with ", plan->members.size(), " active member(s):\n");
    }
    for (const KafkaAdmin::GroupMember& m : plan->members) {
      absl::StrAppend(&text, "    client.id ", m.client_id, " on host ", m.host, " (member ",
                      m.member_id, ")\n");
    }
    if (!plan->state_locked.empty()) {
      absl::StrAppend(&text, "  ", plan->state_locked,
                      " is locked by an instance running on this machine\n");
    }
    std::fputs(text.c_str(), stderr);
    return kRunning;
  }
  if (!plan->missing_topics.empty()) {
    std::fprintf(stderr, "tributary-reset: input topic(s) %s do not exist on %s; nothing changed\n",
                 absl::StrJoin(plan->missing_topics, ", ").c_str(), bootstrap.c_str());
    return kFailed;
  }

  const bool dry_run = absl::GetFlag(FLAGS_dry_run);
  std::printf("%s on %s:\n%s",
              dry_run ? "Dry run, nothing is changed; the reset would do this" : "Resetting",
              bootstrap.c_str(), reset::DescribePlan(*plan).c_str());
  std::fflush(stdout);
  if (dry_run) {
    std::printf("dry run: nothing changed\n");
    return kDone;
  }
  if (absl::Status applied = reset::ApplyPlan(**admin, *plan, progress); !applied.ok()) {
    std::fprintf(stderr, "tributary-reset: %s\n", applied.ToString().c_str());
    return kFailed;
  }
  std::printf("%s\n", reset::DescribeDone(*plan).c_str());
  return kDone;
}

}  // namespace
}  // namespace tributary

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "tributary-reset --application-id ID [--bootstrap-servers HOST:PORT] "
      "[--input-topics T1,T2] [--to-earliest | --to-latest | --to-offset N | "
      "--to-datetime YYYY-MM-DDTHH:MM:SS[.sss][Z|+HH:MM] | --by-duration PnDTnHnMnS] "
      "[--state-dir DIR] [--dry-run]: resets a Tributary application's committed offsets, "
      "internal topics and local state so that it processes its input again. Stop every "
      "instance first. Exit codes: 0 done, 1 usage, 2 Kafka or file-system error, 3 the "
      "application is running.");
  const std::vector<std::string> positional = tributary::ParseDashedCommandLine(argc, argv);
  return tributary::Main(positional);
}
