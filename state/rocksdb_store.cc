#include "state/rocksdb_store.h"

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"
#include "rocksdb/cache.h"
#include "rocksdb/convenience.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/options.h"
#include "rocksdb/slice.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"
#include "rocksdb/write_buffer_manager.h"
#include "state/internal/key_range.h"
#include "state/internal/log.h"
#include "state/internal/rocksdb_status.h"

namespace tributary {
namespace {

// Kafka Streams' defaults: 16 MiB memtables, at most 3 per store; the shared
// WriteBufferManager caps the total across stores.
constexpr size_t kWriteBufferSize = 16 << 20;
constexpr int kMaxWriteBufferNumber = 3;
constexpr double kBloomBitsPerKey = 10;
// Share of the cache kept for index and filter blocks (high priority), so a
// stream of data blocks evicts them last.
constexpr double kHighPriorityPoolRatio = 0.1;

rocksdb::Slice ToSlice(std::string_view s) {
  return rocksdb::Slice(s.data(), s.size());
}

std::string_view ToView(const rocksdb::Slice& s) {
  return std::string_view(s.data(), s.size());
}

rocksdb::CompressionType ChooseCompression() {
  static const rocksdb::CompressionType compression = [] {
    const std::vector<rocksdb::CompressionType> supported =
        rocksdb::GetSupportedCompressions();
    if (std::find(supported.begin(), supported.end(),
                  rocksdb::kLZ4Compression) != supported.end()) {
      return rocksdb::kLZ4Compression;
    }
    internal::StateLog().info(
        "RocksDB built without LZ4; state stores are not compressed");
    return rocksdb::kNoCompression;
  }();
  return compression;
}

rocksdb::Options MakeOptions(const RocksDbResources& resources) {
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = resources.cache();
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(kBloomBitsPerKey));
  // Index and filter blocks live in (and are bounded by) the shared cache.
  table.cache_index_and_filter_blocks = true;
  table.cache_index_and_filter_blocks_with_high_priority = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;

  rocksdb::Options options;
  options.create_if_missing = true;
  options.compaction_style = rocksdb::kCompactionStyleLevel;
  options.level_compaction_dynamic_level_bytes = true;
  options.optimize_filters_for_hits = false;
  options.compression = ChooseCompression();
  options.write_buffer_size =
      std::min(kWriteBufferSize, resources.write_buffer_bytes());
  options.max_write_buffer_number = kMaxWriteBufferNumber;
  options.write_buffer_manager = resources.write_buffer_manager();
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  // RocksDB's own LOG file in the store directory: keep it small.
  options.keep_log_file_num = 2;
  options.max_log_file_size = 1 << 20;
  return options;
}

// Iterates from a seek key up to an optional exclusive upper bound, which
// RocksDB applies itself (ReadOptions::iterate_upper_bound).
// REQUIRES: `db`, `store_name` and `directory` outlive the iterator (they are
// the store's; the KeyValueIterator contract already forbids outliving it).
class RocksDbIterator final : public KeyValueIterator {
 public:
  RocksDbIterator(rocksdb::DB& db, std::string_view from,
                  std::optional<std::string> upper_bound,
                  const std::string& store_name, const std::string& directory)
      : upper_bound_storage_(std::move(upper_bound)),
        store_name_(store_name),
        directory_(directory) {
    rocksdb::ReadOptions read_options;
    if (upper_bound_storage_.has_value()) {
      upper_bound_slice_ = ToSlice(*upper_bound_storage_);
      read_options.iterate_upper_bound = &upper_bound_slice_;
    }
    iterator_.reset(db.NewIterator(read_options));
    iterator_->Seek(ToSlice(from));
  }

  bool Valid() const override { return iterator_->Valid(); }
  void Next() override { iterator_->Next(); }
  std::string_view key() const override { return ToView(iterator_->key()); }
  std::string_view value() const override { return ToView(iterator_->value()); }
  absl::Status status() const override {
    const rocksdb::Status status = iterator_->status();
    if (status.ok()) return absl::OkStatus();
    return internal::FromRocksDb(
        status, absl::StrCat("rocksdb store '", store_name_, "' (", directory_,
                             "): iterate"));
  }

 private:
  // RocksDB keeps a pointer to the bound Slice, and the Slice points into the
  // string, so both are declared before (destroyed after) the iterator.
  const std::optional<std::string> upper_bound_storage_;
  rocksdb::Slice upper_bound_slice_;
  const std::string& store_name_;
  const std::string& directory_;
  std::unique_ptr<rocksdb::Iterator> iterator_;
};

}  // namespace

// --- RocksDbResources ------------------------------------------------------

absl::StatusOr<std::unique_ptr<RocksDbResources>> RocksDbResources::Create(
    size_t cache_bytes, size_t write_buffer_bytes) {
  if (cache_bytes == 0 || write_buffer_bytes == 0 ||
      write_buffer_bytes > cache_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "RocksDbResources: need 0 < write_buffer_bytes <= cache_bytes, got "
        "write_buffer_bytes=",
        write_buffer_bytes, " cache_bytes=", cache_bytes));
  }
  return std::unique_ptr<RocksDbResources>(
      new RocksDbResources(cache_bytes, write_buffer_bytes));
}

RocksDbResources::RocksDbResources(size_t cache_bytes,
                                   size_t write_buffer_bytes)
    : cache_bytes_(cache_bytes),
      write_buffer_bytes_(write_buffer_bytes),
      cache_(rocksdb::NewLRUCache(cache_bytes, /*num_shard_bits=*/-1,
                                  /*strict_capacity_limit=*/false,
                                  kHighPriorityPoolRatio)),
      write_buffer_manager_(std::make_shared<rocksdb::WriteBufferManager>(
          write_buffer_bytes, cache_)) {}

RocksDbResources::~RocksDbResources() = default;

size_t RocksDbResources::CacheUsageBytes() const { return cache_->GetUsage(); }

size_t RocksDbResources::WriteBufferUsageBytes() const {
  return write_buffer_manager_->memory_usage();
}

// --- RocksDbStore ----------------------------------------------------------

absl::StatusOr<std::unique_ptr<RocksDbStore>> RocksDbStore::Open(
    std::string name, std::string directory, const RocksDbResources& resources,
    RocksDbStoreOptions options) {
  std::error_code error;
  std::filesystem::create_directories(directory, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("rocksdb store '", name, "' (", directory,
                     "): cannot create directory: ", error.message()));
  }
  rocksdb::DB* raw_db = nullptr;
  const rocksdb::Status status =
      rocksdb::DB::Open(MakeOptions(resources), directory, &raw_db);
  if (!status.ok()) {
    return internal::FromRocksDb(
        status,
        absl::StrCat("rocksdb store '", name, "' (", directory, "): open"));
  }
  internal::StateLog().debug("opened rocksdb store '{}' in {} (wal {})", name,
                             directory, options.disable_wal ? "off" : "on");
  return std::unique_ptr<RocksDbStore>(
      new RocksDbStore(std::move(name), std::move(directory),
                       std::unique_ptr<rocksdb::DB>(raw_db), options));
}

absl::Status RocksDbStore::Destroy(const std::string& directory) {
  std::error_code error;
  std::filesystem::remove_all(directory, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot destroy rocksdb store directory ", directory, ": ",
                     error.message()));
  }
  internal::StateLog().info("destroyed rocksdb store directory {}", directory);
  return absl::OkStatus();
}

RocksDbStore::RocksDbStore(std::string name, std::string directory,
                           std::unique_ptr<rocksdb::DB> db,
                           RocksDbStoreOptions options)
    : name_(std::move(name)),
      directory_(std::move(directory)),
      options_(options),
      db_(std::move(db)) {}

RocksDbStore::~RocksDbStore() {
  // Close() flushes memtables when the WAL is off (avoid_flush_during_shutdown
  // is false), so a clean close loses nothing. A failure here cannot be
  // returned; it is logged, and the changelog remains the source of truth.
  if (absl::Status status =
          internal::FromRocksDb(db_->Close(), Context("close"));
      !status.ok()) {
    internal::StateLog().error("{}", status.ToString());
  }
}

std::string RocksDbStore::Context(std::string_view operation) const {
  return absl::StrCat("rocksdb store '", name_, "' (", directory_,
                      "): ", Sv(operation));
}

absl::StatusOr<std::optional<std::string>> RocksDbStore::Get(
    std::string_view key) {
  std::string value;
  const rocksdb::Status status =
      db_->Get(rocksdb::ReadOptions(), ToSlice(key), &value);
  if (status.IsNotFound()) return std::nullopt;
  if (!status.ok()) return internal::FromRocksDb(status, Context("get"));
  return value;
}

absl::Status RocksDbStore::Put(std::string_view key, std::string_view value) {
  rocksdb::WriteOptions write_options;
  write_options.disableWAL = options_.disable_wal;
  return internal::FromRocksDb(
      db_->Put(write_options, ToSlice(key), ToSlice(value)), Context("put"));
}

absl::Status RocksDbStore::Delete(std::string_view key) {
  rocksdb::WriteOptions write_options;
  write_options.disableWAL = options_.disable_wal;
  return internal::FromRocksDb(db_->Delete(write_options, ToSlice(key)),
                               Context("delete"));
}

absl::Status RocksDbStore::Write(const WriteBatch& batch) {
  if (batch.empty()) return absl::OkStatus();
  rocksdb::WriteBatch rocks_batch;
  for (const WriteBatch::Entry& entry : batch.entries()) {
    rocksdb::Status status =
        entry.value.has_value()
            ? rocks_batch.Put(ToSlice(entry.key), ToSlice(*entry.value))
            : rocks_batch.Delete(ToSlice(entry.key));
    if (!status.ok())
      return internal::FromRocksDb(status, Context("write batch"));
  }
  rocksdb::WriteOptions write_options;
  write_options.disableWAL = options_.disable_wal;
  return internal::FromRocksDb(db_->Write(write_options, &rocks_batch),
                               Context("write batch"));
}

std::unique_ptr<KeyValueIterator> RocksDbStore::NewIterator(
    std::string_view from, std::optional<std::string> upper_bound) {
  return std::make_unique<RocksDbIterator>(*db_, from, std::move(upper_bound),
                                           name_, directory_);
}

std::unique_ptr<KeyValueIterator> RocksDbStore::Range(std::string_view from,
                                                      std::string_view to) {
  std::optional<std::string> upper_bound;
  if (!to.empty()) upper_bound.emplace(to);
  return NewIterator(from, std::move(upper_bound));
}

std::unique_ptr<KeyValueIterator> RocksDbStore::PrefixScan(
    std::string_view prefix) {
  return NewIterator(prefix, internal::PrefixUpperBound(prefix));
}

absl::StatusOr<uint64_t> RocksDbStore::ApproximateCount() {
  uint64_t count = 0;
  if (!db_->GetIntProperty(rocksdb::DB::Properties::kEstimateNumKeys, &count)) {
    return absl::InternalError(
        Context("property rocksdb.estimate-num-keys unavailable"));
  }
  return count;
}

absl::Status RocksDbStore::Flush() {
  rocksdb::FlushOptions flush_options;
  flush_options.wait = true;
  TRIBUTARY_RETURN_IF_ERROR(
      internal::FromRocksDb(db_->Flush(flush_options), Context("flush")));
  if (options_.disable_wal) return absl::OkStatus();
  return internal::FromRocksDb(db_->FlushWAL(/*sync=*/true),
                               Context("flush wal"));
}

}  // namespace tributary
