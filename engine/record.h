// Record: one key/value message flowing through a topology, with headers,
// timestamp and (for records read from Kafka) where it came from.
// Lifetime: a Record is a non-owning view. A record handed to
// Processor::Process is valid only until Process returns; a processor that
// keeps any part of it copies it (OwnedRecord). Records read from Kafka are
// backed by the consumed batch, records made by processors by their locals.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/types.h"

namespace tributary {

struct Header {
  std::string_view key;
  std::optional<std::string_view> value;  // nullopt: a null header value
};

struct Record {
  std::optional<std::string_view> key;    // nullopt: null key
  std::optional<std::string_view> value;  // nullopt: null value (tombstone)
  TimestampMs timestamp;
  std::vector<Header> headers;

  // Where the record was read from; empty topic for records made by
  // processors and for punctuation output.
  std::string_view topic;
  Partition partition;
  Offset offset;

  bool is_tombstone() const { return !value.has_value(); }
  // The first header named `name`, if any.
  std::optional<std::optional<std::string_view>> header(std::string_view name) const {
    for (const Header& h : headers) {
      if (h.key == name) return h.value;
    }
    return std::nullopt;
  }
};

// An owning copy of a Record, for processors, stores and tests that keep one.
struct OwnedRecord {
  struct OwnedHeader {
    std::string key;
    std::optional<std::string> value;
    bool operator==(const OwnedHeader&) const = default;
  };

  std::optional<std::string> key;
  std::optional<std::string> value;
  TimestampMs timestamp;
  std::vector<OwnedHeader> headers;
  std::string topic;
  Partition partition;
  Offset offset;

  static OwnedRecord CopyOf(const Record& record) {
    OwnedRecord owned;
    if (record.key) owned.key.emplace(*record.key);
    if (record.value) owned.value.emplace(*record.value);
    owned.timestamp = record.timestamp;
    owned.headers.reserve(record.headers.size());
    for (const Header& h : record.headers) {
      OwnedHeader copy{std::string(h.key), std::nullopt};
      if (h.value) copy.value.emplace(*h.value);
      owned.headers.push_back(std::move(copy));
    }
    owned.topic = std::string(record.topic);
    owned.partition = record.partition;
    owned.offset = record.offset;
    return owned;
  }

  // A view of this record; valid while this object lives unchanged.
  Record View() const {
    Record view;
    if (key) view.key = *key;
    if (value) view.value = *value;
    view.timestamp = timestamp;
    view.headers.reserve(headers.size());
    for (const OwnedHeader& h : headers) {
      Header header{h.key, std::nullopt};
      if (h.value) header.value = *h.value;
      view.headers.push_back(header);
    }
    view.topic = topic;
    view.partition = partition;
    view.offset = offset;
    return view;
  }
};

}  // namespace tributary
