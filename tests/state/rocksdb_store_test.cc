// RocksDbStore specifics: persistence across reopen (WAL on and off), Destroy,
// shared RocksDbResources, and errors that name the store.

#include "state/rocksdb_store.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tributary {
namespace {

using ::testing::HasSubstr;
using ::testing::Optional;

class RocksDbStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = std::filesystem::path(::testing::TempDir()) /
                          "rocksdb_store_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    auto resources = RocksDbResources::Create(32 << 20, 8 << 20);
    ASSERT_TRUE(resources.ok()) << resources.status();
    resources_ = std::move(*resources);
  }

  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<RocksDbStore> OpenOrDie(const std::string& name,
                                          const std::string& directory,
                                          RocksDbStoreOptions options = {}) {
    auto store = RocksDbStore::Open(name, directory, *resources_, options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  std::string dir_;
  std::unique_ptr<RocksDbResources> resources_;
};

TEST_F(RocksDbStoreTest, DataSurvivesCloseAndReopen) {
  const std::string path = dir_ + "/nested/task_0_1/orders";  // Parents made.
  {
    auto store = OpenOrDie("orders", path);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->directory(), path);
    ASSERT_TRUE(store->Put("k1", "v1").ok());
    ASSERT_TRUE(store->Put("k2", "v2").ok());
    ASSERT_TRUE(store->Delete("k2").ok());
  }
  auto store = OpenOrDie("orders", path);
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(*store->Get("k1"), Optional(std::string("v1")));
  EXPECT_EQ(*store->Get("k2"), std::nullopt);
}

TEST_F(RocksDbStoreTest, WalOffDataSurvivesFlushAndCleanClose) {
  const std::string path = dir_ + "/nowal";
  const RocksDbStoreOptions no_wal{.disable_wal = true};
  {
    auto store = OpenOrDie("nowal", path, no_wal);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Put("flushed", "1").ok());
    ASSERT_TRUE(store->Flush().ok());
    ASSERT_TRUE(store->Put("closed", "2").ok());  // Flushed by the close.
  }
  auto store = OpenOrDie("nowal", path, no_wal);
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(*store->Get("flushed"), Optional(std::string("1")));
  EXPECT_THAT(*store->Get("closed"), Optional(std::string("2")));
}

TEST_F(RocksDbStoreTest, DestroyWipesTheStore) {
  const std::string path = dir_ + "/wiped";
  {
    auto store = OpenOrDie("wiped", path);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Put("k", "v").ok());
    ASSERT_TRUE(store->Flush().ok());
  }
  ASSERT_TRUE(RocksDbStore::Destroy(path).ok());
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_TRUE(RocksDbStore::Destroy(path).ok()) << "destroying nothing is OK";

  auto store = OpenOrDie("wiped", path);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(*store->Get("k"), std::nullopt);
  EXPECT_EQ(*store->ApproximateCount(), 0u);
}

TEST_F(RocksDbStoreTest, StoresShareOneResources) {
  auto first = OpenOrDie("first", dir_ + "/first");
  auto second = OpenOrDie("second", dir_ + "/second");
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  const std::string value(1000, 'v');
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(first->Put("k" + std::to_string(i), value).ok());
    ASSERT_TRUE(second->Put("k" + std::to_string(i), value + "2").ok());
  }
  // Both stores' memtables are charged to the one write buffer manager.
  EXPECT_GE(resources_->WriteBufferUsageBytes(), 2'000'000u);
  EXPECT_GE(resources_->CacheUsageBytes(), resources_->WriteBufferUsageBytes());
  EXPECT_THAT(*first->Get("k7"), Optional(value));
  EXPECT_THAT(*second->Get("k7"), Optional(value + "2"));

  ASSERT_TRUE(first->Flush().ok());
  ASSERT_TRUE(second->Flush().ok());
  EXPECT_THAT(*first->Get("k999"),
              Optional(value));  // Through the shared cache.
  EXPECT_LE(resources_->CacheUsageBytes(), resources_->cache_bytes());
}

TEST_F(RocksDbStoreTest, ResourcesRejectBadSizes) {
  EXPECT_EQ(RocksDbResources::Create(0, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RocksDbResources::Create(1 << 20, 2 << 20).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(RocksDbStoreTest, OpenOnARegularFileFailsWithUsefulMessage) {
  const std::string file = dir_ + "/not_a_directory";
  std::ofstream(file) << "x";
  auto store = RocksDbStore::Open("orders", file, *resources_);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr("orders"));
  EXPECT_THAT(store.status().message(), HasSubstr(file));

  auto below = RocksDbStore::Open("lines", file + "/sub", *resources_);
  ASSERT_FALSE(below.ok());
  EXPECT_THAT(below.status().message(), HasSubstr("lines"));
}

TEST_F(RocksDbStoreTest, SecondOpenOfOneDirectoryFails) {
  const std::string path = dir_ + "/locked";
  auto store = OpenOrDie("locked", path);
  ASSERT_NE(store, nullptr);
  auto again = RocksDbStore::Open("locked-again", path, *resources_);
  ASSERT_FALSE(again.ok());
  // RocksDB's own message (the LOCK file) with our store name and operation.
  EXPECT_THAT(again.status().message(), HasSubstr("locked-again"));
  EXPECT_THAT(again.status().message(), HasSubstr("open"));
  EXPECT_THAT(again.status().message(), HasSubstr("LOCK"));
}

TEST_F(RocksDbStoreTest, StoresOutliveTheirResourcesObject) {
  auto store = OpenOrDie("outlives", dir_ + "/outlives");
  ASSERT_NE(store, nullptr);
  resources_.reset();  // The database keeps its cache and manager alive.
  ASSERT_TRUE(store->Put("k", "v").ok());
  ASSERT_TRUE(store->Flush().ok());
  EXPECT_THAT(*store->Get("k"), Optional(std::string("v")));
}

}  // namespace
}  // namespace tributary
