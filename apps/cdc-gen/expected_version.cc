#include "apps/cdc-gen/expected_version.h"

#include <simdjson.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"

namespace tributary::cdcgen {

std::string FormatExpectedLine(const ExpectedVersion& version) {
  std::string line;
  line.reserve(48 + (version.aggregate ? version.aggregate->size() : 0));
  absl::StrAppend(&line, "{\"root\":", version.root_id, ",\"tx\":\"",
                  version.tx_id, "\",",
                  version.partial ? "\"partial\":true," : "", "\"aggregate\":");
  if (version.aggregate) {
    line += *version.aggregate;
  } else {
    line += "null";
  }
  line += '}';
  return line;
}

absl::StatusOr<ExpectedVersion> ParseExpectedLine(std::string_view line) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (auto error = parser.parse(line.data(), line.size()).get(doc); error) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected-version line: ", simdjson::error_message(error)));
  }
  ExpectedVersion version;
  std::string_view tx;
  simdjson::dom::element aggregate;
  if (doc["root"].get_int64().get(version.root_id) != simdjson::SUCCESS ||
      doc["tx"].get_string().get(tx) != simdjson::SUCCESS ||
      doc["aggregate"].get(aggregate) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected-version line lacks root/tx/aggregate: ", Sv(line)));
  }
  version.tx_id = std::string(tx);
  bool partial = false;
  if (doc["partial"].get_bool().get(partial) == simdjson::SUCCESS) {
    version.partial = partial;
  }
  if (!aggregate.is_null()) version.aggregate = simdjson::minify(aggregate);
  return version;
}

absl::StatusOr<std::vector<ExpectedVersion>> ReadExpectedFile(
    const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot open ", path));
  }
  std::vector<ExpectedVersion> versions;
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    absl::StatusOr<ExpectedVersion> version = ParseExpectedLine(line);
    if (!version.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", number, ": ", version.status().message()));
    }
    versions.push_back(*std::move(version));
  }
  return versions;
}

absl::StatusOr<std::unique_ptr<ExpectedFileWriter>> ExpectedFileWriter::Open(
    const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "w");
  if (file == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot create ", path, ": ", std::strerror(errno)));
  }
  return std::unique_ptr<ExpectedFileWriter>(
      new ExpectedFileWriter(file, path));
}

ExpectedFileWriter::~ExpectedFileWriter() {
  // An error here has no caller to go to; Close() reports it to those who ask.
  (void)Close();
}

absl::Status ExpectedFileWriter::Write(const ExpectedVersion& version) {
  if (file_ == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(path_, ": write after Close"));
  }
  std::string line = FormatExpectedLine(version);
  line += '\n';
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size()) {
    return absl::DataLossError(
        absl::StrCat("write to ", path_, ": ", std::strerror(errno)));
  }
  ++lines_;
  return absl::OkStatus();
}

absl::Status ExpectedFileWriter::Close() {
  if (file_ == nullptr) return absl::OkStatus();
  std::FILE* file = file_;
  file_ = nullptr;
  const bool write_error = std::ferror(file) != 0;
  if (std::fclose(file) != 0 || write_error) {
    return absl::DataLossError(
        absl::StrCat("close ", path_, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace tributary::cdcgen
