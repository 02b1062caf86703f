// State store micro-benchmarks: batched puts (1,000 per WriteBatch), point gets
// that hit, and prefix scans of ~10 keys, with 32-byte keys and ~500-byte
// values; RocksDbStore with the WAL off and on, and InMemoryStore alongside.
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

}  // namespace
}  // namespace tributary

BENCHMARK_MAIN();
