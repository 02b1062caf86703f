// ChangeLoggingStore: a KeyValueStore decorator that applies every write to an
// inner store and then appends it to a ChangelogWriter (Kafka Streams'
// ChangeLoggingKeyValueBytesStore). RestoreBatch applies changelog records
// back to a store when a task is restored.
// Thread-safety: as KeyValueStore (one thread at a time); the writer is called
// on that thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "state/changelog.h"
#include "state/key_value_store.h"

namespace tributary {

// Made by MakeChangeLoggingStore below.
class ChangeLoggingStore final : public KeyValueStore {
 public:
  ChangeLoggingStore(const ChangeLoggingStore&) = delete;
  ChangeLoggingStore& operator=(const ChangeLoggingStore&) = delete;

  // The inner store's name.
  const std::string& name() const override { return inner_->name(); }

  absl::StatusOr<std::optional<std::string>> Get(std::string_view key) override;
  // Each write goes to the inner store first and is appended to the writer
  // only if that succeeded; Write appends the batch's entries in order after
  // the inner Write. If the append fails the inner store already holds the
  // change: the error must fail the task (under EOS the store is then rebuilt
  // from the changelog), never be ignored.
  absl::Status Put(std::string_view key, std::string_view value) override;
  absl::Status Delete(std::string_view key) override;
  absl::Status Write(const WriteBatch& batch) override;
  std::unique_ptr<KeyValueIterator> Range(std::string_view from,
                                          std::string_view to) override;
  std::unique_ptr<KeyValueIterator> PrefixScan(
      std::string_view prefix) override;
  absl::StatusOr<uint64_t> ApproximateCount() override;
  // Flushes the inner store only; flushing the changelog is the engine's job.
  absl::Status Flush() override;

  // The wrapped store, for restoring without re-logging (see RestoreBatch).
  KeyValueStore& inner() { return *inner_; }

 private:
  friend std::unique_ptr<ChangeLoggingStore> MakeChangeLoggingStore(
      std::unique_ptr<KeyValueStore> inner, ChangelogWriter* writer);
  ChangeLoggingStore(std::unique_ptr<KeyValueStore> inner,
                     ChangelogWriter* writer);

  std::unique_ptr<KeyValueStore> inner_;
  ChangelogWriter* const writer_;
};

// Wraps `inner` so that its writes are logged to `writer`.
// REQUIRES: inner != nullptr; writer != nullptr and outlives the returned
// store (observed, not owned).
std::unique_ptr<ChangeLoggingStore> MakeChangeLoggingStore(
    std::unique_ptr<KeyValueStore> inner, ChangelogWriter* writer);

// Applies `records` to `store` in order as one atomic WriteBatch (a nullopt
// value deletes the key). Call it once per consumer batch of the changelog.
// Restore into the un-logged store (ChangeLoggingStore::inner(), or the store
// before it is wrapped), or every record would be logged again.
absl::Status RestoreBatch(KeyValueStore& store,
                          absl::Span<const ChangelogRecord> records);

}  // namespace tributary
