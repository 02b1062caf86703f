// InMemoryStore: a KeyValueStore held in an ordered map, for tests, small
// stores and benchmarks. Nothing survives the process; Flush() is a no-op.
// Thread-safety: as KeyValueStore (one thread at a time, no internal locking).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "state/key_value_store.h"

namespace tributary {

class InMemoryStore final : public KeyValueStore {
 public:
  // Returns an empty store. Keys are ordered bytewise (as unsigned bytes, the
  // same order as RocksDbStore). Iterators copy the current entry, so they
  // stay safe (though not a snapshot) when the store is written during a scan.
  static std::unique_ptr<KeyValueStore> Create(std::string name);

  InMemoryStore(const InMemoryStore&) = delete;
  InMemoryStore& operator=(const InMemoryStore&) = delete;

  const std::string& name() const override { return name_; }
  absl::StatusOr<std::optional<std::string>> Get(std::string_view key) override;
  absl::Status Put(std::string_view key, std::string_view value) override;
  absl::Status Delete(std::string_view key) override;
  absl::Status Write(const WriteBatch& batch) override;
  std::unique_ptr<KeyValueIterator> Range(std::string_view from,
                                          std::string_view to) override;
  std::unique_ptr<KeyValueIterator> PrefixScan(
      std::string_view prefix) override;
  // Exact.
  absl::StatusOr<uint64_t> ApproximateCount() override;
  absl::Status Flush() override;

 private:
  // std::less<> compares std::string through char_traits<char>::lt, which the
  // standard defines as unsigned-char comparison: bytewise order.
  using Map = std::map<std::string, std::string, std::less<>>;

  explicit InMemoryStore(std::string name);
  void PutEntry(std::string_view key, std::string_view value);

  const std::string name_;
  Map map_;
};

}  // namespace tributary
