// cdc-check: reads an aggregate output topic to its end with read_committed
// and checks it against the versions cdc-gen --expected wrote: every
// expected version (root, source transaction) must be in the output, as a
// record keyed by the root id whose source_tx.id is the transaction and
// whose aggregate (without the engine's source_tx and version fields) is the
// expected one. Tombstones are expected versions too (aggregate null).
//
//   cdc-check --bootstrap 127.0.0.1:19092 --topic order-aggregates
//             --expected /tmp/expected.jsonl [--tx 123456]
//
// --tx keeps only the expected versions of that transaction (e.g. the huge
// one of cdc-gen --huge-tx-rows); output records of other transactions are
// then skipped unread. Prints one summary line (records read, versions
// expected / matched / missing / different, lines per matched version).
// Bounded by --timeout-s. Exit codes: 0 all found; 1 usage; 2 Kafka error or
// timeout; 3 a version is missing or different.
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "apps/cdc-gen/expected_version.h"
#include "apps/cdc-gen/reference_model.h"
#include "apps/common/command_line.h"
#include "engine/kafka_clients.h"

ABSL_FLAG(std::string, bootstrap, "", "Kafka bootstrap servers, HOST:PORT");
ABSL_FLAG(std::string, topic, "", "the aggregate output topic");
ABSL_FLAG(std::string, expected, "", "cdc-gen --expected file");
ABSL_FLAG(std::string, tx, "", "check only the versions of this xid");
ABSL_FLAG(std::string, source_field, "source_tx",
          "the engine's source field (order-aggregator: aggregate.source.field)");
ABSL_FLAG(std::string, version_field, "version",
          "the engine's version field (aggregate.version.field)");
ABSL_FLAG(int, timeout_s, 300, "bound on the whole read");

namespace tributary::cdcgen {
namespace {

using Clock = std::chrono::steady_clock;

int Fail(int code, const std::string& message) {
  std::fprintf(stderr, "cdc-check: %s\n", message.c_str());
  return code;
}

// One output version of a wanted transaction.
struct Got {
  std::string tx;
  std::optional<std::string> value;  // nullopt: tombstone
};

int Run() {
  const std::string bootstrap = absl::GetFlag(FLAGS_bootstrap);
  const std::string topic = absl::GetFlag(FLAGS_topic);
  const std::string path = absl::GetFlag(FLAGS_expected);
  const std::string only_tx = absl::GetFlag(FLAGS_tx);
  const std::string source_field = absl::GetFlag(FLAGS_source_field);
  const std::string version_field = absl::GetFlag(FLAGS_version_field);
  if (bootstrap.empty() || topic.empty() || path.empty()) {
    return Fail(1, "--bootstrap, --topic and --expected are required");
  }
  const Clock::time_point deadline =
      Clock::now() + std::chrono::seconds(absl::GetFlag(FLAGS_timeout_s));

  absl::StatusOr<std::vector<ExpectedVersion>> all = ReadExpectedFile(path);
  if (!all.ok()) return Fail(1, all.status().ToString());
  std::vector<ExpectedVersion> wanted;
  std::set<std::string> wanted_tx;
  for (ExpectedVersion& version : *all) {
    if (!only_tx.empty() && version.tx_id != only_tx) continue;
    wanted_tx.insert(version.tx_id);
    wanted.push_back(std::move(version));
  }
  all->clear();
  all->shrink_to_fit();
  if (wanted.empty()) {
    return Fail(1, absl::StrCat("no expected version", only_tx.empty() ? "" : " of tx ",
                                only_tx, " in ", path));
  }

  absl::StatusOr<std::unique_ptr<KafkaAdmin>> admin =
      KafkaAdmin::Open({{"bootstrap.servers", bootstrap}});
  if (!admin.ok()) return Fail(2, admin.status().ToString());
  absl::StatusOr<int32_t> partitions =
      (*admin)->PartitionCount(topic, /*require_leaders=*/true, /*timeout_ms=*/30000);
  if (!partitions.ok()) return Fail(2, partitions.status().ToString());
  absl::StatusOr<std::unique_ptr<KafkaReader>> reader = KafkaReader::Open(
      {{"bootstrap.servers", bootstrap},
       {"group.id", absl::StrCat("cdc-check-", topic)},
       {"enable.partition.eof", "true"},
       {"enable.auto.commit", "false"},
       {"fetch.max.bytes", "52428800"},
       {"log_level", "3"}});
  if (!reader.ok()) return Fail(2, reader.status().ToString());
  if (absl::Status s = (*reader)->AssignFromBeginning(topic, *partitions); !s.ok()) {
    return Fail(2, s.ToString());
  }

  // root key -> versions of wanted transactions, in offset order per key.
  std::map<std::string, std::vector<Got>> got;
  simdjson::dom::parser parser;
  int64_t records = 0;
  int64_t skipped = 0;  // of other transactions
  std::set<int32_t> at_end;
  while (static_cast<int32_t>(at_end.size()) < *partitions) {
    if (Clock::now() > deadline) {
      (*reader)->Close();
      return Fail(2, absl::StrCat("timed out after ", records, " records; ", at_end.size(),
                                  " of ", *partitions, " partitions read to their end"));
    }
    absl::StatusOr<std::optional<ConsumedRecord>> record = (*reader)->Poll(500);
    if (!record.ok()) {
      (*reader)->Close();
      return Fail(2, record.status().ToString());
    }
    if (!record->has_value()) continue;
    ConsumedRecord& r = **record;
    if (r.end_of_partition) {
      at_end.insert(r.partition);
      continue;
    }
    at_end.erase(r.partition);  // more arrived after an EOF
    ++records;
    Got version;
    if (r.value) {
      simdjson::dom::element doc;
      std::string_view id;
      if (parser.parse(*r.value).get(doc) != simdjson::SUCCESS ||
          doc[source_field]["id"].get_string().get(id) != simdjson::SUCCESS) {
        (*reader)->Close();
        return Fail(3, absl::StrCat("p", r.partition, "@", r.offset, ": not an aggregate with ",
                                    source_field, ".id"));
      }
      version.tx = std::string(id);
      if (wanted_tx.count(version.tx) == 0) {
        ++skipped;
        continue;
      }
      version.value = std::move(r.value);
    }
    // A tombstone carries no transaction: kept for every wanted root.
    got[r.key].push_back(std::move(version));
  }
  (*reader)->Close();

  int64_t matched = 0;
  int64_t missing = 0;
  int64_t different = 0;
  int64_t min_lines = std::numeric_limits<int64_t>::max();
  int64_t max_lines = 0;
  std::string first_problem;
  for (const ExpectedVersion& want : wanted) {
    const std::string key = absl::StrCat(want.root_id);
    auto it = got.find(key);
    bool found = false;
    bool seen_tx = false;
    if (it != got.end()) {
      for (const Got& g : it->second) {
        if (!want.aggregate) {
          if (!g.value) found = true;
          continue;
        }
        if (!g.value || g.tx != want.tx_id) continue;
        seen_tx = true;
        absl::StatusOr<bool> same =
            JsonEquivalent(*g.value, *want.aggregate, {source_field, version_field});
        if (same.ok() && *same) {
          found = true;
          break;
        }
      }
    }
    if (found) {
      ++matched;
      if (want.aggregate) {
        simdjson::dom::element doc;
        simdjson::dom::array lines;
        if (parser.parse(*want.aggregate).get(doc) == simdjson::SUCCESS &&
            doc["lines"].get_array().get(lines) == simdjson::SUCCESS) {
          min_lines = std::min<int64_t>(min_lines, static_cast<int64_t>(lines.size()));
          max_lines = std::max<int64_t>(max_lines, static_cast<int64_t>(lines.size()));
        }
      }
      continue;
    }
    if (seen_tx) {
      ++different;
    } else {
      ++missing;
    }
    if (first_problem.empty()) {
      first_problem = absl::StrCat("root ", want.root_id, " tx ", want.tx_id,
                                   seen_tx ? ": output differs" : ": no such version");
    }
  }
  if (matched == 0) min_lines = 0;
  std::printf(
      "cdc-check: %s (%d partitions): %lld records read (%lld of other transactions); "
      "%zu expected versions%s: %lld matched, %lld missing, %lld different; lines per "
      "matched version %lld..%lld\n",
      topic.c_str(), *partitions, static_cast<long long>(records),
      static_cast<long long>(skipped), wanted.size(),
      only_tx.empty() ? "" : absl::StrCat(" of tx ", only_tx).c_str(),
      static_cast<long long>(matched), static_cast<long long>(missing),
      static_cast<long long>(different), static_cast<long long>(min_lines),
      static_cast<long long>(max_lines));
  if (missing != 0 || different != 0) {
    std::fprintf(stderr, "cdc-check: FAILED, first: %s\n", first_problem.c_str());
    return 3;
  }
  std::printf("cdc-check: OK\n");
  return 0;
}

}  // namespace
}  // namespace tributary::cdcgen

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Checks an aggregate output topic against cdc-gen's expected versions.\n"
      "  cdc-check --bootstrap HOST:PORT --topic T --expected FILE [--tx XID]\n"
      "            [--timeout-s 300]");
  const std::vector<std::string> rest = tributary::ParseDashedCommandLine(argc, argv);
  if (rest.size() > 1) {
    return tributary::cdcgen::Fail(1, absl::StrCat("unexpected argument '", rest[1], "'"));
  }
  return tributary::cdcgen::Run();
}
