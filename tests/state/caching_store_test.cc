// CachingStore: writes collapse in the cache until FlushCache, scans merge the
// cache with the inner store, the budget forces early flushes and evictions,
// and a flush or eviction during a scan changes nothing the scan returns.
// (The generic KeyValueStore behaviour is covered by key_value_store_test.cc,
// which runs its whole suite against CachingStore too.)

#include "state/caching_store.h"

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "state/change_logging_store.h"
#include "state/changelog.h"
#include "state/in_memory_store.h"
#include "state/rocksdb_store.h"
#include "tests/state/store_test_util.h"

namespace tributary {
namespace {

using store_test::DeleteChange;
using store_test::Drain;
using store_test::Entries;
using store_test::FakeChangelogWriter;
using store_test::Keys;
using store_test::PutChange;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Optional;
using ::testing::Pair;

// Counts the writes that reach the wrapped store.
class CountingStore final : public KeyValueStore {
 public:
  explicit CountingStore(std::unique_ptr<KeyValueStore> inner) : inner_(std::move(inner)) {}

  const std::string& name() const override { return inner_->name(); }
  absl::StatusOr<std::optional<std::string>> Get(std::string_view key) override {
    ++gets;
    return inner_->Get(key);
  }
  absl::Status Put(std::string_view key, std::string_view value) override {
    ++writes;
    return inner_->Put(key, value);
  }
  absl::Status Delete(std::string_view key) override {
    ++writes;
    return inner_->Delete(key);
  }
  absl::Status Write(const WriteBatch& batch) override {
    ++batches;
    writes += static_cast<int>(batch.size());
    return inner_->Write(batch);
  }
  std::unique_ptr<KeyValueIterator> Range(std::string_view from,
                                          std::string_view to) override {
    return inner_->Range(from, to);
  }
  std::unique_ptr<KeyValueIterator> PrefixScan(std::string_view prefix) override {
    return inner_->PrefixScan(prefix);
  }
  absl::StatusOr<uint64_t> ApproximateCount() override {
    return inner_->ApproximateCount();
  }
  absl::Status Flush() override { return inner_->Flush(); }

  int gets = 0;
  int writes = 0;
  int batches = 0;

 private:
  std::unique_ptr<KeyValueStore> inner_;
};

// CachingStore ∘ ChangeLoggingStore ∘ CountingStore ∘ InMemoryStore.
class CachingStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Make(1 << 20); }

  void Make(size_t max_bytes) {
    cache_.reset();
    auto counting = std::make_unique<CountingStore>(InMemoryStore::Create("s"));
    counting_ = counting.get();
    auto logged = MakeChangeLoggingStore(std::move(counting), &writer_);
    logged_ = logged.get();
    cache_ = CachingStore::Create(std::move(logged), max_bytes);
  }

  // What the store below the cache holds.
  Entries Inner() { return Drain(logged_->All()); }

  FakeChangelogWriter writer_;  // outlives cache_
  CountingStore* counting_ = nullptr;
  ChangeLoggingStore* logged_ = nullptr;
  std::unique_ptr<CachingStore> cache_;
};

TEST_F(CachingStoreTest, WritesStayInTheCacheUntilFlushCache) {
  ASSERT_TRUE(cache_->Put("a", "1").ok());
  ASSERT_TRUE(cache_->Put("b", "2").ok());
  EXPECT_THAT(*cache_->Get("a"), Optional(std::string("1")));
  EXPECT_THAT(Inner(), IsEmpty());
  EXPECT_THAT(writer_.Take(), IsEmpty());
  EXPECT_EQ(cache_->dirty_entries(), 2u);
  EXPECT_GT(cache_->cached_bytes(), 0u);

  ASSERT_TRUE(cache_->FlushCache().ok());
  EXPECT_THAT(Inner(), ElementsAre(Pair("a", "1"), Pair("b", "2")));
  EXPECT_THAT(writer_.Take(), ElementsAre(PutChange("a", "1"), PutChange("b", "2")));
  EXPECT_EQ(counting_->batches, 1) << "one WriteBatch per flush";
  EXPECT_EQ(cache_->dirty_entries(), 0u);

  ASSERT_TRUE(cache_->FlushCache().ok()) << "idempotent";
  EXPECT_EQ(counting_->batches, 1);
  EXPECT_THAT(writer_.Take(), IsEmpty());
}

TEST_F(CachingStoreTest, PutThenDeleteBetweenFlushesWritesNothing) {
  // Blind put + delete: the flush checks the inner store once.
  ASSERT_TRUE(cache_->Put("k", "v").ok());
  ASSERT_TRUE(cache_->Delete("k").ok());
  EXPECT_EQ(*cache_->Get("k"), std::nullopt);
  ASSERT_TRUE(cache_->FlushCache().ok());
  EXPECT_EQ(counting_->writes, 0);
  EXPECT_THAT(writer_.Take(), IsEmpty());
  EXPECT_THAT(Inner(), IsEmpty());

  // Read first (as a dedup check does): the absence is known, no check.
  const int gets = counting_->gets;
  EXPECT_EQ(*cache_->Get("j"), std::nullopt);
  ASSERT_TRUE(cache_->Put("j", "v").ok());
  ASSERT_TRUE(cache_->Put("j", "w").ok());
  ASSERT_TRUE(cache_->Delete("j").ok());
  EXPECT_EQ(cache_->dirty_entries(), 0u);
  ASSERT_TRUE(cache_->FlushCache().ok());
  EXPECT_EQ(counting_->writes, 0);
  EXPECT_EQ(counting_->gets, gets + 1) << "only the read itself";
  EXPECT_THAT(writer_.Take(), IsEmpty());

  // The same through a WriteBatch.
  WriteBatch batch;
  batch.Put("x", "1");
  batch.Delete("x");
  ASSERT_TRUE(cache_->Write(batch).ok());
  ASSERT_TRUE(cache_->FlushCache().ok());
  EXPECT_EQ(counting_->writes, 0);
  EXPECT_THAT(writer_.Take(), IsEmpty());
}

TEST_F(CachingStoreTest, DeletesOfStoredKeysAreWritten) {
  ASSERT_TRUE(cache_->Put("a", "1").ok());
  ASSERT_TRUE(cache_->Put("b", "2").ok());
  ASSERT_TRUE(cache_->FlushCache().ok());
  writer_.Take();

  ASSERT_TRUE(cache_->Delete("a").ok());       // cached as present: written
  ASSERT_TRUE(cache_->Put("b", "3").ok());
  ASSERT_TRUE(cache_->Delete("b").ok());       // present below: written
  ASSERT_TRUE(cache_->Delete("never").ok());   // blind: written as is
  ASSERT_TRUE(cache_->FlushCache().ok());
  EXPECT_THAT(writer_.Take(), ::testing::UnorderedElementsAre(
                                  DeleteChange("a"), DeleteChange("b"),
                                  DeleteChange("never")));
  EXPECT_THAT(Inner(), IsEmpty());
}

TEST_F(CachingStoreTest, OverwritesCollapseToOneChangelogRecord) {
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(cache_->Put("k", "v" + std::to_string(i)).ok());
  }
  ASSERT_TRUE(cache_->Delete("k").ok());
  ASSERT_TRUE(cache_->Put("k", "last").ok());
  ASSERT_TRUE(cache_->FlushCache().ok());
  EXPECT_THAT(writer_.Take(), ElementsAre(PutChange("k", "last")));
  EXPECT_EQ(counting_->writes, 1);
}

TEST_F(CachingStoreTest, ReadsOnlyNeverWrite) {
  ASSERT_TRUE(cache_->Put("a", "1").ok());
  ASSERT_TRUE(cache_->FlushCache().ok());
  writer_.Take();
  const int writes = counting_->writes;
  EXPECT_THAT(*cache_->Get("a"), Optional(std::string("1")));
  EXPECT_EQ(*cache_->Get("b"), std::nullopt);
  EXPECT_THAT(Keys(cache_->All()), ElementsAre("a"));
  ASSERT_TRUE(cache_->FlushCache().ok());
  EXPECT_EQ(counting_->writes, writes);
  EXPECT_THAT(writer_.Take(), IsEmpty());
}

TEST_F(CachingStoreTest, GetAfterFlushCacheReadsTheInnerStoreOnceEvicted) {
  Make(2048);
  ASSERT_TRUE(cache_->Put("k", "v").ok());
  ASSERT_TRUE(cache_->FlushCache().ok());
  EXPECT_THAT(*logged_->Get("k"), Optional(std::string("v")));
  const uint64_t hits = cache_->stats().hits;
  EXPECT_THAT(*cache_->Get("k"), Optional(std::string("v")));
  EXPECT_EQ(cache_->stats().hits, hits + 1) << "clean entries stay cached";

  // Other keys push the clean entry out; the next read goes below.
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(cache_->Put("other" + std::to_string(i), "x").ok());
  }
  ASSERT_GT(cache_->stats().evictions, 0u);
  const int gets = counting_->gets;
  const uint64_t misses = cache_->stats().misses;
  EXPECT_THAT(*cache_->Get("k"), Optional(std::string("v")));
  EXPECT_EQ(cache_->stats().misses, misses + 1);
  EXPECT_EQ(counting_->gets, gets + 1);
}

TEST_F(CachingStoreTest, BudgetOverflowFlushesEarly) {
  Make(4096);
  const std::string value(100, 'v');
  for (int i = 0; i < 100; ++i) {
    char key[8];
    snprintf(key, sizeof(key), "k%03d", i);
    ASSERT_TRUE(cache_->Put(key, value).ok());
    EXPECT_LE(cache_->cached_bytes(), 4096u);
  }
  EXPECT_GT(cache_->stats().early_flushes, 0u);
  EXPECT_GT(cache_->stats().evictions, 0u);
  EXPECT_FALSE(Inner().empty()) << "early flushes reached the inner store";
  ASSERT_TRUE(cache_->FlushCache().ok());
  EXPECT_EQ(Inner().size(), 100u);
  EXPECT_EQ(writer_.Take().size(), 100u) << "each key logged once";
  EXPECT_EQ(Drain(cache_->All()).size(), 100u);
}

TEST_F(CachingStoreTest, ScansMergeCacheAndInnerStore) {
  for (const char* key : {"a", "c", "e", "g"}) ASSERT_TRUE(cache_->Put(key, "old").ok());
  ASSERT_TRUE(cache_->FlushCache().ok());
  ASSERT_TRUE(cache_->Put("b", "new").ok());  // only cached
  ASSERT_TRUE(cache_->Put("c", "new").ok());  // shadows the inner value
  ASSERT_TRUE(cache_->Delete("e").ok());      // hides the inner key
  ASSERT_TRUE(cache_->Delete("f").ok());      // hides nothing
  ASSERT_TRUE(cache_->Put("h", "new").ok());  // after the inner keys

  EXPECT_THAT(Drain(cache_->All()),
              ElementsAre(Pair("a", "old"), Pair("b", "new"), Pair("c", "new"),
                          Pair("g", "old"), Pair("h", "new")));
  EXPECT_THAT(Keys(cache_->Range("b", "g")), ElementsAre("b", "c"));
  EXPECT_THAT(Keys(cache_->Range("c", "")), ElementsAre("c", "g", "h"))
      << "an empty `to` runs to the end";
  EXPECT_THAT(Keys(cache_->Range("d", "")), ElementsAre("g", "h"));
  EXPECT_THAT(Keys(cache_->Range("e", "f")), ElementsAre());
  EXPECT_THAT(Keys(cache_->Range("g", "a")), ElementsAre());
  EXPECT_THAT(Keys(cache_->PrefixScan("e")), ElementsAre());
  EXPECT_THAT(Keys(cache_->PrefixScan("c")), ElementsAre("c"));

  // Everything deleted in the cache: the scan is empty though the inner
  // store still holds keys.
  for (const char* key : {"a", "b", "c", "g", "h"}) ASSERT_TRUE(cache_->Delete(key).ok());
  EXPECT_THAT(Keys(cache_->All()), ElementsAre());
  EXPECT_FALSE(Inner().empty());
  ASSERT_TRUE(cache_->FlushCache().ok());
  EXPECT_THAT(Inner(), IsEmpty());
}

TEST_F(CachingStoreTest, PrefixScanAtTheEndOfTheKeyspace) {
  for (const char* key : {"\xFE", "\xFF", "\xFF\xFF", "\xFF\xFF\x01"}) {
    ASSERT_TRUE(cache_->Put(key, "inner").ok());
  }
  ASSERT_TRUE(cache_->FlushCache().ok());
  ASSERT_TRUE(cache_->Put("\xFF\x01", "cached").ok());
  ASSERT_TRUE(cache_->Delete("\xFF\xFF").ok());
  ASSERT_TRUE(cache_->Put("\xFF\xFF\xFF", "cached").ok());

  EXPECT_THAT(Drain(cache_->PrefixScan("\xFF\xFF")),
              ElementsAre(Pair("\xFF\xFF\x01", "inner"), Pair("\xFF\xFF\xFF", "cached")));
  EXPECT_THAT(Keys(cache_->PrefixScan("\xFF")),
              ElementsAre("\xFF", "\xFF\x01", "\xFF\xFF\x01", "\xFF\xFF\xFF"));
  EXPECT_THAT(Keys(cache_->Range("\xFF\x01", "")),
              ElementsAre("\xFF\x01", "\xFF\xFF\x01", "\xFF\xFF\xFF"));
  EXPECT_THAT(Keys(cache_->PrefixScan("")),
              ElementsAre("\xFE", "\xFF", "\xFF\x01", "\xFF\xFF\x01", "\xFF\xFF\xFF"));
}

TEST_F(CachingStoreTest, FlushCacheFailureKeepsEntriesDirty) {
  ASSERT_TRUE(cache_->Put("a", "1").ok());
  writer_.FailWith(absl::UnavailableError("broker down"));
  EXPECT_EQ(cache_->FlushCache().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(cache_->dirty_entries(), 1u);
  writer_.FailWith(absl::OkStatus());
  ASSERT_TRUE(cache_->FlushCache().ok());
  EXPECT_THAT(writer_.Take(), ElementsAre(PutChange("a", "1")));
}

TEST_F(CachingStoreTest, ApproximateCountCountsDirtyEntries) {
  ASSERT_TRUE(cache_->Put("a", "1").ok());
  ASSERT_TRUE(cache_->Put("b", "1").ok());
  ASSERT_TRUE(cache_->FlushCache().ok());
  ASSERT_TRUE(cache_->Put("a", "2").ok());   // overwrite: +0
  ASSERT_TRUE(cache_->Delete("b").ok());     // -1
  ASSERT_TRUE(cache_->Put("c", "1").ok());   // +1
  ASSERT_TRUE(cache_->Put("d", "1").ok());   // +1
  ASSERT_TRUE(cache_->Delete("never").ok());  // blind delete of nothing: 0
  EXPECT_EQ(*cache_->ApproximateCount(), 3u);
  EXPECT_EQ(counting_->writes, 2) << "counting writes nothing";
}

// A flush, evictions and writes in the middle of a scan change nothing the
// scan returns: keys stay hidden, cached keys ahead are still returned, and
// the order stays strictly ascending. Over RocksDB (snapshot iterators) and
// the in-memory store (live iterators).
class CachingStoreScanTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    std::string pattern =
        std::filesystem::path(::testing::TempDir()) / "caching_store_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    std::unique_ptr<KeyValueStore> inner;
    if (GetParam()) {
      auto resources = RocksDbResources::Create(16 << 20, 4 << 20);
      ASSERT_TRUE(resources.ok()) << resources.status();
      resources_ = std::move(*resources);
      auto rocks = RocksDbStore::Open("s", dir_ + "/store", *resources_);
      ASSERT_TRUE(rocks.ok()) << rocks.status();
      inner = std::move(*rocks);
    } else {
      inner = InMemoryStore::Create("s");
    }
    cache_ = CachingStore::Create(std::move(inner), 8192);
  }

  void TearDown() override {
    cache_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::string dir_;
  std::unique_ptr<RocksDbResources> resources_;
  std::unique_ptr<CachingStore> cache_;
};

TEST_P(CachingStoreScanTest, FlushAndEvictionDuringAScan) {
  for (char c = 'a'; c <= 'j'; ++c) ASSERT_TRUE(cache_->Put(std::string(1, c), "old").ok());
  ASSERT_TRUE(cache_->FlushCache().ok());
  ASSERT_TRUE(cache_->Delete("c").ok());
  ASSERT_TRUE(cache_->Delete("e").ok());
  ASSERT_TRUE(cache_->Put("d", "new").ok());
  ASSERT_TRUE(cache_->Put("k", "new").ok());
  ASSERT_TRUE(cache_->Put("l", "new").ok());

  Entries seen;
  int step = 0;
  for (auto it = cache_->All(); it->Valid(); it->Next(), ++step) {
    seen.emplace_back(std::string(it->key()), std::string(it->value()));
    if (step == 1) {
      ASSERT_TRUE(cache_->FlushCache().ok());
    }
    if (step == 2) {
      // Past the budget: evicts clean entries and flushes early.
      for (int i = 0; i < 100; ++i) {
        ASSERT_TRUE(cache_->Put("0-" + std::to_string(i), std::string(100, 'x')).ok());
        ASSERT_TRUE(cache_->Get("a").ok());
      }
      ASSERT_GT(cache_->stats().evictions, 0u);
    }
  }
  EXPECT_THAT(seen, ElementsAre(Pair("a", "old"), Pair("b", "old"), Pair("d", "new"),
                                Pair("f", "old"), Pair("g", "old"), Pair("h", "old"),
                                Pair("i", "old"), Pair("j", "old"), Pair("k", "new"),
                                Pair("l", "new")));
}

TEST_P(CachingStoreScanTest, EvictionDuringAScanKeepsTheOrder) {
  // Clean entries only: reads evict them while the scan runs, so the live
  // cache cursor re-seeks; a key written behind the position never shows.
  for (int i = 0; i < 40; ++i) {
    char key[8];
    snprintf(key, sizeof(key), "k%02d", i);
    ASSERT_TRUE(cache_->Put(key, std::string(100, 'v')).ok());
  }
  ASSERT_TRUE(cache_->FlushCache().ok());
  for (int i = 0; i < 40; i += 2) {
    char key[8];
    snprintf(key, sizeof(key), "k%02d", i);
    ASSERT_TRUE(cache_->Get(key).ok());
  }
  std::vector<std::string> keys;
  for (auto it = cache_->All(); it->Valid(); it->Next()) {
    keys.emplace_back(it->key());
    ASSERT_TRUE(cache_->Put("a" + keys.back(), "behind").ok());
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE(cache_->Get("z" + keys.back() + std::to_string(i)).ok());
    }
  }
  ASSERT_EQ(keys.size(), 40u);
  for (size_t i = 1; i < keys.size(); ++i) EXPECT_LT(keys[i - 1], keys[i]);
  EXPECT_GT(cache_->stats().evictions, 0u);
}

std::string InnerName(const ::testing::TestParamInfo<bool>& param) {
  return param.param ? "RocksDb" : "InMemory";
}

INSTANTIATE_TEST_SUITE_P(Inner, CachingStoreScanTest, ::testing::Bool(), InnerName);

}  // namespace
}  // namespace tributary
