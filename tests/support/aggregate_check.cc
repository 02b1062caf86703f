// What a correct order aggregation must emit, and the check of an output
// topic against it; see aggregate_check.h.
#include "tests/support/aggregate_check.h"

#include <simdjson.h>

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"

namespace tributary::testing {
namespace {

using cdcgen::CdcMessage;
using cdcgen::CdcTopic;
using cdcgen::ExpectedVersion;
using cdcgen::GeneratedTransaction;

// One output record as the check sees it.
struct GotVersion {
  const ConsumedRecord* record = nullptr;
  bool tombstone = false;
  std::string tx_id;
  int64_t position = -1;
  int64_t version = -1;
  bool partial = false;
  std::string parse_error;  // non-empty when the value is not as documented
};

GotVersion ParseOutput(simdjson::dom::parser& parser, const ConsumedRecord& r) {
  GotVersion got;
  got.record = &r;
  if (!r.value) {
    got.tombstone = true;
    return got;
  }
  simdjson::dom::element doc;
  if (parser.parse(*r.value).get(doc) != simdjson::SUCCESS) {
    got.parse_error = "not JSON";
    return got;
  }
  simdjson::dom::object source_tx;
  std::string_view id;
  if (doc["source_tx"].get(source_tx) != simdjson::SUCCESS ||
      source_tx["id"].get(id) != simdjson::SUCCESS ||
      source_tx["position"].get(got.position) != simdjson::SUCCESS ||
      doc["version"].get(got.version) != simdjson::SUCCESS) {
    got.parse_error = "no source_tx.id, source_tx.position or version";
    return got;
  }
  got.tx_id = std::string(id);
  bool partial = false;
  if (source_tx["partial"].get(partial) == simdjson::SUCCESS) {
    got.partial = partial;
  }
  return got;
}

}  // namespace

std::string Truncated(std::string_view text, size_t max) {
  if (text.size() <= max) return std::string(text);
  return absl::StrCat(Sv(text.substr(0, max)), "...(", text.size(), " bytes)");
}

namespace {

std::string Describe(const GotVersion& g) {
  const ConsumedRecord& r = *g.record;
  std::string where = absl::StrCat("p", r.partition, "@", r.offset);
  if (g.tombstone) return absl::StrCat(where, " tombstone");
  if (!g.parse_error.empty()) return absl::StrCat(where, " ", g.parse_error);
  return absl::StrCat(where, " tx=", g.tx_id, " pos=", g.position,
                      " v=", g.version, g.partial ? " PARTIAL" : "");
}

std::string Describe(const WantVersion& w) {
  return absl::StrCat("tx=", w.tx_id, " pos=", w.position,
                      w.aggregate ? "" : " tombstone",
                      w.partial ? " PARTIAL" : "");
}

// Entries [at-4, at+4] of a sequence, the one at `at` in brackets.
template <typename T>
std::string Window(const std::vector<T>& seq, size_t at) {
  if (seq.empty()) return "(none)";
  const size_t from = at >= 4 ? at - 4 : 0;
  const size_t to = std::min(seq.size(), at + 5);
  std::string text = absl::StrCat("#", from + 1, "..#", to, " of ",
                                  seq.size(), ": ");
  for (size_t j = from; j < to; ++j) {
    absl::StrAppend(&text, j == from ? "" : ", ", j == at ? "[" : "",
                    Describe(seq[j]), j == at ? "]" : "");
  }
  return text;
}


}  // namespace

absl::StatusOr<std::unique_ptr<ExpectedStream>> ExpectedStream::Create(
    const cdcgen::GeneratorOptions& options) {
  auto generator = cdcgen::CdcGenerator::Create(options);
  if (!generator.ok()) return generator.status();
  return std::unique_ptr<ExpectedStream>(
      new ExpectedStream(*std::move(generator)));
}

absl::Status ExpectedStream::Advance(int64_t count) {
  GeneratedTransaction unit;
  int64_t transactions = 0;
  while (transactions < count) {
    absl::Status s = generator_->NextTransaction(unit);
    if (!s.ok()) return s;
    if (unit.kind == GeneratedTransaction::Kind::kTransaction) {
      ++transactions;
    }
    for (const ExpectedVersion& v : unit.expected) {
      from_generator_.push_back(v);
    }
    for (const CdcMessage& message : unit.messages) {
      ++messages_;
      s = Replay(message);
      if (!s.ok()) return s;
    }
    if (unit.fault != cdcgen::TransactionFault::kNone) {
      // Its END is its last message.
      injected_.push_back({unit.fault, unit.fault_detail,
                           absl::StrCat(unit.xid), unit.fault_record,
                           marker_offset_ - 1});
    }
  }
  return CompareGeneratorAndReference();
}

absl::Status ExpectedStream::Replay(const CdcMessage& message) {
  if (message.topic == CdcTopic::kTransaction) {
    const int64_t offset = marker_offset_++;
    if (!message.value) return absl::InternalError("marker without value");
    auto versions = replay_.OnMarker(*message.value);
    if (!versions.ok()) return versions.status();
    for (ExpectedVersion& v : *versions) {
      by_root_[v.root_id].push_back({v.tx_id, offset, v.aggregate, v.partial});
      from_reference_.push_back(std::move(v));
    }
    return absl::OkStatus();
  }
  if (message.topic == CdcTopic::kOrderLine && message.value &&
      sample_line_event_.empty()) {
    sample_line_event_ = *message.value;
  }
  auto versions = replay_.OnChange(
      message.key, message.value
                       ? std::optional<std::string_view>(*message.value)
                       : std::nullopt);
  if (!versions.ok()) return versions.status();
  for (ExpectedVersion& v : *versions) {  // a snapshot read
    by_root_[v.root_id].push_back({v.tx_id, -1, v.aggregate});
    from_reference_.push_back(std::move(v));
  }
  return absl::OkStatus();
}

absl::Status ExpectedStream::CompareGeneratorAndReference() {
  if (from_generator_.size() != from_reference_.size()) {
    return absl::InternalError(absl::StrCat(
        "generator expects ", from_generator_.size(), " versions, reference ",
        from_reference_.size()));
  }
  for (; compared_ < from_generator_.size(); ++compared_) {
    const ExpectedVersion& g = from_generator_[compared_];
    const ExpectedVersion& r = from_reference_[compared_];
    bool same = g.root_id == r.root_id && g.tx_id == r.tx_id &&
                g.partial == r.partial &&
                g.aggregate.has_value() == r.aggregate.has_value();
    if (same && g.aggregate) {
      auto equivalent = cdcgen::JsonEquivalent(*g.aggregate, *r.aggregate);
      if (!equivalent.ok()) return equivalent.status();
      same = *equivalent;
    }
    if (!same) {
      return absl::InternalError(absl::StrCat(
          "generator and reference disagree at version #", compared_ + 1,
          ": ", cdcgen::FormatExpectedLine(g), " vs ",
          cdcgen::FormatExpectedLine(r)));
    }
  }
  return absl::OkStatus();
}

std::string CheckSequences(
    std::vector<ConsumedRecord> output,
    const std::map<int64_t, std::vector<WantVersion>>& want) {
  std::stable_sort(output.begin(), output.end(),
                   [](const ConsumedRecord& a, const ConsumedRecord& b) {
                     return std::pair(a.partition, a.offset) <
                            std::pair(b.partition, b.offset);
                   });
  simdjson::dom::parser parser;
  std::map<std::string, std::vector<GotVersion>> by_key;
  for (const ConsumedRecord& r : output) {
    if (!r.key) {
      return absl::StrCat("record without key at p", r.partition, "@",
                          r.offset);
    }
    by_key[*r.key].push_back(ParseOutput(parser, r));
  }
  std::string first;
  int offending = 0;
  auto offend = [&](std::string problem) {
    if (offending++ == 0) first = std::move(problem);
  };
  std::set<std::string> wanted_keys;
  for (const auto& [root, versions] : want) {
    wanted_keys.insert(absl::StrCat(root));
  }
  for (const auto& [key, versions] : by_key) {
    if (wanted_keys.count(key) == 0) {
      offend(absl::StrCat("unexpected key '", key, "': ",
                          Window(versions, 0)));
    }
  }
  for (const auto& [root, wanted] : want) {
    const std::vector<GotVersion>& got = by_key[absl::StrCat(root)];
    std::string problem;
    size_t at = 0;
    int64_t last_position = -1;
    for (size_t i = 0; i < std::max(got.size(), wanted.size()); ++i) {
      at = i;
      if (i >= got.size()) {
        problem = absl::StrCat("version #", i + 1, " missing (gap)");
        break;
      }
      if (i >= wanted.size()) {
        problem = absl::StrCat("extra version #", i + 1, " (duplicate?)");
        break;
      }
      const GotVersion& g = got[i];
      const WantVersion& w = wanted[i];
      if (g.record->partition != got.front().record->partition) {
        problem = absl::StrCat("in partitions ", got.front().record->partition,
                               " and ", g.record->partition);
        break;
      }
      if (!g.parse_error.empty()) {
        problem = absl::StrCat("version #", i + 1, ": ", g.parse_error, ": ",
                               Truncated(*g.record->value));
        break;
      }
      if (g.tombstone != !w.aggregate) {
        problem = absl::StrCat("version #", i + 1, ": ",
                               g.tombstone ? "tombstone" : "aggregate",
                               " where the model has ",
                               w.aggregate ? "an aggregate" : "a tombstone");
        break;
      }
      if (g.tombstone) continue;
      if (g.tx_id != w.tx_id) {
        problem = absl::StrCat("version #", i + 1, " is of transaction ",
                               g.tx_id, ", want ", w.tx_id);
        break;
      }
      if (g.version != static_cast<int64_t>(i) + 1) {
        problem = absl::StrCat("version #", i + 1, " says version ",
                               g.version);
        break;
      }
      if (g.partial != w.partial) {
        problem = absl::StrCat("version #", i + 1,
                               g.partial ? " is partial" : " is not partial",
                               ", the model's ",
                               w.partial ? "is" : "is not");
        break;
      }
      if (g.position <= last_position) {
        problem = absl::StrCat("version #", i + 1, ": position ", g.position,
                               " after ", last_position, " (regression)");
        break;
      }
      last_position = g.position;
      if (g.position != w.position) {
        problem = absl::StrCat("version #", i + 1, ": position ", g.position,
                               ", the END marker of ", w.tx_id, " is at ",
                               w.position);
        break;
      }
      absl::StatusOr<bool> same = cdcgen::JsonEquivalent(
          *g.record->value, *w.aggregate, {"source_tx", "version"});
      if (!same.ok() || !*same) {
        problem = absl::StrCat(
            "version #", i + 1, " (tx ", w.tx_id, ") differs from the model",
            same.ok() ? "" : absl::StrCat(" (", same.status().ToString(), ")"),
            "\n      got:  ", Truncated(*g.record->value),
            "\n      want: ", Truncated(*w.aggregate));
        break;
      }
    }
    if (!problem.empty()) {
      offend(absl::StrCat("order ", root, ": ", problem, "\n    got  ",
                          Window(got, at), "\n    want ",
                          Window(wanted, at)));
    }
  }
  if (offending == 0) return "";
  return absl::StrCat(offending, " offending order(s); first: ", first);
}

SequenceCounts CountSequenceErrors(
    const std::vector<ConsumedRecord>& output,
    const std::map<int64_t, std::vector<WantVersion>>& want) {
  // Per order: source transaction -> records, and tombstones.
  struct Seen {
    std::map<std::string, int64_t> by_tx;
    int64_t tombstones = 0;
  };
  std::map<std::string, Seen> got;
  simdjson::dom::parser parser;
  SequenceCounts counts;
  for (const ConsumedRecord& r : output) {
    if (!r.key) {
      ++counts.extras;
      continue;
    }
    const GotVersion g = ParseOutput(parser, r);
    Seen& seen = got[*r.key];
    if (g.tombstone) {
      ++seen.tombstones;
    } else {
      ++seen.by_tx[g.parse_error.empty() ? g.tx_id : "?"];
    }
  }
  for (const auto& [root, versions] : want) {
    auto it = got.find(absl::StrCat(root));
    Seen empty;
    Seen& seen = it == got.end() ? empty : it->second;
    std::map<std::string, int64_t> wanted_tx;
    int64_t wanted_tombstones = 0;
    for (const WantVersion& w : versions) {
      if (w.aggregate) {
        ++wanted_tx[w.tx_id];
      } else {
        ++wanted_tombstones;
      }
    }
    for (const auto& [tx, n] : wanted_tx) {
      const auto at = seen.by_tx.find(tx);
      const int64_t have = at == seen.by_tx.end() ? 0 : at->second;
      counts.checked += std::min(have, n);
      counts.gaps += std::max<int64_t>(0, n - have);
      counts.duplicates += std::max<int64_t>(0, have - n);
    }
    for (const auto& [tx, have] : seen.by_tx) {
      if (wanted_tx.count(tx) == 0) counts.extras += have;
    }
    counts.checked += std::min(seen.tombstones, wanted_tombstones);
    counts.gaps += std::max<int64_t>(0, wanted_tombstones - seen.tombstones);
    counts.duplicates +=
        std::max<int64_t>(0, seen.tombstones - wanted_tombstones);
    if (it != got.end()) got.erase(it);
  }
  for (const auto& [key, seen] : got) {  // orders not wanted at all
    counts.extras += seen.tombstones;
    for (const auto& [tx, have] : seen.by_tx) counts.extras += have;
  }
  return counts;
}

}  // namespace tributary::testing
