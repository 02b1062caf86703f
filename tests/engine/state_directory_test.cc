// StateDirectory: the cleaner deletes task directories that are neither
// claimed by a thread nor changed within state.cleanup.delay.ms, and
// nothing else.
#include "engine/internal/state_directory.h"

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tributary::internal {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

class StateDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/state_directory_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    root_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }

  // A task directory with a store file and a checkpoint, last changed
  // `age` ago.
  void MakeTaskDir(const std::string& name, std::chrono::seconds age) {
    const std::filesystem::path dir = std::filesystem::path(root_) / name;
    std::filesystem::create_directories(dir / "rocksdb");
    std::ofstream(dir / "rocksdb" / "CURRENT") << "MANIFEST-000001\n";
    std::ofstream(dir / ".checkpoint") << "0\n";
    const auto then = std::filesystem::file_time_type::clock::now() - age;
    std::filesystem::last_write_time(dir / ".checkpoint", then);
    std::filesystem::last_write_time(dir, then);
  }
  bool Exists(const std::string& name) {
    return std::filesystem::exists(std::filesystem::path(root_) / name);
  }

  std::string root_;
};

TEST_F(StateDirectoryTest, DeletesOnlyUnclaimedTaskDirectoriesOlderThanTheDelay) {
  MakeTaskDir("0_0", std::chrono::hours(2));   // claimed: kept however old
  MakeTaskDir("0_1", std::chrono::hours(2));   // unused for 2 h: deleted
  MakeTaskDir("1_3", std::chrono::minutes(1)); // changed a minute ago: kept
  MakeTaskDir("rocksdb", std::chrono::hours(2));  // not a task's: kept
  MakeTaskDir("0_01", std::chrono::hours(2));     // not a task's name: kept
  std::ofstream(std::filesystem::path(root_) / ".lock") << "";
  std::ofstream(std::filesystem::path(root_) / "process-id") << "0123456789abcdef\n";

  StateDirectory dir(root_);
  dir.Claim(TaskId{0, 0});
  EXPECT_THAT(dir.CleanUnused(absl::Minutes(10), absl::Now()), ElementsAre("0_1"));
  EXPECT_TRUE(Exists("0_0"));
  EXPECT_FALSE(Exists("0_1"));
  EXPECT_TRUE(Exists("1_3"));
  EXPECT_TRUE(Exists("rocksdb"));
  EXPECT_TRUE(Exists("0_01"));
  EXPECT_TRUE(Exists(".lock"));
  EXPECT_TRUE(Exists("process-id"));

  // Released, it goes once old enough; 1_3 once the delay has passed.
  dir.Release(TaskId{0, 0});
  EXPECT_THAT(dir.CleanUnused(absl::Minutes(10), absl::Now()), ElementsAre("0_0"));
  EXPECT_THAT(dir.CleanUnused(absl::Minutes(10), absl::Now()), IsEmpty());
  EXPECT_THAT(dir.CleanUnused(absl::Minutes(10), absl::Now() + absl::Minutes(10)),
              ElementsAre("1_3"));
}

// Under an eager rebalance the old owner releases after the new one has
// claimed: the directory stays claimed until both have let go.
TEST_F(StateDirectoryTest, ClaimsAreCounted) {
  MakeTaskDir("2_5", std::chrono::hours(1));
  StateDirectory dir(root_);
  dir.Claim(TaskId{2, 5});
  dir.Claim(TaskId{2, 5});
  dir.Release(TaskId{2, 5});
  EXPECT_THAT(dir.CleanUnused(absl::ZeroDuration(), absl::Now()), IsEmpty());
  dir.Release(TaskId{2, 5});
  EXPECT_THAT(dir.CleanUnused(absl::ZeroDuration(), absl::Now()), ElementsAre("2_5"));
}

}  // namespace
}  // namespace tributary::internal
