#include "state/rocksdb_store.h"

#include <algorithm>
#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"
#include "rocksdb/cache.h"
#include "rocksdb/convenience.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/listener.h"
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

// RocksDB's info log, on the "state" logger: its warnings and errors as
// warnings (what fails reaches the store as a Status, and the engine reports
// it), the rest (every flush and compaction, the options at each open) at
// trace level, formatted only when that level is on. Not RocksDB's default LOG
// file in the store directory: once an append to it fails (a full disk),
// its file writer has seen an error, and Debian's RocksDB 7.8, built with
// its assert()s, aborts the process on the next line any thread logs
// (WritableFileWriter::AssertFalseAndGetStatusForPrevError), which on a full
// disk comes at once: the failed flush's own report, the close's.
// Thread-safety: RocksDB logs from its background threads; spdlog loggers
// are thread-safe.
class StateLogger final : public rocksdb::Logger {
 public:
  explicit StateLogger(std::string directory)
      : rocksdb::Logger(internal::StateLog().should_log(spdlog::level::trace)
                            ? rocksdb::InfoLogLevel::DEBUG_LEVEL
                            : rocksdb::InfoLogLevel::WARN_LEVEL),
        directory_(std::move(directory)) {}

  void LogHeader(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::HEADER_LEVEL, format, ap);
  }

  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }

  void Logv(const rocksdb::InfoLogLevel level, const char* format,
            va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    const spdlog::level::level_enum spd = SpdLevel(level);
    if (!internal::StateLog().should_log(spd)) return;
    // RocksDB is not exception-safe (rocksdb/env.h): nothing may leave here.
    try {
      char buffer[512];
      va_list again;
      va_copy(again, ap);
      const int size = std::vsnprintf(buffer, sizeof(buffer), format, ap);
      std::string line;
      if (size >= 0 && static_cast<size_t>(size) < sizeof(buffer)) {
        line.assign(buffer, static_cast<size_t>(size));
      } else if (size >= 0) {
        line.resize(static_cast<size_t>(size) + 1);
        std::vsnprintf(line.data(), line.size(), format, again);
        line.resize(static_cast<size_t>(size));
      }
      va_end(again);
      while (!line.empty() && line.back() == '\n') line.pop_back();
      internal::StateLog().log(spd, "rocksdb {}: {}", directory_, line);
    } catch (...) {
      // Swallowed on purpose: a lost log line, never an exception in RocksDB.
    }
  }

 private:
  static spdlog::level::level_enum SpdLevel(rocksdb::InfoLogLevel level) {
    switch (level) {
      case rocksdb::InfoLogLevel::WARN_LEVEL:
      case rocksdb::InfoLogLevel::ERROR_LEVEL:
        return spdlog::level::warn;
      case rocksdb::InfoLogLevel::FATAL_LEVEL:
        return spdlog::level::err;
      default:
        return spdlog::level::trace;
    }
  }

  const std::string directory_;
};

rocksdb::Options MakeOptions(const RocksDbResources& resources,
                             const std::string& directory) {
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
  // No LOG file (see StateLogger).
  options.info_log = std::make_shared<StateLogger>(directory);
  // Nothing is written after a failure but by a healthy store's close (see
  // ~RocksDbStore): RocksDB itself neither flushes at close nor resumes
  // after a background error, retryable or not (the ErrorListener turns
  // off its recovery from a full disk). A failed store is closed and its
  // task rebuilt from the changelog; a recovery meanwhile would only write
  // to the disk that failed.
  options.avoid_flush_during_shutdown = true;
  options.max_bgerror_resume_count = 0;
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

// Keeps the first background error RocksDB reports (a failed flush or
// compaction, a failed write-ahead log append) and whether it stops writes
// (severity hard or worse: RocksDB then refuses every write itself), and
// turns off RocksDB's automatic recovery from it.
// Thread-safety: RocksDB calls it on its threads, the store on its own.
class RocksDbStore::ErrorListener final : public rocksdb::EventListener {
 public:
  const char* Name() const override { return "TributaryErrorListener"; }

  void OnBackgroundError(rocksdb::BackgroundErrorReason /*reason*/,
                         rocksdb::Status* error) override {
    if (error == nullptr || error->ok()) return;
    std::lock_guard<std::mutex> lock(mutex_);
    if (first_.ok()) first_ = *error;
    if (error->severity() >= rocksdb::Status::Severity::kHardError) {
      stopped_.store(true, std::memory_order_release);
    }
  }

  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason /*reason*/,
                            rocksdb::Status error,
                            bool* auto_recovery) override {
    error.PermitUncheckedError();
    *auto_recovery = false;
  }

  // Whether a background error stopped writes; then first() says which.
  bool stopped() const { return stopped_.load(std::memory_order_acquire); }
  // The first background error; OK if none.
  rocksdb::Status first() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return first_;
  }

 private:
  mutable std::mutex mutex_;
  rocksdb::Status first_;
  std::atomic<bool> stopped_{false};
};

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
    return absl::Status(error == std::errc::no_space_on_device
                            ? absl::StatusCode::kResourceExhausted
                            : absl::StatusCode::kFailedPrecondition,
                        absl::StrCat("rocksdb store '", name, "' (", directory,
                                     "): cannot create directory: ",
                                     error.message()));
  }
  auto listener = std::make_shared<ErrorListener>();
  rocksdb::Options rocksdb_options = MakeOptions(resources, directory);
  rocksdb_options.listeners.push_back(listener);
  rocksdb::DB* raw_db = nullptr;
  const rocksdb::Status status =
      rocksdb::DB::Open(rocksdb_options, directory, &raw_db);
  if (!status.ok()) {
    return internal::FromRocksDb(
        status,
        absl::StrCat("rocksdb store '", name, "' (", directory, "): open"));
  }
  internal::StateLog().debug("opened rocksdb store '{}' in {} (wal {})", name,
                             directory, options.disable_wal ? "off" : "on");
  return std::unique_ptr<RocksDbStore>(new RocksDbStore(
      std::move(name), std::move(directory),
      std::unique_ptr<rocksdb::DB>(raw_db), std::move(listener), options));
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
                           std::shared_ptr<ErrorListener> listener,
                           RocksDbStoreOptions options)
    : name_(std::move(name)),
      directory_(std::move(directory)),
      options_(options),
      listener_(std::move(listener)),
      db_(std::move(db)) {}

RocksDbStore::~RocksDbStore() {
  // With the WAL off, memtables are flushed here, not by Close()
  // (avoid_flush_during_shutdown), so that a failed store is closed without
  // flushing: what it had not flushed is lost, and its task restores it from
  // the changelog. Closing a failed database reaches none of RocksDB 7.8's
  // asserts (so the handle need not be leaked): no flush and no recovery
  // run, the info log is not a file, and the WAL's writer is let go through
  // log::Writer::WriteBuffer, which checks for an earlier error instead of
  // asserting (rocksdb_disk_full_test closes failed stores, WAL on and off).
  // A failure here cannot be returned; it is logged (a warning: an engine
  // that closes cleanly has flushed before, and would have failed there),
  // and the changelog remains the source of truth.
  if (options_.disable_wal && CheckWritable("flush at close").ok()) {
    rocksdb::FlushOptions flush_options;
    flush_options.wait = true;
    if (const rocksdb::Status flushed = db_->Flush(flush_options);
        !flushed.ok()) {
      internal::StateLog().warn("{}; what was not flushed is lost",
                                Fail(flushed, "flush at close").ToString());
    }
  }
  if (absl::Status status =
          internal::FromRocksDb(db_->Close(), Context("close"));
      !status.ok()) {
    // After a failure, the WAL that failed cannot be written at close either;
    // that failure was reported when it happened.
    internal::StateLog().log(
        failure_.ok() ? spdlog::level::err : spdlog::level::debug, "{}",
        status.ToString());
  }
}

std::string RocksDbStore::Context(std::string_view operation) const {
  return absl::StrCat("rocksdb store '", name_, "' (", directory_,
                      "): ", Sv(operation));
}

absl::Status RocksDbStore::BackgroundFailure() const {
  if (!listener_->stopped()) return absl::OkStatus();
  const rocksdb::Status background = listener_->first();
  return absl::Status(
      internal::CodeOf(background),
      absl::StrCat("background error: ", background.ToString()));
}

absl::Status RocksDbStore::failure() const {
  const absl::Status failure =
      failure_.ok() ? BackgroundFailure() : failure_;
  if (failure.ok()) return absl::OkStatus();
  return absl::Status(failure.code(), Context(Sv(failure.message())));
}

absl::Status RocksDbStore::CheckWritable(std::string_view operation) {
  if (failure_.ok()) failure_ = BackgroundFailure();
  if (failure_.ok()) return absl::OkStatus();
  return absl::Status(
      failure_.code(),
      absl::StrCat(Context(operation),
                   ": not attempted, the store failed: ", failure_.message()));
}

absl::Status RocksDbStore::Fail(const rocksdb::Status& status,
                                std::string_view operation) {
  if (failure_.ok()) {
    // A write refused because of a background error (Incomplete while
    // writes stall, say) is reported with that error's code, and its text
    // when the refusal does not quote it.
    const rocksdb::Status background = listener_->first();
    const std::string text = status.ToString();
    std::string message = absl::StrCat(Sv(operation), ": ", text);
    absl::StatusCode code = internal::CodeOf(status);
    if (!background.ok() && status.code() != rocksdb::Status::kIOError) {
      code = internal::CodeOf(background);
      const std::string cause = background.ToString();
      if (!absl::StrContains(text, cause)) {
        absl::StrAppend(&message, " (after background error: ", cause, ")");
      }
    }
    failure_ = absl::Status(code, message);
  }
  return failure();
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
  TRIBUTARY_RETURN_IF_ERROR(CheckWritable("put"));
  rocksdb::WriteOptions write_options;
  write_options.disableWAL = options_.disable_wal;
  const rocksdb::Status status =
      db_->Put(write_options, ToSlice(key), ToSlice(value));
  return status.ok() ? absl::OkStatus() : Fail(status, "put");
}

absl::Status RocksDbStore::Delete(std::string_view key) {
  TRIBUTARY_RETURN_IF_ERROR(CheckWritable("delete"));
  rocksdb::WriteOptions write_options;
  write_options.disableWAL = options_.disable_wal;
  const rocksdb::Status status = db_->Delete(write_options, ToSlice(key));
  return status.ok() ? absl::OkStatus() : Fail(status, "delete");
}

absl::Status RocksDbStore::Write(const WriteBatch& batch) {
  if (batch.empty()) return absl::OkStatus();
  TRIBUTARY_RETURN_IF_ERROR(CheckWritable("write batch"));
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
  const rocksdb::Status status = db_->Write(write_options, &rocks_batch);
  return status.ok() ? absl::OkStatus() : Fail(status, "write batch");
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
  TRIBUTARY_RETURN_IF_ERROR(CheckWritable("flush"));
  rocksdb::FlushOptions flush_options;
  flush_options.wait = true;
  if (const rocksdb::Status status = db_->Flush(flush_options); !status.ok()) {
    return Fail(status, "flush");
  }
  if (options_.disable_wal) return absl::OkStatus();
  // Never after a failed WAL append (the store failed then): syncing that
  // file again is one of RocksDB 7.8's asserts.
  TRIBUTARY_RETURN_IF_ERROR(CheckWritable("flush wal"));
  const rocksdb::Status status = db_->FlushWAL(/*sync=*/true);
  return status.ok() ? absl::OkStatus() : Fail(status, "flush wal");
}

}  // namespace tributary
