// Readable row images from Kafka Connect / Debezium logical types: a change
// event's value schema ({"schema":...,"payload":...}) is compiled once into a
// per-field plan (SchemaPlanCache), and RowRewriter rewrites a row image by
// that plan, converting fields with a logical type and copying every other
// byte as it is. Used by DebeziumDecoder (operators/debezium.cc).
// Thread-safety: each object is used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tributary::internal {

struct StructPlan;

// How one value is converted.
struct ValuePlan {
  enum class Kind : uint8_t {
    kCopy,                  // no logical type to convert: bytes as they are
    kDecimal,               // base64 unscaled bytes + `scale` -> "12.50"
    kVariableScaleDecimal,  // {"scale":N,"value":"<base64>"} -> "12.50"
    kDate,                  // days since the epoch -> "2024-03-15"
    kTime,                  // units of day -> "13:45:30.123"
    kTimestamp,             // units since the epoch -> "...T13:45:30.123Z"
    kJson,                  // a string holding JSON -> that JSON
    kArray,                 // each element by `items`
    kStruct,                // each field by `fields`
  };
  Kind kind = Kind::kCopy;
  int32_t scale = 0;             // kDecimal
  int64_t units_per_second = 0;  // kTime, kTimestamp: 1000, 10^6 or 10^9
  std::unique_ptr<ValuePlan> items;   // kArray
  std::unique_ptr<StructPlan> fields;  // kStruct
};

// The fields of a struct (a row image), in schema order.
struct StructPlan {
  std::vector<std::string> names;
  std::vector<ValuePlan> plans;  // parallel to `names`
  // Name -> position, for rows whose fields are not in schema order. Views
  // into `names`, which never change once the plan is built.
  std::unordered_map<std::string_view, size_t> index;
};

// What to convert in an envelope's row images; null: nothing to convert.
// `shape`: the row image's columns as the schema has them now, each with its
// default (JSON null where the schema gives none), as one JSON object in
// schema order, its values readable like the rows' (e.g.
// {"id":null,"qty":7,"price":"0.00"}); empty when the envelope has no struct
// "after" schema. `shape_hash` = HashSchemaText(shape), 0 when empty. A
// table's shape changes with ALTER TABLE, which Debezium reports by nothing
// but the new schema on the table's next change event.
struct EnvelopePlan {
  std::unique_ptr<StructPlan> before;
  std::unique_ptr<StructPlan> after;
  std::string shape;
  uint64_t shape_hash = 0;
};

// Compiles the envelope schema `schema` (JSON text of the "schema" object).
// Errors: InvalidArgument naming the field whose schema is unusable (e.g. a
// Decimal without an integer scale) or for malformed JSON.
absl::StatusOr<std::unique_ptr<EnvelopePlan>> CompileEnvelopePlan(
    std::string_view schema);

// The hash SchemaPlanCache keys schema texts by.
uint64_t HashSchemaText(std::string_view text);

// Compiled plans keyed by the schema's raw text (hash, then comparison of the
// whole text), at most `capacity` of them; the least recently used goes.
class SchemaPlanCache {
 public:
  explicit SchemaPlanCache(size_t capacity = 64);
  ~SchemaPlanCache();
  SchemaPlanCache(const SchemaPlanCache&) = delete;
  SchemaPlanCache& operator=(const SchemaPlanCache&) = delete;

  // The plan for `schema`, compiled on a miss (a failure is not cached).
  // Lifetime: valid until the next Get.
  absl::StatusOr<const EnvelopePlan*> Get(std::string_view schema);

  size_t size() const { return entries_.size(); }
  size_t compilations() const { return compilations_; }

 private:
  struct Entry {
    uint64_t hash = 0;
    std::string text;
    std::unique_ptr<EnvelopePlan> plan;
    uint64_t last_use = 0;
  };
  size_t capacity_;
  std::vector<Entry> entries_;
  size_t last_hit_ = 0;
  uint64_t clock_ = 0;
  size_t compilations_ = 0;
};

// Rewrites row images by a StructPlan.
class RowRewriter {
 public:
  // `placeholder`: what Debezium writes for an unchanged TOASTed value
  // (unavailable.value.placeholder); such values are kept as sent. nullopt:
  // none (column defaults, which are never one).
  explicit RowRewriter(std::optional<std::string_view> placeholder);
  ~RowRewriter();
  RowRewriter(const RowRewriter&) = delete;
  RowRewriter& operator=(const RowRewriter&) = delete;

  // Rewrites the JSON object `row` by `plan`. Returns false, leaving `*out`
  // as it was, when no value needed a change; true when `*out` was replaced
  // by the rewritten object. `path` names the row in errors ("after").
  // REQUIRES: `row` is followed by readable memory up to `row.data() +
  // readable`, and readable >= row.size() + simdjson::SIMDJSON_PADDING.
  // Errors: InvalidArgument "'after.price': ..." for a value its logical type
  // cannot read and that is not the placeholder.
  absl::StatusOr<bool> Rewrite(const StructPlan& plan, std::string_view row,
                               size_t readable, std::string_view path,
                               std::string* out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tributary::internal
