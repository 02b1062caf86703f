// cdc-gen: writes Debezium-format order-service traffic (purchase orders,
// order lines, BEGIN/END markers) to Kafka, and optionally the aggregate
// versions a correct engine must emit, as JSON lines.
//
//   cdc-gen --bootstrap 127.0.0.1:19092 --count 10000 --create-topics
//           --partitions 4 --expected /tmp/expected.jsonl
//
// Exit codes: 0 done; 1 usage or configuration error; 2 Kafka error.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "apps/cdc-gen/cdc_generator.h"
#include "apps/cdc-gen/cdc_producer.h"
#include "apps/cdc-gen/expected_version.h"
#include "apps/common/command_line.h"
#include "base/progress_line.h"

ABSL_FLAG(std::string, bootstrap, "", "Kafka bootstrap servers, HOST:PORT");
ABSL_FLAG(int64_t, count, 0,
          "source transactions to produce (> 0; may be 0 with --huge-tx-rows)");
ABSL_FLAG(double, rate, 0, "source transactions per second; 0 = unpaced");
ABSL_FLAG(int, partitions, 4,
          "partitions of the table topics made by --create-topics");
ABSL_FLAG(bool, schemas, false,
          "JSON converter schemas.enable: wrap keys and values in "
          "{\"schema\":...,\"payload\":...}");
ABSL_FLAG(uint64_t, seed, 1, "PRNG seed; same flags, same bytes");
ABSL_FLAG(double, duplicates, 0,
          "chance per change event of a duplicate in its transaction, and "
          "per transaction of redelivering the latest 1..3 transactions");
ABSL_FLAG(double, restart_inside, 0,
          "chance per transaction of a connector restart inside it: a second "
          "BEGIN, events written again, an END counting only those");
ABSL_FLAG(double, rekey, 4,
          "weight of primary-key updates of a line (delete + create at one "
          "LSN) in the operation mix");
ABSL_FLAG(double, long_notes, 0.1,
          "chance that a new order note is long (TOASTed, > 2 kB)");
ABSL_FLAG(double, notes_unchanged, 0.75,
          "chance that an order update leaves the note alone (a long one is "
          "then sent as __debezium_unavailable_value)");
ABSL_FLAG(int64_t, skew, 0,
          "hold the orderline topic's records back by this many transactions");
ABSL_FLAG(std::string, prefix, "dbserver1", "Debezium topic.prefix");
ABSL_FLAG(std::string, expected, "",
          "write the expected aggregate versions to this file (JSON lines)");
ABSL_FLAG(bool, create_topics, false,
          "create the topics first (table topics with --partitions, the "
          "transaction topic with 1)");
ABSL_FLAG(int, snapshot_orders, 0,
          "orders read by an initial snapshot (op=r) before streaming");
ABSL_FLAG(int64_t, huge_tx_rows, 0,
          "after the --count transactions, one transaction inserting this "
          "many rows: N/(K+1) orders (rounded down) with K lines each, K = "
          "--huge-tx-lines-per-order; 0 = none");
ABSL_FLAG(int, huge_tx_lines_per_order, 100,
          "lines of each order of the --huge-tx-rows transaction");
ABSL_FLAG(int, bulk_lines, 1000,
          "line inserts in one (occasional) bulk transaction; 0 = no bulk "
          "transactions");

namespace tributary::cdcgen {
namespace {

constexpr int kUsageError = 1;
constexpr int kKafkaError = 2;

int Fail(int code, const absl::Status& status) {
  std::fprintf(stderr, "cdc-gen: %s\n", status.ToString().c_str());
  return code;
}

int Usage(const std::string& message) {
  std::fprintf(stderr, "cdc-gen: %s\n(see cdc-gen --help)\n", message.c_str());
  return kUsageError;
}

// Configuration problems found while talking to Kafka (a transaction topic
// with several partitions, a bad setting) are the user's to fix.
int KafkaFailure(const absl::Status& status) {
  const bool config =
      absl::IsInvalidArgument(status) || absl::IsFailedPrecondition(status);
  return Fail(config ? kUsageError : kKafkaError, status);
}

int Run() {
  const std::string bootstrap = absl::GetFlag(FLAGS_bootstrap);
  const int64_t count = absl::GetFlag(FLAGS_count);
  const int partitions = absl::GetFlag(FLAGS_partitions);
  const double duplicates = absl::GetFlag(FLAGS_duplicates);
  if (bootstrap.empty()) return Usage("--bootstrap HOST:PORT is required");
  const int64_t huge_rows = absl::GetFlag(FLAGS_huge_tx_rows);
  const int huge_lines = absl::GetFlag(FLAGS_huge_tx_lines_per_order);
  if (huge_rows < 0) return Usage("--huge-tx-rows must be >= 0");
  if (huge_lines < 0) return Usage("--huge-tx-lines-per-order must be >= 0");
  const int64_t huge_orders = huge_rows / (int64_t{huge_lines} + 1);
  if (huge_rows > 0 && huge_orders < 1) {
    return Usage("--huge-tx-rows must be at least --huge-tx-lines-per-order + 1");
  }
  if (count < 0 || (count == 0 && huge_orders == 0)) {
    return Usage("--count must be a positive number (or 0 with --huge-tx-rows)");
  }
  if (partitions < 1) return Usage("--partitions must be >= 1");
  if (absl::GetFlag(FLAGS_rate) < 0) return Usage("--rate must be >= 0");
  if (absl::GetFlag(FLAGS_skew) < 0) return Usage("--skew must be >= 0");
  if (duplicates < 0 || duplicates > 1) {
    return Usage("--duplicates must be within [0, 1]");
  }
  if (absl::GetFlag(FLAGS_rekey) < 0) return Usage("--rekey must be >= 0");

  GeneratorOptions options;
  options.seed = absl::GetFlag(FLAGS_seed);
  options.topic_prefix = absl::GetFlag(FLAGS_prefix);
  options.schemas = absl::GetFlag(FLAGS_schemas);
  options.duplicate_rate = duplicates;
  options.redelivery_rate = duplicates;
  options.restart_inside_rate = absl::GetFlag(FLAGS_restart_inside);
  options.mix.rekey = absl::GetFlag(FLAGS_rekey);
  options.long_note_rate = absl::GetFlag(FLAGS_long_notes);
  options.note_unchanged_rate = absl::GetFlag(FLAGS_notes_unchanged);
  options.snapshot_orders = absl::GetFlag(FLAGS_snapshot_orders);
  if (const int bulk_lines = absl::GetFlag(FLAGS_bulk_lines); bulk_lines > 0) {
    options.bulk_lines = bulk_lines;
  } else if (bulk_lines == 0) {
    options.mix.bulk = 0;
  } else {
    return Usage("--bulk-lines must be >= 0");
  }
  const std::string expected_path = absl::GetFlag(FLAGS_expected);
  // Aggregates are only built when someone reads them.
  options.compute_expected = !expected_path.empty();
  absl::StatusOr<std::unique_ptr<CdcGenerator>> generator =
      CdcGenerator::Create(options);
  if (!generator.ok()) return Fail(kUsageError, generator.status());

  std::unique_ptr<ExpectedFileWriter> expected;
  if (!expected_path.empty()) {
    absl::StatusOr<std::unique_ptr<ExpectedFileWriter>> writer =
        ExpectedFileWriter::Open(expected_path);
    if (!writer.ok()) return Fail(kUsageError, writer.status());
    expected = *std::move(writer);
  }

  if (absl::GetFlag(FLAGS_create_topics)) {
    if (absl::Status status = CreateTopics(bootstrap, options, partitions);
        !status.ok()) {
      return KafkaFailure(status);
    }
  }
  absl::StatusOr<std::unique_ptr<KafkaProducer>> producer = MakeCdcProducer(bootstrap);
  if (!producer.ok()) return KafkaFailure(producer.status());

  ProduceOptions produce;
  produce.rate = absl::GetFlag(FLAGS_rate);
  produce.skew_transactions = absl::GetFlag(FLAGS_skew);
  produce.huge_tx_orders = huge_orders;
  produce.huge_tx_lines_per_order = huge_lines;
  // On a terminal: transactions done of --count, change events/s.
  ProgressLine progress = ProgressLine::OnStderr("cdc-gen", count, "transactions", "events");
  produce.on_progress = [&progress](const ProduceStats& so_far) {
    progress.Update(so_far.transactions, so_far.change_events);
  };
  absl::StatusOr<ProduceStats> stats = ProduceTransactions(
      **producer, **generator, count, produce, expected.get());
  progress.Finish();
  if (!stats.ok()) return KafkaFailure(stats.status());
  if (expected != nullptr) {
    if (absl::Status status = expected->Close(); !status.ok()) {
      return Fail(kUsageError, status);
    }
  }

  const double seconds = stats->seconds > 0 ? stats->seconds : 1e-9;
  std::string summary = absl::StrFormat(
      "cdc-gen: %d transactions (+%d snapshot reads, %d redeliveries), %d "
      "change events, %d records, %.1f MB in %.2f s: %.0f events/s, %.0f "
      "transactions/s, %.1f MB/s",
      stats->transactions, stats->snapshot_reads, stats->redeliveries,
      stats->change_events, stats->messages, stats->bytes / 1e6, seconds,
      stats->change_events / seconds, stats->transactions / seconds,
      stats->bytes / 1e6 / seconds);
  if (stats->huge_tx_xid != 0) {
    absl::StrAppend(&summary, "; huge transaction xid ", stats->huge_tx_xid,
                    ": ", huge_orders, " orders x ", huge_lines, " lines = ",
                    stats->huge_tx_rows, " rows");
  }
  if (expected != nullptr) {
    absl::StrAppend(&summary, "; ", stats->expected_versions,
                    " expected versions -> ", expected_path);
  }
  std::printf("%s\n", summary.c_str());
  return 0;
}

}  // namespace
}  // namespace tributary::cdcgen

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Writes Debezium-format order-service CDC traffic to Kafka.\n"
      "  cdc-gen --bootstrap HOST:PORT --count N [--rate R] [--partitions P]\n"
      "          [--schemas] [--seed S] [--duplicates RATE] [--skew K]\n"
      "          [--prefix dbserver1] [--expected FILE] [--create-topics]\n"
      "          [--snapshot-orders N] [--restart-inside RATE] [--rekey W]\n"
      "          [--long-notes RATE] [--notes-unchanged RATE]\n"
      "          [--huge-tx-rows N [--huge-tx-lines-per-order K]]");
  const std::vector<std::string> rest = tributary::ParseDashedCommandLine(argc, argv);
  if (rest.size() > 1) {
    return tributary::cdcgen::Usage(
        absl::StrCat("unexpected argument '", rest[1], "'"));
  }
  return tributary::cdcgen::Run();
}
