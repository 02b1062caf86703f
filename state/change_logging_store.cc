#include "state/change_logging_store.h"

#include <cassert>
#include <utility>

#include "base/status_macros.h"

namespace tributary {

ChangeLoggingStore::ChangeLoggingStore(std::unique_ptr<KeyValueStore> inner,
                                       ChangelogWriter* writer)
    : inner_(std::move(inner)), writer_(writer) {
  assert(inner_ != nullptr);
  assert(writer_ != nullptr);
}

absl::StatusOr<std::optional<std::string>> ChangeLoggingStore::Get(
    std::string_view key) {
  return inner_->Get(key);
}

absl::Status ChangeLoggingStore::Put(std::string_view key,
                                     std::string_view value) {
  TRIBUTARY_RETURN_IF_ERROR(inner_->Put(key, value));
  return writer_->Append(key, value);
}

absl::Status ChangeLoggingStore::Delete(std::string_view key) {
  TRIBUTARY_RETURN_IF_ERROR(inner_->Delete(key));
  return writer_->Append(key, std::nullopt);
}

absl::Status ChangeLoggingStore::Write(const WriteBatch& batch) {
  TRIBUTARY_RETURN_IF_ERROR(inner_->Write(batch));
  for (const WriteBatch::Entry& entry : batch.entries()) {
    std::optional<std::string_view> value;
    if (entry.value.has_value()) value = *entry.value;
    TRIBUTARY_RETURN_IF_ERROR(writer_->Append(entry.key, value));
  }
  return absl::OkStatus();
}

std::unique_ptr<KeyValueIterator> ChangeLoggingStore::Range(
    std::string_view from, std::string_view to) {
  return inner_->Range(from, to);
}

std::unique_ptr<KeyValueIterator> ChangeLoggingStore::PrefixScan(
    std::string_view prefix) {
  return inner_->PrefixScan(prefix);
}

absl::StatusOr<uint64_t> ChangeLoggingStore::ApproximateCount() {
  return inner_->ApproximateCount();
}

absl::Status ChangeLoggingStore::Flush() { return inner_->Flush(); }

std::unique_ptr<ChangeLoggingStore> MakeChangeLoggingStore(
    std::unique_ptr<KeyValueStore> inner, ChangelogWriter* writer) {
  return std::unique_ptr<ChangeLoggingStore>(
      new ChangeLoggingStore(std::move(inner), writer));
}

absl::Status RestoreBatch(KeyValueStore& store,
                          absl::Span<const ChangelogRecord> records) {
  if (records.empty()) return absl::OkStatus();
  WriteBatch batch;
  for (const ChangelogRecord& record : records) {
    if (record.value.has_value()) {
      batch.Put(record.key, *record.value);
    } else {
      batch.Delete(record.key);
    }
  }
  return store.Write(batch);
}

}  // namespace tributary
