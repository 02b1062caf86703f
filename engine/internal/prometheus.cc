#include "engine/internal/prometheus.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/absl_compat.h"

namespace tributary::internal {
namespace {

bool IsNameChar(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         (!first && c >= '0' && c <= '9');
}

// A label name: [a-zA-Z_][a-zA-Z0-9_]*, other characters made '_'.
std::string LabelName(std::string_view tag) {
  std::string out;
  out.reserve(tag.size() + 1);
  if (tag.empty() || !IsNameChar(tag.front(), /*first=*/true)) out += '_';
  for (char c : tag) out += IsNameChar(c, /*first=*/false) ? c : '_';
  return out;
}

std::string EscapeHelp(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// `{k="v",...}` with `extra` (already formatted, e.g. quantile="0.5") last;
// empty when there is no label at all.
std::string Labels(const MetricTags& tags, std::string_view extra = {}) {
  if (tags.empty() && extra.empty()) return "";
  std::string out = "{";
  for (const auto& [key, value] : tags) {
    if (out.size() > 1) out += ',';
    absl::StrAppend(&out, LabelName(key), "=\"", EscapeLabelValue(value), "\"");
  }
  if (!extra.empty()) {
    if (out.size() > 1) out += ',';
    absl::StrAppend(&out, Sv(extra));
  }
  out += '}';
  return out;
}

// Seconds as the shortest decimal that reads back as the same double.
std::string Seconds(absl::Duration duration) {
  const double seconds = absl::ToDoubleSeconds(duration);
  for (int precision = 1; precision < 17; ++precision) {
    std::string text = absl::StrFormat("%.*g", precision, seconds);
    if (std::stod(text) == seconds) return text;
  }
  return absl::StrFormat("%.17g", seconds);
}

void AppendFamilyHeader(std::string& out, std::string_view exposed, std::string_view name,
                        std::string_view type) {
  absl::StrAppend(&out, "# HELP ", Sv(exposed), " ", EscapeHelp(MetricHelp(name)), "\n",
                  "# TYPE ", Sv(exposed), " ", Sv(type), "\n");
}

struct HelpEntry {
  std::string_view name;
  std::string_view help;
};

constexpr HelpEntry kHelp[] = {
    {metric_names::kProcessTotal, "Records processed by the stream thread."},
    {metric_names::kProcessBatchLatency,
     "Time to process one polled batch of records (batches with at least one record)."},
    {metric_names::kCommitTotal, "Commits of the stream thread (Kafka transactions under "
                                 "exactly_once_v2)."},
    {metric_names::kCommitLatency, "Time of one commit."},
    {metric_names::kAbortTotal, "Transactions aborted (the tasks restored and input rewound)."},
    {metric_names::kPunctuateTotal, "Punctuations run by the thread's tasks."},
    {metric_names::kRestoreRecordsTotal, "Changelog records restored into the thread's stores."},
    {metric_names::kRecordsDeadLetteredTotal,
     "Records sent to the dead-letter topic (processing.error.policy=continue)."},
    {metric_names::kThreadReplacementsTotal,
     "Replacements of the stream thread after an error the uncaught-error handler answered "
     "with REPLACE_THREAD."},
    {metric_names::kThreadRestartsTotal,
     "Restarts of the stream thread with new clients after its producer failed."},
    {metric_names::kConsumerLag,
     "Records of the input partition not consumed yet: its end (last stable offset) minus "
     "the group consumer's position (librdkafka statistics)."},
    {metric_names::kProducerQueueMessages,
     "Messages in the thread's producer queues, not yet acknowledged (librdkafka msg_cnt)."},
    {metric_names::kProducerQueueBytes,
     "Bytes of the messages in the thread's producer queues (librdkafka msg_size)."},
    {metric_names::kRecordCacheHitsTotal,
     "Gets answered by the record cache of the thread's stores (cache.max.bytes)."},
    {metric_names::kRecordCacheMissesTotal,
     "Gets that missed the record cache of the thread's stores and read the store."},
    {metric_names::kRecordsConsumedTotal,
     "Records the thread's group consumer received (librdkafka rxmsgs, since its clients "
     "started)."},
    {metric_names::kBytesConsumedTotal,
     "Bytes of the records the thread's group consumer received (librdkafka rxmsg_bytes)."},
    {metric_names::kRecordsProducedTotal,
     "Records the thread's producer sent: outputs, changelogs, repartition topics, dead "
     "letters (librdkafka txmsgs, since its clients started)."},
    {metric_names::kBytesProducedTotal,
     "Bytes of the records the thread's producer sent (librdkafka txmsg_bytes)."},
    {metric_names::kRestoreRemainingRecords,
     "Changelog records the task still has to restore (0 once it runs)."},
    {metric_names::kStateStoreSstBytes,
     "Bytes of the RocksDB store's SST files on disk (a task this instance owns)."},
};

}  // namespace

std::string PrometheusBaseName(std::string_view name) {
  std::string out = "tributary_";
  out.reserve(out.size() + name.size());
  for (char c : name) out += IsNameChar(c, /*first=*/false) ? c : '_';
  return out;
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string MetricHelp(std::string_view name) {
  for (const HelpEntry& entry : kHelp) {
    if (entry.name == name) return std::string(entry.help);
  }
  return absl::StrCat("Tributary metric '", Sv(name), "' (see README, Metrics and health).");
}

std::string PrometheusText(std::vector<MetricSample> samples) {
  std::sort(samples.begin(), samples.end(), [](const MetricSample& a, const MetricSample& b) {
    return std::tie(a.name, a.tags) < std::tie(b.name, b.tags);
  });
  std::string out;
  for (size_t begin = 0; begin < samples.size();) {
    size_t end = begin;
    while (end < samples.size() && samples[end].name == samples[begin].name &&
           samples[end].kind == samples[begin].kind) {
      ++end;
    }
    const std::string& name = samples[begin].name;
    const std::string base = PrometheusBaseName(name);
    switch (samples[begin].kind) {
      case MetricKind::kCounter: {
        const std::string exposed =
            base.ends_with("_total") ? base : absl::StrCat(base, "_total");
        AppendFamilyHeader(out, exposed, name, "counter");
        for (size_t i = begin; i < end; ++i) {
          absl::StrAppend(&out, exposed, Labels(samples[i].tags), " ", samples[i].value, "\n");
        }
        break;
      }
      case MetricKind::kGauge:
        AppendFamilyHeader(out, base, name, "gauge");
        for (size_t i = begin; i < end; ++i) {
          absl::StrAppend(&out, base, Labels(samples[i].tags), " ", samples[i].value, "\n");
        }
        break;
      case MetricKind::kLatency: {
        const std::string exposed = absl::StrCat(base, "_seconds");
        AppendFamilyHeader(out, exposed, name, "summary");
        for (size_t i = begin; i < end; ++i) {
          const MetricTags& tags = samples[i].tags;
          const LatencySummary& l = samples[i].latency;
          absl::StrAppend(&out, exposed, Labels(tags, "quantile=\"0.5\""), " ", Seconds(l.p50),
                          "\n", exposed, Labels(tags, "quantile=\"0.99\""), " ",
                          Seconds(l.p99), "\n", exposed, "_sum", Labels(tags), " ",
                          Seconds(l.sum), "\n", exposed, "_count", Labels(tags), " ", l.count,
                          "\n");
        }
        const std::string max = absl::StrCat(base, "_max_seconds");
        absl::StrAppend(&out, "# HELP ", max, " Largest value of ", exposed,
                        " since the start.\n# TYPE ", max, " gauge\n");
        for (size_t i = begin; i < end; ++i) {
          absl::StrAppend(&out, max, Labels(samples[i].tags), " ",
                          Seconds(samples[i].latency.max), "\n");
        }
        break;
      }
    }
    begin = end;
  }
  return out;
}

}  // namespace tributary::internal
