// ExpectedVersion: one aggregate version a correct engine must emit, and its
// JSON-lines file format, shared by the CDC generator (which predicts the
// versions), the reference model (which recomputes them) and the tests.
// Thread-safety: the functions are thread-safe; an ExpectedFileWriter is used
// by one thread at a time.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tributary::cdcgen {

// The aggregate of one root (purchase order) after one source transaction.
struct ExpectedVersion {
  int64_t root_id = 0;
  // The transaction's PostgreSQL xid as decimal text ("571"); empty for a
  // snapshot read, which is a unit of its own.
  std::string tx_id;
  // Minified JSON: the root's row image fields in row-image order, then
  // "lines": [child row images, ascending child id]. nullopt: the root was
  // deleted by this transaction (the engine emits a tombstone).
  // Without the engine's "source_tx" and "version" fields.
  std::optional<std::string> aggregate;
  // The transaction is short of events it had (bad input in their place, or
  // an END counting events never written): the engine marks the version
  // "partial":true in its source_tx.
  bool partial = false;

  bool operator==(const ExpectedVersion&) const = default;
};

// One line of an expected-versions file, without the newline:
//   {"root":1001,"tx":"571","aggregate":{...}}   or   ..."aggregate":null}
// with "partial":true after "tx" for a partial version.
// REQUIRES: `version.aggregate`, when present, is one valid JSON object.
std::string FormatExpectedLine(const ExpectedVersion& version);

// Parses a line written by FormatExpectedLine (the aggregate is re-minified).
absl::StatusOr<ExpectedVersion> ParseExpectedLine(std::string_view line);

// Reads a whole expected-versions file, in file (= commit) order.
absl::StatusOr<std::vector<ExpectedVersion>> ReadExpectedFile(
    const std::string& path);

// Where ProduceTransactions reports the expected versions, in commit order.
class ExpectedSink {
 public:
  virtual ~ExpectedSink() = default;
  virtual absl::Status Write(const ExpectedVersion& version) = 0;
};

// An ExpectedSink writing FormatExpectedLine lines to a file.
class ExpectedFileWriter final : public ExpectedSink {
 public:
  // Creates (truncates) `path`.
  static absl::StatusOr<std::unique_ptr<ExpectedFileWriter>> Open(
      const std::string& path);
  ~ExpectedFileWriter() override;
  ExpectedFileWriter(const ExpectedFileWriter&) = delete;
  ExpectedFileWriter& operator=(const ExpectedFileWriter&) = delete;

  absl::Status Write(const ExpectedVersion& version) override;
  // Flushes and closes the file; the first write error, if any. Idempotent.
  absl::Status Close();

  int64_t lines_written() const { return lines_; }

 private:
  ExpectedFileWriter(std::FILE* file, std::string path)
      : file_(file), path_(std::move(path)) {}

  std::FILE* file_;
  std::string path_;
  int64_t lines_ = 0;
};

}  // namespace tributary::cdcgen
