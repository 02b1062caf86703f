// One suite run against every KeyValueStore implementation, proving they
// behave the same: InMemoryStore, RocksDbStore, ChangeLoggingStore over
// RocksDbStore, and CachingStore over RocksDbStore and InMemoryStore (with a
// roomy budget, and with a tiny one that evicts and flushes on most writes).

#include "state/key_value_store.h"

#include <stdlib.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "state/caching_store.h"
#include "state/change_logging_store.h"
#include "state/changelog.h"
#include "state/in_memory_store.h"
#include "state/rocksdb_store.h"
#include "tests/state/store_test_util.h"

namespace tributary {
namespace {

using store_test::Drain;
using store_test::Entries;
using store_test::Keys;
using ::testing::ElementsAre;
using ::testing::Optional;
using ::testing::Pair;

// Accepts and discards every change.
class NullChangelogWriter final : public ChangelogWriter {
 public:
  absl::Status Append(std::string_view,
                      std::optional<std::string_view>) override {
    ++appends_;
    return absl::OkStatus();
  }
  int appends() const { return appends_; }

 private:
  int appends_ = 0;
};

enum class Kind {
  kInMemory,
  kRocksDb,
  kChangeLoggingRocksDb,
  kCachingRocksDb,
  kCachingInMemory,
  kTinyCachingInMemory,
};

std::string KindName(const ::testing::TestParamInfo<Kind>& info) {
  switch (info.param) {
    case Kind::kInMemory:
      return "InMemory";
    case Kind::kRocksDb:
      return "RocksDb";
    case Kind::kChangeLoggingRocksDb:
      return "ChangeLoggingRocksDb";
    case Kind::kCachingRocksDb:
      return "CachingRocksDb";
    case Kind::kCachingInMemory:
      return "CachingInMemory";
    case Kind::kTinyCachingInMemory:
      return "TinyCachingInMemory";
  }
  return "Unknown";
}

class KeyValueStoreTest : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    std::string pattern =
        std::filesystem::path(::testing::TempDir()) / "kv_store_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    if (GetParam() == Kind::kInMemory) {
      store_ = InMemoryStore::Create("test");
      return;
    }
    if (GetParam() == Kind::kCachingInMemory) {
      store_ = CachingStore::Create(InMemoryStore::Create("test"), 1 << 20);
      return;
    }
    if (GetParam() == Kind::kTinyCachingInMemory) {
      store_ = CachingStore::Create(InMemoryStore::Create("test"), 512);
      return;
    }
    auto resources = RocksDbResources::Create(64 << 20, 16 << 20);
    ASSERT_TRUE(resources.ok()) << resources.status();
    resources_ = std::move(*resources);
    auto rocks = RocksDbStore::Open("test", dir_ + "/store", *resources_);
    ASSERT_TRUE(rocks.ok()) << rocks.status();
    if (GetParam() == Kind::kRocksDb) {
      store_ = std::move(*rocks);
    } else if (GetParam() == Kind::kCachingRocksDb) {
      store_ = CachingStore::Create(std::move(*rocks), 1 << 20);
    } else {
      store_ = MakeChangeLoggingStore(std::move(*rocks), &writer_);
    }
  }

  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  void PutAll(const std::vector<std::string>& keys) {
    for (const std::string& key : keys) {
      ASSERT_TRUE(store_->Put(key, "v:" + key).ok());
    }
  }

  std::string dir_;
  NullChangelogWriter writer_;  // Outlives store_.
  std::unique_ptr<RocksDbResources> resources_;
  std::unique_ptr<KeyValueStore> store_;
};

TEST_P(KeyValueStoreTest, GetPutOverwriteDelete) {
  EXPECT_EQ(store_->name(), "test");
  EXPECT_EQ(*store_->Get("k"), std::nullopt);

  ASSERT_TRUE(store_->Put("k", "v1").ok());
  EXPECT_THAT(*store_->Get("k"), Optional(std::string("v1")));

  ASSERT_TRUE(store_->Put("k", "v2").ok());
  EXPECT_THAT(*store_->Get("k"), Optional(std::string("v2")));

  ASSERT_TRUE(store_->Put("empty", "").ok());
  EXPECT_THAT(*store_->Get("empty"), Optional(std::string("")));

  ASSERT_TRUE(store_->Delete("k").ok());
  EXPECT_EQ(*store_->Get("k"), std::nullopt);
  EXPECT_TRUE(store_->Delete("k").ok()) << "deleting an absent key is OK";
  EXPECT_TRUE(store_->Delete("never-there").ok());
}

TEST_P(KeyValueStoreTest, WriteBatchAppliesEntriesInOrder) {
  ASSERT_TRUE(store_->Put("old", "x").ok());
  WriteBatch batch;
  batch.Put("a", "1");
  batch.Delete("a");  // Put then delete of one key: absent afterwards.
  batch.Delete("b");
  batch.Put("b", "2");  // Delete then put: present.
  batch.Put("c", "1");
  batch.Put("c", "3");  // Last put wins.
  batch.Delete("old");
  batch.Delete("absent");
  ASSERT_TRUE(store_->Write(batch).ok());

  EXPECT_EQ(*store_->Get("a"), std::nullopt);
  EXPECT_THAT(*store_->Get("b"), Optional(std::string("2")));
  EXPECT_THAT(*store_->Get("c"), Optional(std::string("3")));
  EXPECT_EQ(*store_->Get("old"), std::nullopt);
  EXPECT_THAT(Drain(store_->All()),
              ElementsAre(Pair("b", "2"), Pair("c", "3")));

  EXPECT_TRUE(store_->Write(WriteBatch()).ok()) << "an empty batch is OK";
}

TEST_P(KeyValueStoreTest, RangeIsHalfOpen) {
  PutAll({"a", "b", "c", "d"});
  EXPECT_THAT(Keys(store_->Range("b", "d")), ElementsAre("b", "c"));
  EXPECT_THAT(Keys(store_->Range("bb", "cc")), ElementsAre("c"));
  EXPECT_THAT(Keys(store_->Range("b", "")), ElementsAre("b", "c", "d"))
      << "an empty `to` means to the end";
  EXPECT_THAT(Keys(store_->Range("", "")), ElementsAre("a", "b", "c", "d"));
  EXPECT_THAT(Keys(store_->All()), ElementsAre("a", "b", "c", "d"));
  EXPECT_THAT(Keys(store_->Range("b", "b")), ElementsAre());
  EXPECT_THAT(Keys(store_->Range("c", "b")), ElementsAre());
  EXPECT_THAT(Keys(store_->Range("e", "")), ElementsAre());
  EXPECT_THAT(Drain(store_->Range("a", "b")), ElementsAre(Pair("a", "v:a")));
}

TEST_P(KeyValueStoreTest, PrefixScan) {
  PutAll({"a", "ab", "abc", "abd", "ac", "b"});
  EXPECT_THAT(Keys(store_->PrefixScan("ab")), ElementsAre("ab", "abc", "abd"));
  EXPECT_THAT(Keys(store_->PrefixScan("abc")), ElementsAre("abc"));
  EXPECT_THAT(Keys(store_->PrefixScan("abz")), ElementsAre());
  EXPECT_THAT(Keys(store_->PrefixScan("")),
              ElementsAre("a", "ab", "abc", "abd", "ac", "b"));
}

TEST_P(KeyValueStoreTest, PrefixScanWithFFBytes) {
  // The prefix's successor must carry past trailing 0xFF bytes.
  PutAll({"a\xFE", "a\xFF", std::string("a\xFF\x00", 3), "a\xFF\xFF", "b"});
  EXPECT_THAT(Keys(store_->PrefixScan("a\xFF")),
              ElementsAre("a\xFF", std::string("a\xFF\x00", 3), "a\xFF\xFF"));
  EXPECT_THAT(
      Keys(store_->PrefixScan("a")),
      ElementsAre("a\xFE", "a\xFF", std::string("a\xFF\x00", 3), "a\xFF\xFF"));
}

TEST_P(KeyValueStoreTest, PrefixScanAtEndOfKeyspace) {
  // An all-0xFF prefix has no successor: the scan runs to the end.
  PutAll({"\xFE\xFF", "\xFF", "\xFF\xFE", "\xFF\xFF", "\xFF\xFF\x01",
          "\xFF\xFF\xFF"});
  EXPECT_THAT(Keys(store_->PrefixScan("\xFF\xFF")),
              ElementsAre("\xFF\xFF", "\xFF\xFF\x01", "\xFF\xFF\xFF"));
  EXPECT_THAT(Keys(store_->PrefixScan("\xFF")),
              ElementsAre("\xFF", "\xFF\xFE", "\xFF\xFF", "\xFF\xFF\x01",
                          "\xFF\xFF\xFF"));
  EXPECT_THAT(Keys(store_->Range("\xFF\xFF", "")),
              ElementsAre("\xFF\xFF", "\xFF\xFF\x01", "\xFF\xFF\xFF"));
}

TEST_P(KeyValueStoreTest, IterationOrderIsBytewiseUnsigned) {
  // Inserted out of order; 0x80 and above sort after ASCII (unsigned bytes).
  PutAll({"\xFF", "a", "\x80", "B", "\x7F", "\x01", "", "aa"});
  EXPECT_THAT(Keys(store_->All()),
              ElementsAre("", "\x01", "B", "a", "aa", "\x7F", "\x80", "\xFF"));
}

TEST_P(KeyValueStoreTest, BinaryKeysAndValuesWithNul) {
  const std::string a_nul("a\0", 2);
  const std::string a_nul_b("a\0b", 3);
  const std::string nul("\0", 1);
  const std::string value("x\0y\0", 4);
  for (const std::string& key : {a_nul_b, nul, a_nul, std::string("a")}) {
    ASSERT_TRUE(store_->Put(key, value + key).ok());
  }
  EXPECT_THAT(Keys(store_->All()), ElementsAre(nul, "a", a_nul, a_nul_b));
  EXPECT_THAT(*store_->Get(a_nul), Optional(value + a_nul));
  EXPECT_EQ(*store_->Get(std::string("a\0c", 3)), std::nullopt);
  EXPECT_THAT(Keys(store_->PrefixScan(a_nul)), ElementsAre(a_nul, a_nul_b));
  EXPECT_THAT(Keys(store_->Range(nul, a_nul)), ElementsAre(nul, "a"));

  ASSERT_TRUE(store_->Delete(a_nul).ok());
  EXPECT_THAT(*store_->Get("a"), Optional(value + "a"));
  EXPECT_THAT(Keys(store_->All()), ElementsAre(nul, "a", a_nul_b));
}

TEST_P(KeyValueStoreTest, LargeValues) {
  std::string large(1 << 20, '\0');
  for (size_t i = 0; i < large.size(); ++i)
    large[i] = static_cast<char>(i * 31);
  ASSERT_TRUE(store_->Put("large", large).ok());
  WriteBatch batch;
  batch.Put("large2", large);
  ASSERT_TRUE(store_->Write(batch).ok());

  EXPECT_THAT(*store_->Get("large"), Optional(large));
  const Entries entries = Drain(store_->All());
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_TRUE(entries[0].second == large);
  EXPECT_TRUE(entries[1].second == large);
  ASSERT_TRUE(store_->Flush().ok());
  EXPECT_THAT(*store_->Get("large2"), Optional(large));
}

TEST_P(KeyValueStoreTest, ApproximateCount) {
  EXPECT_EQ(*store_->ApproximateCount(), 0u);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(store_->Put("key" + std::to_string(i), "v").ok());
  }
  absl::StatusOr<uint64_t> count = store_->ApproximateCount();
  ASSERT_TRUE(count.ok()) << count.status();
  if (GetParam() == Kind::kInMemory) {
    EXPECT_EQ(*count, 1000u);
  } else {
    EXPECT_GE(*count, 900u);
    EXPECT_LE(*count, 1100u);
  }
  ASSERT_TRUE(store_->Flush().ok());
  count = store_->ApproximateCount();
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_GE(*count, 900u);
  EXPECT_LE(*count, 1100u);
}

TEST_P(KeyValueStoreTest, WritesDuringIterationAreSafe) {
  PutAll({"a", "b", "c", "d"});
  std::vector<std::string> seen;
  for (auto it = store_->All(); it->Valid(); it->Next()) {
    seen.emplace_back(it->key());
    ASSERT_TRUE(store_->Delete(it->key()).ok());
    // Behind the scan position, so no store may show it to this scan.
    ASSERT_TRUE(store_->Put("0" + std::string(it->key()), "new").ok());
  }
  EXPECT_THAT(seen, ElementsAre("a", "b", "c", "d"));
  EXPECT_THAT(Keys(store_->All()), ElementsAre("0a", "0b", "0c", "0d"));
}

TEST_P(KeyValueStoreTest, FlushKeepsData) {
  PutAll({"a", "b"});
  ASSERT_TRUE(store_->Flush().ok());
  ASSERT_TRUE(store_->Put("c", "v:c").ok());
  EXPECT_THAT(Keys(store_->All()), ElementsAre("a", "b", "c"));
}

INSTANTIATE_TEST_SUITE_P(AllStores, KeyValueStoreTest,
                         ::testing::Values(Kind::kInMemory, Kind::kRocksDb,
                                           Kind::kChangeLoggingRocksDb,
                                           Kind::kCachingRocksDb,
                                           Kind::kCachingInMemory,
                                           Kind::kTinyCachingInMemory),
                         KindName);

}  // namespace
}  // namespace tributary
