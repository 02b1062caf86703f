// RocksDbStore on a full disk (a small tmpfs the test mounts as root, skipped
// without the privilege): the first failed write fails the store with an
// error naming its directory and the full disk; what the engine does next on
// a task's failure (more writes, a flush, the close) neither reaches RocksDB's
// assert()s (Debian's librocksdb 7.8 keeps them: a file writer that saw an
// error aborts the process when written again) nor loses what was durable;
// with the space back the store opens again. Also: opening on a full disk.

#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "state/rocksdb_store.h"
#include "tests/support/kafka_fixture.h"  // MakeTempDir
#include "tests/support/tmpfs.h"

namespace tributary {
namespace {

using ::testing::HasSubstr;
using ::testing::Optional;
using ::tributary::testing::Tmpfs;

// Room for a store's files and a few of its flushes, not many more.
constexpr size_t kDiskBytes = 4 << 20;
constexpr size_t kValueBytes = 1024;
constexpr int kValuesPerRound = 64;
// Rounds of kValuesPerRound values, each flushed: more than the disk holds.
constexpr int kMaxRounds = 2 * kDiskBytes / (kValueBytes * kValuesPerRound);
// What the engine does after a store error, repeated: RocksDB 7.8 asserted
// on the second write to a file that had failed, whichever call got there.
constexpr int kCallsAfterFailure = 16;

class RocksDbDiskFullTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> dir = testing::MakeTempDir("rocksdb_disk_full_test");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = *dir;
    absl::StatusOr<std::unique_ptr<Tmpfs>> disk = Tmpfs::Mount(dir_ + "/disk", kDiskBytes);
    if (absl::IsPermissionDenied(disk.status())) {
      GTEST_SKIP() << "needs the privilege to mount a tmpfs (root): " << disk.status();
    }
    ASSERT_TRUE(disk.ok()) << disk.status();
    disk_ = *std::move(disk);
    // As the chaos test's instances: 1 MiB of write buffers.
    auto resources = RocksDbResources::Create(4 << 20, 1 << 20);
    ASSERT_TRUE(resources.ok()) << resources.status();
    resources_ = std::move(*resources);
    path_ = disk_->path() + "/0_0/rocksdb/store";
  }

  void TearDown() override {
    disk_.reset();  // unmounts
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // The parameter: WAL on (at-least-once) or off (exactly-once).
  RocksDbStoreOptions Options() const { return {.disable_wal = !GetParam()}; }

  std::unique_ptr<RocksDbStore> OpenOrDie() {
    auto store = RocksDbStore::Open("store", path_, *resources_, Options());
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  // Incompressible, so that every flush needs its size on disk.
  std::string Value() {
    std::string value(kValueBytes, '\0');
    for (char& c : value) c = static_cast<char>(random_());
    return value;
  }

  // Writes and flushes rounds of values until a call fails; that error.
  absl::Status WriteUntilFailure(RocksDbStore& store) {
    for (int round = 0; round < kMaxRounds; ++round) {
      WriteBatch batch;
      for (int i = 0; i < kValuesPerRound; ++i) {
        batch.Put(absl::StrCat("key-", round, "-", i), Value());
      }
      if (absl::Status written = store.Write(batch); !written.ok()) return written;
      if (absl::Status flushed = store.Flush(); !flushed.ok()) return flushed;
    }
    return absl::OkStatus();
  }

  // A store error as the engine reports it: the full disk and the store.
  void ExpectNoSpace(const absl::Status& status) {
    EXPECT_TRUE(absl::IsResourceExhausted(status)) << status;
    EXPECT_THAT(status.message(), HasSubstr("No space left on device"));
    EXPECT_THAT(status.message(), HasSubstr(path_));
  }

  std::string dir_;
  std::unique_ptr<Tmpfs> disk_;
  std::unique_ptr<RocksDbResources> resources_;
  std::string path_;
  std::mt19937 random_{11};
};

INSTANTIATE_TEST_SUITE_P(Wal, RocksDbDiskFullTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& wal) {
                           return wal.param ? "WalOn" : "WalOff";
                         });

TEST_P(RocksDbDiskFullTest, FirstErrorFailsTheStoreWhichThenClosesWithoutAborting) {
  std::unique_ptr<RocksDbStore> store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Put("durable", "before the disk filled").ok());
  ASSERT_TRUE(store->Flush().ok());
  EXPECT_TRUE(store->failure().ok());
  ASSERT_TRUE(disk_->Fill().ok());

  const absl::Status failure = WriteUntilFailure(*store);
  ASSERT_FALSE(failure.ok()) << "the disk never filled";
  ExpectNoSpace(failure);
  ExpectNoSpace(store->failure());

  // What a task does next when it stops: more writes (a processor's close, a
  // record cache's flush), a flush (a checkpoint), then the close.
  for (int i = 0; i < kCallsAfterFailure; ++i) {
    ExpectNoSpace(store->Put(absl::StrCat("after-", i), Value()));
    WriteBatch batch;
    batch.Put("batch", Value());
    batch.Delete("durable");
    ExpectNoSpace(store->Write(batch));
    ExpectNoSpace(store->Delete("durable"));
    ExpectNoSpace(store->Flush());
  }
  // Reads write nothing: still served.
  EXPECT_THAT(*store->Get("durable"), Optional(std::string("before the disk filled")));
  store.reset();

  // Space back: what was flushed is there, and the store works again.
  ASSERT_TRUE(disk_->Free().ok());
  store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(*store->Get("durable"), Optional(std::string("before the disk filled")));
  EXPECT_EQ(*store->Get("after-0"), std::nullopt);
  ASSERT_TRUE(store->Put("again", "space back").ok());
  EXPECT_TRUE(store->Flush().ok());
}

TEST_P(RocksDbDiskFullTest, OpeningANewStoreOnAFullDiskFailsNamingIt) {
  ASSERT_TRUE(disk_->Fill().ok());
  absl::StatusOr<std::unique_ptr<RocksDbStore>> store =
      RocksDbStore::Open("store", path_, *resources_, Options());
  ASSERT_FALSE(store.ok());
  ExpectNoSpace(store.status());

  ASSERT_TRUE(disk_->Free().ok());
  std::unique_ptr<RocksDbStore> opened = OpenOrDie();
  ASSERT_NE(opened, nullptr);
  EXPECT_TRUE(opened->Put("k", "v").ok());
}

TEST_P(RocksDbDiskFullTest, ReopeningOnAFullDiskFailsAndLosesNothing) {
  {
    std::unique_ptr<RocksDbStore> store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    // Kept by the clean close: flushed when the WAL is off, in the WAL else.
    for (int i = 0; i < kValuesPerRound; ++i) {
      ASSERT_TRUE(store->Put(absl::StrCat("key-", i), Value()).ok());
    }
  }
  ASSERT_TRUE(disk_->Fill().ok());
  // Opening writes a new MANIFEST (and with the WAL on, the recovered
  // writes to a table file): no room.
  absl::StatusOr<std::unique_ptr<RocksDbStore>> store =
      RocksDbStore::Open("store", path_, *resources_, Options());
  ASSERT_FALSE(store.ok());
  ExpectNoSpace(store.status());

  ASSERT_TRUE(disk_->Free().ok());
  std::unique_ptr<RocksDbStore> reopened = OpenOrDie();
  ASSERT_NE(reopened, nullptr);
  for (int i = 0; i < kValuesPerRound; ++i) {
    EXPECT_NE(*reopened->Get(absl::StrCat("key-", i)), std::nullopt) << i;
  }
}

}  // namespace
}  // namespace tributary
