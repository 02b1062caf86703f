// What a correct order aggregation must emit for cdc-gen's traffic, and the
// check of an output topic against it (design contract G1-G4, G3 after
// faults). ExpectedStream replays a second CdcGenerator (same options, same
// bytes) through cdc-gen's independent ReferenceReplay; CheckSequences
// compares what a read_committed reader of the output saw with it, order by
// order. Used by the real-broker tests (tests/operators, tests/chaos).
// Thread-safety: one thread at a time per object.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "apps/cdc-gen/cdc_generator.h"
#include "apps/cdc-gen/expected_version.h"
#include "apps/cdc-gen/reference_model.h"
#include "tests/support/kafka_fixture.h"

namespace tributary::testing {

// One version a correct engine emits for one order.
struct WantVersion {
  std::string tx_id;  // the PostgreSQL xid
  int64_t position = -1;  // offset of the transaction's END marker
  std::optional<std::string> aggregate;  // nullopt: tombstone
  bool partial = false;  // "partial":true in source_tx
};

// A fault the generator wrote into a source transaction (see
// cdcgen::TransactionFault), as the replay saw it.
struct InjectedFault {
  cdcgen::TransactionFault fault = cdcgen::TransactionFault::kNone;
  std::string detail;  // GeneratedTransaction::fault_detail
  std::string xid;     // the transaction's PostgreSQL xid
  // The spoiled change event, or (kOvercountingEnd) the END marker.
  cdcgen::CdcMessage record;
  int64_t end_offset = -1;  // of the transaction's END marker
};

// What a correct engine must emit for the stream a CdcGenerator with the
// same options writes. A second generator (same options, same bytes) is
// replayed message by message as the producer writes it through
// ReferenceReplay: source transactions applied in commit order (END markers
// in the one-partition transaction topic), duplicates dropped by identity
// (xid, lsn, table, op, key), restarted transactions taken whole whatever
// END counts, redelivered transactions skipped, bad events inside a
// transaction left out (its versions partial when END counts more than its
// good events), to the independent ReferenceModel. Its versions must equal
// the generator's own expected versions (checked as they are made).
class ExpectedStream {
 public:
  static absl::StatusOr<std::unique_ptr<ExpectedStream>> Create(
      const cdcgen::GeneratorOptions& options);

  // Replays what ProduceTransactions(count) writes next: units up to and
  // including the count-th source transaction. REQUIRES: nothing but
  // ProduceTransactions wrote the transaction topic (marker offsets are
  // counted from 0).
  absl::Status Advance(int64_t count);
  // Arms the replayed generator as the producing one was armed at this
  // point (CdcGenerator::InjectFault).
  void InjectFault(cdcgen::TransactionFault fault, int64_t after_transactions) {
    generator_->InjectFault(fault, after_transactions);
  }

  // Root id -> versions in commit order.
  const std::map<int64_t, std::vector<WantVersion>>& by_root() const {
    return by_root_;
  }
  int64_t versions() const {
    return static_cast<int64_t>(from_reference_.size());
  }
  // The generator's expected versions, in commit order.
  const std::vector<cdcgen::ExpectedVersion>& generator_versions() const {
    return from_generator_;
  }
  // Every record written so far (markers, events, tombstones, repeats).
  int64_t messages() const { return messages_; }
  // What the replay saw (restarts, shared LSNs, placeholders, ...).
  const cdcgen::ReferenceReplay& replay() const { return replay_; }
  // The value of the first order-line change event written.
  const std::string& sample_line_event() const { return sample_line_event_; }
  // The faults written into source transactions, in commit order.
  const std::vector<InjectedFault>& injected() const { return injected_; }

 private:
  explicit ExpectedStream(std::unique_ptr<cdcgen::CdcGenerator> generator)
      : generator_(std::move(generator)) {}

  absl::Status Replay(const cdcgen::CdcMessage& message);
  absl::Status CompareGeneratorAndReference();

  std::unique_ptr<cdcgen::CdcGenerator> generator_;
  cdcgen::ReferenceReplay replay_;
  int64_t marker_offset_ = 0;  // next offset in the transaction topic
  std::map<int64_t, std::vector<WantVersion>> by_root_;
  std::vector<cdcgen::ExpectedVersion> from_reference_;
  std::vector<cdcgen::ExpectedVersion> from_generator_;
  size_t compared_ = 0;
  int64_t messages_ = 0;
  std::string sample_line_event_;
  std::vector<InjectedFault> injected_;
};

// Collects what ProduceTransactions reports.
class CollectingSink final : public cdcgen::ExpectedSink {
 public:
  absl::Status Write(const cdcgen::ExpectedVersion& version) override {
    versions.push_back(version);
    return absl::OkStatus();
  }
  std::vector<cdcgen::ExpectedVersion> versions;
};

// "" when `output` holds, for every root of `want`, exactly the wanted
// versions (partial where wanted so) in offset order of one partition, and
// nothing else; otherwise the
// first offending root (ascending id) with both sequences around the
// problem, and how many roots offend.
std::string CheckSequences(
    std::vector<ConsumedRecord> output,
    const std::map<int64_t, std::vector<WantVersion>>& want);

// How far `output` is from `want`, counted per order: a duplicate is a
// record of a (order, source transaction) or a tombstone more than wanted,
// a gap one wanted but missing, an extra a record of an order or
// transaction not wanted at all. All 0 when CheckSequences returns "".
struct SequenceCounts {
  int64_t checked = 0;  // wanted versions found
  int64_t duplicates = 0;
  int64_t gaps = 0;
  int64_t extras = 0;
};
SequenceCounts CountSequenceErrors(
    const std::vector<ConsumedRecord>& output,
    const std::map<int64_t, std::vector<WantVersion>>& want);

// `text`, cut after `max` bytes with its size noted.
std::string Truncated(std::string_view text, size_t max = 300);

}  // namespace tributary::testing
