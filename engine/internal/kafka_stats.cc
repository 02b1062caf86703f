#include "engine/internal/kafka_stats.h"

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "simdjson.h"

namespace tributary::internal {
namespace {

namespace od = simdjson::ondemand;

absl::Status ParseError(std::string_view what, simdjson::error_code error) {
  return absl::InvalidArgumentError(
      absl::StrCat("librdkafka statistics: ", Sv(what), ": ", simdjson::error_message(error)));
}

struct PartitionFigures {
  int64_t partition = -1;
  std::string fetch_state;
  int64_t app_offset = -1;
  int64_t committed_offset = -1;
  int64_t ls_offset = -1;
  int64_t hi_offset = -1;
  int64_t consumer_lag = -1;
};

simdjson::error_code ReadPartition(od::object object, PartitionFigures& out) {
  for (auto field : object) {
    std::string_view key;
    if (auto error = field.unescaped_key().get(key)) return error;
    int64_t* number = nullptr;
    if (key == "partition") number = &out.partition;
    if (key == "app_offset") number = &out.app_offset;
    if (key == "committed_offset") number = &out.committed_offset;
    if (key == "ls_offset") number = &out.ls_offset;
    if (key == "hi_offset") number = &out.hi_offset;
    if (key == "consumer_lag") number = &out.consumer_lag;
    if (number != nullptr) {
      if (auto error = field.value().get_int64().get(*number)) return error;
    } else if (key == "fetch_state") {
      std::string_view state;
      if (auto error = field.value().get_string().get(state)) return error;
      out.fetch_state = std::string(state);
    }
  }
  return simdjson::SUCCESS;
}

// A top-level number that older statistics may lack: `found` is set when it
// is there.
simdjson::error_code OptionalInt(od::document& document, std::string_view key, int64_t& out,
                                 bool& found) {
  od::value value;
  if (auto error = document[key].get(value)) {
    return error == simdjson::NO_SUCH_FIELD ? simdjson::SUCCESS : error;
  }
  found = true;
  return value.get_int64().get(out);
}

// The figure KafkaStats::OnConsumerStats documents, or -1 when unknown.
int64_t Lag(const PartitionFigures& p) {
  const int64_t end = p.ls_offset >= 0 ? p.ls_offset : p.hi_offset;
  const int64_t position = std::max(p.app_offset, p.committed_offset);
  if (end >= 0 && position >= 0) return std::max<int64_t>(end - position, 0);
  return p.consumer_lag;
}

}  // namespace

absl::Status KafkaStats::OnConsumerStats(std::string_view thread, std::string_view json) {
  od::parser parser;
  simdjson::padded_string padded(json);
  od::document document;
  if (auto error = parser.iterate(padded).get(document)) return ParseError("document", error);
  od::object topics;
  if (auto error = document["topics"].get_object().get(topics)) {
    return ParseError("topics", error);
  }
  std::map<TopicPartition, int64_t> lag;
  for (auto topic_field : topics) {
    std::string_view topic_view;
    if (auto error = topic_field.unescaped_key().get(topic_view)) {
      return ParseError("topic name", error);
    }
    const std::string topic(topic_view);
    od::object topic_object;
    if (auto error = topic_field.value().get_object().get(topic_object)) {
      return ParseError(topic, error);
    }
    od::object partitions;
    if (auto error = topic_object["partitions"].get_object().get(partitions)) {
      return ParseError(topic, error);
    }
    for (auto partition_field : partitions) {
      od::object partition_object;
      if (auto error = partition_field.value().get_object().get(partition_object)) {
        return ParseError(topic, error);
      }
      PartitionFigures figures;
      if (auto error = ReadPartition(partition_object, figures)) return ParseError(topic, error);
      // -1: librdkafka's internal unassigned partition; "none": not fetched.
      if (figures.partition < 0 || figures.fetch_state == "none") continue;
      const int64_t value = Lag(figures);
      if (value < 0) continue;
      lag[{topic, static_cast<int32_t>(figures.partition)}] = value;
    }
  }
  // After "topics" in librdkafka's order; looked up by name regardless.
  Received received;
  bool has_received = false;
  if (auto error = OptionalInt(document, "rxmsgs", received.records, has_received)) {
    return ParseError("rxmsgs", error);
  }
  if (auto error = OptionalInt(document, "rxmsg_bytes", received.bytes, has_received)) {
    return ParseError("rxmsg_bytes", error);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  lag_[std::string(thread)] = std::move(lag);
  if (has_received) received_[std::string(thread)] = received;
  return absl::OkStatus();
}

absl::Status KafkaStats::OnProducerStats(std::string_view thread, std::string_view json) {
  od::parser parser;
  simdjson::padded_string padded(json);
  od::document document;
  if (auto error = parser.iterate(padded).get(document)) return ParseError("document", error);
  ProducerQueue queue;
  if (auto error = document["msg_cnt"].get_int64().get(queue.messages)) {
    return ParseError("msg_cnt", error);
  }
  if (auto error = document["msg_size"].get_int64().get(queue.bytes)) {
    return ParseError("msg_size", error);
  }
  if (auto error = OptionalInt(document, "txmsgs", queue.sent_records, queue.has_sent)) {
    return ParseError("txmsgs", error);
  }
  if (auto error = OptionalInt(document, "txmsg_bytes", queue.sent_bytes, queue.has_sent)) {
    return ParseError("txmsg_bytes", error);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  producer_[std::string(thread)] = queue;
  return absl::OkStatus();
}

std::vector<MetricSample> KafkaStats::Samples() const {
  namespace m = metric_names;
  std::vector<MetricSample> samples;
  auto add = [&samples](MetricKind kind, std::string_view name, MetricTags tags,
                        int64_t value) {
    MetricSample sample;
    sample.name = std::string(name);
    sample.tags = std::move(tags);
    sample.kind = kind;
    sample.value = value;
    samples.push_back(std::move(sample));
  };
  auto gauge = [&add](std::string_view name, MetricTags tags, int64_t value) {
    add(MetricKind::kGauge, name, std::move(tags), value);
  };
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [thread, partitions] : lag_) {
    for (const auto& [tp, value] : partitions) {
      gauge(m::kConsumerLag,
            {{std::string(m::kThreadTag), thread},
             {std::string(m::kTopicTag), tp.first},
             {std::string(m::kPartitionTag), absl::StrCat(tp.second)}},
            value);
    }
  }
  for (const auto& [thread, queue] : producer_) {
    MetricTags tags{{std::string(m::kThreadTag), thread}};
    gauge(m::kProducerQueueMessages, tags, queue.messages);
    gauge(m::kProducerQueueBytes, tags, queue.bytes);
    if (!queue.has_sent) continue;
    add(MetricKind::kCounter, m::kRecordsProducedTotal, tags, queue.sent_records);
    add(MetricKind::kCounter, m::kBytesProducedTotal, tags, queue.sent_bytes);
  }
  for (const auto& [thread, received] : received_) {
    MetricTags tags{{std::string(m::kThreadTag), thread}};
    add(MetricKind::kCounter, m::kRecordsConsumedTotal, tags, received.records);
    add(MetricKind::kCounter, m::kBytesConsumedTotal, tags, received.bytes);
  }
  return samples;
}

}  // namespace tributary::internal
