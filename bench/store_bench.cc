// State store micro-benchmarks: batched puts (1,000 per WriteBatch), point gets
// that hit, and prefix scans of ~10 keys, with 32-byte keys and ~500-byte
// values; RocksDbStore with the WAL off and on, and InMemoryStore alongside.
// Also a task's write cache between two commits, as CachingStore (ours) and
// as RocksDB's WriteBatchWithIndex over the DB would do it (BM_CommitCycle).
// Run: store_bench --benchmark_min_time=0.2

#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <string>

#include "absl/strings/str_format.h"
#include "benchmark/benchmark.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/write_batch_with_index.h"
#include "state/caching_store.h"
#include "state/in_memory_store.h"
#include "state/key_value_store.h"
#include "state/rocksdb_store.h"

namespace tributary {
namespace {

constexpr size_t kValueBytes = 500;
constexpr int kBatchSize = 1000;
constexpr int kKeysPerPrefix = 10;
constexpr int64_t kPreloadedKeys = 100'000;

// 32 bytes: a 24-byte group prefix (the scan unit) and an 8-byte member.
std::string MakeKey(int64_t group, int64_t member) {
  std::string key = absl::StrFormat("order-%018d%08d", group % 1'000'000'000'000'000'000,
                                    member % 100'000'000);
  key.resize(32);
  return key;
}

std::string GroupPrefix(int64_t group) {
  return MakeKey(group, 0).substr(0, 24);
}

std::string MakeValue() {
  std::string value(kValueBytes, '\0');
  std::mt19937 random(42);
  // Half random, half repeated: compresses somewhat, like JSON rows do.
  for (size_t i = 0; i < value.size(); ++i) {
    value[i] = i % 2 ? 'x' : static_cast<char>('a' + random() % 26);
  }
  return value;
}

enum class Backend : int64_t {
  kInMemory = 0,
  kRocksDbWalOff = 1,
  kRocksDbWalOn = 2
};

// A store in a fresh temp directory, removed afterwards.
class BenchStore {
 public:
  explicit BenchStore(Backend backend) {
    if (backend == Backend::kInMemory) {
      store_ = InMemoryStore::Create("bench");
      return;
    }
    std::string pattern =
        (std::filesystem::temp_directory_path() / "store_bench.XXXXXX")
            .string();
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    dir_ = pattern;
    resources_ =
        std::move(RocksDbResources::Create(256 << 20, 64 << 20).value());
    store_ = std::move(
        RocksDbStore::Open("bench", dir_ + "/store", *resources_,
                           {.disable_wal = backend == Backend::kRocksDbWalOff})
            .value());
  }
  ~BenchStore() {
    store_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  KeyValueStore& store() { return *store_; }
  // The store, for a wrapper to own; it must go before this object does.
  std::unique_ptr<KeyValueStore> TakeStore() { return std::move(store_); }

  void Preload(int64_t keys) {
    const std::string value = MakeValue();
    WriteBatch batch;
    for (int64_t i = 0; i < keys; ++i) {
      batch.Put(MakeKey(i / kKeysPerPrefix, i % kKeysPerPrefix), value);
      if (batch.size() == kBatchSize) {
        if (!store_->Write(batch).ok()) std::abort();
        batch.Clear();
      }
    }
    if (!store_->Write(batch).ok() || !store_->Flush().ok()) std::abort();
  }

 private:
  std::string dir_;
  std::unique_ptr<RocksDbResources> resources_;
  std::unique_ptr<KeyValueStore> store_;
};

void SetLabel(benchmark::State& state) {
  switch (static_cast<Backend>(state.range(0))) {
    case Backend::kInMemory:
      state.SetLabel("in-memory");
      break;
    case Backend::kRocksDbWalOff:
      state.SetLabel("rocksdb wal=off");
      break;
    case Backend::kRocksDbWalOn:
      state.SetLabel("rocksdb wal=on");
      break;
  }
}

void BM_PutBatched(benchmark::State& state) {
  BenchStore bench(static_cast<Backend>(state.range(0)));
  const std::string value = MakeValue();
  int64_t next = 0;
  WriteBatch batch;
  for (auto _ : state) {
    batch.Clear();
    for (int i = 0; i < kBatchSize; ++i, ++next) {
      batch.Put(MakeKey(next / kKeysPerPrefix, next % kKeysPerPrefix), value);
    }
    if (!bench.store().Write(batch).ok()) state.SkipWithError("write failed");
  }
  state.SetItemsProcessed(state.iterations() * kBatchSize);
  state.SetBytesProcessed(state.iterations() * kBatchSize * (32 + kValueBytes));
  SetLabel(state);
}

void BM_GetHit(benchmark::State& state) {
  BenchStore bench(static_cast<Backend>(state.range(0)));
  bench.Preload(kPreloadedKeys);
  std::mt19937_64 random(7);
  for (auto _ : state) {
    const int64_t i = static_cast<int64_t>(random() % kPreloadedKeys);
    auto value =
        bench.store().Get(MakeKey(i / kKeysPerPrefix, i % kKeysPerPrefix));
    if (!value.ok() || !value->has_value()) state.SkipWithError("miss");
    benchmark::DoNotOptimize(value);
  }
  state.SetItemsProcessed(state.iterations());
  SetLabel(state);
}

void BM_PrefixScan10(benchmark::State& state) {
  BenchStore bench(static_cast<Backend>(state.range(0)));
  bench.Preload(kPreloadedKeys);
  std::mt19937_64 random(7);
  int64_t rows = 0;
  for (auto _ : state) {
    const int64_t group =
        static_cast<int64_t>(random() % (kPreloadedKeys / kKeysPerPrefix));
    for (auto it = bench.store().PrefixScan(GroupPrefix(group)); it->Valid();
         it->Next()) {
      benchmark::DoNotOptimize(it->value().data());
      ++rows;
    }
  }
  if (rows != state.iterations() * kKeysPerPrefix)
    state.SkipWithError("short scan");
  state.SetItemsProcessed(state.iterations());
  SetLabel(state);
}

#define TRIBUTARY_STORE_BENCH(fn)                          \
  BENCHMARK(fn)                                            \
      ->ArgName("backend")                                 \
      ->Arg(static_cast<int64_t>(Backend::kInMemory))      \
      ->Arg(static_cast<int64_t>(Backend::kRocksDbWalOff)) \
      ->Arg(static_cast<int64_t>(Backend::kRocksDbWalOn))

TRIBUTARY_STORE_BENCH(BM_PutBatched);
TRIBUTARY_STORE_BENCH(BM_GetHit);
TRIBUTARY_STORE_BENCH(BM_PrefixScan10);

// --- The write cache between two commits: CachingStore vs WriteBatchWithIndex
//
// One iteration is one commit interval of an aggregating task over 100,000
// preloaded keys: 1,000 read-modify-writes of random keys (keys:100000: any
// key; keys:1000: a hot thousand, so keys repeat within a commit; a Get, then a Put
// of the new value), a ~10-key prefix scan every 100, then the commit's
// flush of everything written. Variants:
//   caching  CachingStore (10 MiB) over RocksDbStore: Get/Put/PrefixScan on
//            the cache, FlushCache() at the commit;
//   wbwi     WriteBatchWithIndex over a DB opened like RocksDbStore's (LZ4,
//            10-bit bloom, 256 MiB LRU block cache with index and filter
//            blocks): GetFromBatchAndDB, NewIteratorWithBase, DB::Write of
//            the batch at the commit;
//   direct   RocksDbStore alone, each Put written at once (no cache).
enum class CacheKind : int64_t { kCaching = 0, kWbwi = 1, kDirect = 2 };

constexpr int kOpsPerCommit = 1000;
constexpr int kScanEvery = 100;

// The raw DB for the WriteBatchWithIndex variant, in a temp directory.
class RawDb {
 public:
  RawDb() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "store_bench.XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    dir_ = pattern;
    rocksdb::BlockBasedTableOptions table;
    table.block_cache = rocksdb::NewLRUCache(256 << 20);
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    table.cache_index_and_filter_blocks = true;
    table.cache_index_and_filter_blocks_with_high_priority = true;
    table.pin_l0_filter_and_index_blocks_in_cache = true;
    rocksdb::Options options;
    options.create_if_missing = true;
    options.level_compaction_dynamic_level_bytes = true;
    options.compression = rocksdb::kLZ4Compression;
    options.write_buffer_size = 64 << 20;
    options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    rocksdb::DB* db = nullptr;
    if (!rocksdb::DB::Open(options, dir_ + "/db", &db).ok()) std::abort();
    db_.reset(db);
    write_options_.disableWAL = true;
  }
  ~RawDb() {
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  rocksdb::DB& db() { return *db_; }
  const rocksdb::WriteOptions& write_options() const { return write_options_; }

  void Preload(int64_t keys) {
    const std::string value = MakeValue();
    rocksdb::WriteBatch batch;
    for (int64_t i = 0; i < keys; ++i) {
      batch.Put(MakeKey(i / kKeysPerPrefix, i % kKeysPerPrefix), value);
      if (batch.Count() == kBatchSize) {
        if (!db_->Write(write_options_, &batch).ok()) std::abort();
        batch.Clear();
      }
    }
    if (!db_->Write(write_options_, &batch).ok()) std::abort();
    if (!db_->Flush(rocksdb::FlushOptions()).ok()) std::abort();
  }

 private:
  std::string dir_;
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::WriteOptions write_options_;
};

// The value after a read-modify-write: the old one with its first byte bumped.
std::string NextValue(std::optional<std::string> current, const std::string& fresh) {
  std::string next = current ? std::move(*current) : fresh;
  next[0] = static_cast<char>(next[0] + 1);
  return next;
}

void BM_CommitCycle(benchmark::State& state) {
  const auto kind = static_cast<CacheKind>(state.range(0));
  const int64_t key_space = state.range(1);  // keys touched: all, or a hot few
  const std::string fresh = MakeValue();
  std::mt19937_64 random(7);
  int64_t rows = 0;
  auto next_key = [&](int64_t& group) {
    const int64_t i = static_cast<int64_t>(random() % key_space);
    group = i / kKeysPerPrefix;
    return MakeKey(group, i % kKeysPerPrefix);
  };
  if (kind == CacheKind::kWbwi) {
    RawDb raw;
    raw.Preload(kPreloadedKeys);
    rocksdb::WriteBatchWithIndex batch(rocksdb::BytewiseComparator(), 0,
                                       /*overwrite_key=*/true);
    for (auto _ : state) {
      for (int op = 0; op < kOpsPerCommit; ++op) {
        int64_t group = 0;
        const std::string key = next_key(group);
        std::string value;
        rocksdb::Status s =
            batch.GetFromBatchAndDB(&raw.db(), rocksdb::ReadOptions(), key, &value);
        if (!s.ok() && !s.IsNotFound()) state.SkipWithError("get failed");
        std::string next =
            NextValue(s.ok() ? std::optional<std::string>(std::move(value)) : std::nullopt, fresh);
        if (!batch.Put(key, next).ok()) state.SkipWithError("put failed");
        if (op % kScanEvery == 0) {
          const std::string prefix = GroupPrefix(group);
          std::string upper = prefix;
          upper.back() = static_cast<char>(upper.back() + 1);
          rocksdb::Slice upper_slice(upper);
          rocksdb::ReadOptions read_options;
          read_options.iterate_upper_bound = &upper_slice;
          std::unique_ptr<rocksdb::Iterator> it(
              batch.NewIteratorWithBase(raw.db().NewIterator(read_options)));
          for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
            benchmark::DoNotOptimize(it->value().data());
            ++rows;
          }
        }
      }
      if (!raw.db().Write(raw.write_options(), batch.GetWriteBatch()).ok()) {
        state.SkipWithError("commit failed");
      }
      batch.Clear();
    }
    state.SetLabel("wbwi");
  } else {
    BenchStore bench(Backend::kRocksDbWalOff);
    bench.Preload(kPreloadedKeys);
    std::unique_ptr<KeyValueStore> owned;
    CachingStore* cache = nullptr;
    KeyValueStore* store = &bench.store();
    if (kind == CacheKind::kCaching) {
      // The cache owns the store from here; `owned` goes before `bench`.
      auto caching = CachingStore::Create(bench.TakeStore(), 10 << 20);
      cache = caching.get();
      owned = std::move(caching);
      store = owned.get();
    }
    for (auto _ : state) {
      for (int op = 0; op < kOpsPerCommit; ++op) {
        int64_t group = 0;
        const std::string key = next_key(group);
        absl::StatusOr<std::optional<std::string>> value = store->Get(key);
        if (!value.ok()) state.SkipWithError("get failed");
        if (!store->Put(key, NextValue(std::move(*value), fresh)).ok()) {
          state.SkipWithError("put failed");
        }
        if (op % kScanEvery == 0) {
          for (auto it = store->PrefixScan(GroupPrefix(group)); it->Valid(); it->Next()) {
            benchmark::DoNotOptimize(it->value().data());
            ++rows;
          }
        }
      }
      if (cache != nullptr && !cache->FlushCache().ok()) state.SkipWithError("commit failed");
    }
    owned.reset();
    state.SetLabel(kind == CacheKind::kCaching ? "caching" : "direct");
  }
  if (rows != state.iterations() * (kOpsPerCommit / kScanEvery) * kKeysPerPrefix) {
    state.SkipWithError("short scan");
  }
  state.SetItemsProcessed(state.iterations() * kOpsPerCommit);
}
BENCHMARK(BM_CommitCycle)
    ->ArgNames({"kind", "keys"})
    ->ArgsProduct({{static_cast<int64_t>(CacheKind::kCaching), static_cast<int64_t>(CacheKind::kWbwi),
                    static_cast<int64_t>(CacheKind::kDirect)},
                   {kPreloadedKeys, 1000}})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace tributary

BENCHMARK_MAIN();
