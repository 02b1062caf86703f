// ChangeLoggingStore: every write reaches the changelog in order, and restoring
// the changelog into a fresh store reproduces the contents.

#include "state/change_logging_store.h"

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
#include "state/changelog.h"
#include "state/in_memory_store.h"
#include "state/rocksdb_store.h"
#include "tests/state/store_test_util.h"

namespace tributary {
namespace {

using store_test::Change;
using store_test::DeleteChange;
using store_test::Drain;
using store_test::FakeChangelogWriter;
using store_test::PutChange;
using ::testing::ElementsAre;
using ::testing::Optional;

std::vector<ChangelogRecord> AsRecords(const std::vector<Change>& changes) {
  std::vector<ChangelogRecord> records;
  for (const Change& change : changes) {
    records.push_back(
        {change.key, change.value.has_value()
                         ? std::optional<std::string_view>(*change.value)
                         : std::nullopt});
  }
  return records;
}

class ChangeLoggingStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = std::filesystem::path(::testing::TempDir()) /
                          "change_logging_store_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    auto resources = RocksDbResources::Create(16 << 20, 4 << 20);
    ASSERT_TRUE(resources.ok()) << resources.status();
    resources_ = std::move(*resources);
    auto inner = RocksDbStore::Open("orders", dir_ + "/orders", *resources_);
    ASSERT_TRUE(inner.ok()) << inner.status();
    store_ = MakeChangeLoggingStore(std::move(*inner), &writer_);
  }

  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::string dir_;
  FakeChangelogWriter writer_;  // Outlives store_.
  std::unique_ptr<RocksDbResources> resources_;
  std::unique_ptr<ChangeLoggingStore> store_;
};

TEST_F(ChangeLoggingStoreTest, LogsEveryWriteInOrder) {
  EXPECT_EQ(store_->name(), "orders");
  ASSERT_TRUE(store_->Put("a", "1").ok());
  ASSERT_TRUE(store_->Put("b", "2").ok());
  ASSERT_TRUE(store_->Delete("a").ok());
  WriteBatch batch;
  batch.Put("c", "3");
  batch.Delete("b");
  batch.Put("a", "4");
  ASSERT_TRUE(store_->Write(batch).ok());
  ASSERT_TRUE(store_->Put("c", std::string("bin\0", 4)).ok());

  EXPECT_THAT(
      writer_.changes(),
      ElementsAre(PutChange("a", "1"), PutChange("b", "2"), DeleteChange("a"),
                  PutChange("c", "3"), DeleteChange("b"), PutChange("a", "4"),
                  PutChange("c", std::string("bin\0", 4))));
}

TEST_F(ChangeLoggingStoreTest, ReadsAreNotLogged) {
  ASSERT_TRUE(store_->Put("a", "1").ok());
  EXPECT_THAT(*store_->Get("a"), Optional(std::string("1")));
  EXPECT_EQ(Drain(store_->All()).size(), 1u);
  EXPECT_TRUE(store_->PrefixScan("a")->Valid());
  EXPECT_TRUE(store_->ApproximateCount().ok());
  EXPECT_TRUE(store_->Flush().ok());
  EXPECT_EQ(writer_.changes().size(), 1u);
}

TEST_F(ChangeLoggingStoreTest, RestoringTheChangelogReproducesTheContents) {
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(
        store_->Put("key" + std::to_string(i % 50), "v" + std::to_string(i))
            .ok());
    if (i % 7 == 0) {
      ASSERT_TRUE(store_->Delete("key" + std::to_string(i % 13)).ok());
    }
  }
  WriteBatch batch;
  batch.Put("z", "last");
  batch.Delete("key1");
  ASSERT_TRUE(store_->Write(batch).ok());

  const std::vector<ChangelogRecord> records = AsRecords(writer_.changes());
  // Restore in consumer-batch-sized chunks, as the engine does.
  auto restored = InMemoryStore::Create("orders");
  absl::Span<const ChangelogRecord> rest(records);
  while (!rest.empty()) {
    const size_t n = std::min<size_t>(rest.size(), 64);
    ASSERT_TRUE(RestoreBatch(*restored, rest.first(n)).ok());
    rest.remove_prefix(n);
  }
  EXPECT_EQ(Drain(restored->All()), Drain(store_->All()));
  EXPECT_FALSE(Drain(restored->All()).empty());

  // Into a RocksDB store through inner(): nothing is logged again.
  auto resources = RocksDbResources::Create(16 << 20, 4 << 20);
  ASSERT_TRUE(resources.ok());
  auto fresh = RocksDbStore::Open("orders", dir_ + "/fresh", **resources);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  FakeChangelogWriter fresh_writer;
  auto logged = MakeChangeLoggingStore(std::move(*fresh), &fresh_writer);
  ASSERT_TRUE(RestoreBatch(logged->inner(), records).ok());
  EXPECT_TRUE(fresh_writer.changes().empty());
  EXPECT_EQ(Drain(logged->All()), Drain(store_->All()));
  EXPECT_TRUE(RestoreBatch(logged->inner(), {}).ok());
}

TEST_F(ChangeLoggingStoreTest, AppendFailureIsReturned) {
  writer_.FailWith(absl::UnavailableError("producer fenced"));
  const absl::Status status = store_->Put("a", "1");
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store_->Delete("a").code(), absl::StatusCode::kUnavailable);
  WriteBatch batch;
  batch.Put("b", "2");
  EXPECT_EQ(store_->Write(batch).code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace tributary
