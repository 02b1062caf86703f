// RocksDbStore: the default persistent KeyValueStore, one RocksDB database per
// (task, store) directory; and RocksDbResources, the memory budget that every
// store of one engine instance shares (design G6).
// Thread-safety: a RocksDbStore is used by one thread at a time, as any
// KeyValueStore. RocksDbResources is thread-safe and shared by all stores.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "state/key_value_store.h"

namespace rocksdb {
class Cache;
class DB;
class Status;
class WriteBufferManager;
}  // namespace rocksdb

namespace tributary {

// One LRU block cache plus a WriteBufferManager whose memtable memory is
// charged to that cache, so block cache + index/filter blocks + memtables of
// all stores opened with these resources stay within `cache_bytes` (RocksDB
// may briefly overshoot while a flush is pending; the cache is not strict, so
// reads never fail for lack of room). Create one per engine instance.
class RocksDbResources {
 public:
  // REQUIRES: 0 < write_buffer_bytes <= cache_bytes. Typical: write buffers at
  // a quarter to a half of the cache.
  static absl::StatusOr<std::unique_ptr<RocksDbResources>> Create(
      size_t cache_bytes, size_t write_buffer_bytes);

  ~RocksDbResources();
  RocksDbResources(const RocksDbResources&) = delete;
  RocksDbResources& operator=(const RocksDbResources&) = delete;

  size_t cache_bytes() const { return cache_bytes_; }
  size_t write_buffer_bytes() const { return write_buffer_bytes_; }
  // Bytes currently charged to the shared cache (blocks and memtables).
  size_t CacheUsageBytes() const;
  // Memtable bytes of all stores.
  size_t WriteBufferUsageBytes() const;

  // For RocksDbStore. RocksDB's options take these as shared_ptr; every open
  // database holds a reference, so the resources object itself may be
  // destroyed before the stores.
  const std::shared_ptr<rocksdb::Cache>& cache() const { return cache_; }
  const std::shared_ptr<rocksdb::WriteBufferManager>& write_buffer_manager()
      const {
    return write_buffer_manager_;
  }

 private:
  RocksDbResources(size_t cache_bytes, size_t write_buffer_bytes);

  const size_t cache_bytes_;
  const size_t write_buffer_bytes_;
  std::shared_ptr<rocksdb::Cache> cache_;
  std::shared_ptr<rocksdb::WriteBufferManager> write_buffer_manager_;
};

struct RocksDbStoreOptions {
  // Writes skip RocksDB's write-ahead log. Faster; then only Flush() (and a
  // clean close, which flushes memtables) makes writes durable, and a crash
  // loses what was written since the last Flush(). Suits stores rebuilt from
  // their changelog after an unclean shutdown anyway (EOS).
  bool disable_wal = false;
};

// Errors: the first failed write or flush, or a background error that makes
// RocksDB refuse writes (a flush or compaction that failed), fails the store
// for good: every later Put, Delete, Write and Flush returns that error
// (same code; a full disk is RESOURCE_EXHAUSTED, naming the directory) without
// calling into RocksDB, and the store must be closed; reads are still served.
// A task stops on it, and its state is rebuilt from the changelog by the
// next owner (Debian's RocksDB 7.8 keeps its assert()s, and aborts the
// process when a file that failed is written again; RocksDB's own recovery
// is therefore off, and its info log goes to the "state" logger instead of
// a LOG file on the disk that failed).
class RocksDbStore final : public KeyValueStore {
 public:
  // Opens the database in `directory`, creating it (and missing parent
  // directories) if needed. `name` is the store's logical name, used in
  // errors and logs. Options: level compaction, bloom filters, LZ4 where the
  // RocksDB build supports it (else no compression), the block cache and
  // write buffer manager of `resources`; RocksDB's info log goes to the
  // "state" logger (its warnings and errors; everything at trace level).
  // A full disk fails the open with RESOURCE_EXHAUSTED.
  // REQUIRES: no other open store uses `directory` (RocksDB's lock file
  // makes a second open fail with a non-OK status).
  static absl::StatusOr<std::unique_ptr<RocksDbStore>> Open(
      std::string name, std::string directory,
      const RocksDbResources& resources, RocksDbStoreOptions options = {});

  // Removes `directory` and everything in it; OK if it does not exist. Used to
  // wipe a store before rebuilding it from its changelog.
  // REQUIRES: no open store uses `directory`.
  static absl::Status Destroy(const std::string& directory);

  // Closes the database; memtables are flushed first if the WAL is disabled,
  // unless the store has failed (then what was not flushed is lost: the
  // changelog has it).
  // REQUIRES: every iterator of this store has been destroyed.
  ~RocksDbStore() override;
  RocksDbStore(const RocksDbStore&) = delete;
  RocksDbStore& operator=(const RocksDbStore&) = delete;

  const std::string& name() const override { return name_; }
  const std::string& directory() const { return directory_; }

  absl::StatusOr<std::optional<std::string>> Get(std::string_view key) override;
  absl::Status Put(std::string_view key, std::string_view value) override;
  absl::Status Delete(std::string_view key) override;
  // One rocksdb::WriteBatch: atomic, applied in order.
  absl::Status Write(const WriteBatch& batch) override;
  // Iterators read an implicit snapshot taken when they are created.
  std::unique_ptr<KeyValueIterator> Range(std::string_view from,
                                          std::string_view to) override;
  std::unique_ptr<KeyValueIterator> PrefixScan(
      std::string_view prefix) override;
  // RocksDB's "rocksdb.estimate-num-keys": overwrites and deletes that are
  // not yet compacted away make it inexact.
  absl::StatusOr<uint64_t> ApproximateCount() override;
  // Flushes memtables to SST files and waits; then syncs the WAL if enabled.
  // Each call that finds data in the memtable writes a new L0 file, so call it
  // when writing a checkpoint, not per record.
  absl::Status Flush() override;

  // OK, or the error that failed the store (see the class comment).
  absl::Status failure() const;

 private:
  class ErrorListener;

  RocksDbStore(std::string name, std::string directory,
               std::unique_ptr<rocksdb::DB> db,
               std::shared_ptr<ErrorListener> listener,
               RocksDbStoreOptions options);

  // "rocksdb store '<name>' (<directory>): <operation>"
  std::string Context(std::string_view operation) const;
  std::unique_ptr<KeyValueIterator> NewIterator(
      std::string_view from, std::optional<std::string> upper_bound);
  // A background error that stops writes, as a failure_; OK if none.
  absl::Status BackgroundFailure() const;
  // OK while the store may write; else the failure, for `operation`.
  absl::Status CheckWritable(std::string_view operation);
  // Fails the store with `status` (not OK), the result of `operation`;
  // returns the failure.
  absl::Status Fail(const rocksdb::Status& status, std::string_view operation);

  const std::string name_;
  const std::string directory_;
  const RocksDbStoreOptions options_;
  // Sees RocksDB's background errors (on its threads); thread-safe.
  const std::shared_ptr<ErrorListener> listener_;
  std::unique_ptr<rocksdb::DB> db_;
  // The error that failed the store, as "<operation>: <rocksdb message>";
  // OK while it works.
  absl::Status failure_;
};

}  // namespace tributary
