// CheckpointFile: round trip, missing file, corrupt file, atomic overwrite.

#include "state/checkpoint.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tributary {
namespace {

using ::testing::HasSubstr;
using Offsets = CheckpointFile::Offsets;

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        std::filesystem::path(::testing::TempDir()) / "checkpoint_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/.checkpoint";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void WriteRaw(const std::string& content) { std::ofstream(path_) << content; }
  std::string ReadRaw() {
    std::ifstream in(path_);
    std::stringstream content;
    content << in.rdbuf();
    return content.str();
  }

  std::string dir_;
  std::string path_;
};

TEST_F(CheckpointTest, RoundTrip) {
  const CheckpointFile file(path_);
  const Offsets offsets = {
      {{"app-orders-changelog", 0}, 42},
      {{"app-orders-changelog", 11}, 0},
      {{"app-lines-changelog", 3}, 9'000'000'000},
  };
  ASSERT_TRUE(file.Write(offsets).ok());
  absl::StatusOr<Offsets> read = file.Read();
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, offsets);
  // Kafka Streams' format: version, count, entries.
  EXPECT_EQ(
      ReadRaw(),
      "0\n3\napp-lines-changelog 3 9000000000\napp-orders-changelog 0 42\n"
      "app-orders-changelog 11 0\n");
}

TEST_F(CheckpointTest, EmptyOffsetsRoundTrip) {
  const CheckpointFile file(path_);
  ASSERT_TRUE(file.Write({}).ok());
  EXPECT_TRUE(std::filesystem::exists(path_));
  EXPECT_EQ(*file.Read(), Offsets{});
}

TEST_F(CheckpointTest, MissingFileReadsAsEmpty) {
  absl::StatusOr<Offsets> read = CheckpointFile(path_).Read();
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(read->empty());
}

TEST_F(CheckpointTest, CorruptFileIsAnErrorNamingPathAndLine) {
  const CheckpointFile file(path_);
  struct Case {
    std::string content;
    std::string line;
  };
  for (const Case& c : {
           Case{"", "line 1"}, Case{"7\n0\n", "line 1"},
           Case{"0\nmany\n", "line 2"},
           Case{"0\n2\ntopic 0 1\n", "line 3"},             // Too few entries.
           Case{"0\n1\ntopic 0 1\nextra 1 2\n", "line 4"},  // Too many.
           Case{"0\n1\ntopic zero 1\n", "line 3"},
           Case{"0\n1\ntopic 0\n", "line 3"},
           Case{"0\n1\ntopic 0 1 2\n", "line 3"},
           Case{"0\n2\ntopic 0 1\ntopic 0 2\n", "line 4"},  // Duplicate.
       }) {
    WriteRaw(c.content);
    absl::StatusOr<Offsets> read = file.Read();
    ASSERT_FALSE(read.ok()) << "content: " << c.content;
    EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(read.status().message(), HasSubstr(path_));
    EXPECT_THAT(read.status().message(), HasSubstr(c.line)) << read.status();
  }
}

TEST_F(CheckpointTest, OverwriteIsAtomicAndLeavesNoTempFile) {
  const CheckpointFile file(path_);
  ASSERT_TRUE(file.Write({{{"t", 0}, 1}, {{"t", 1}, 2}}).ok());
  // A stale temp file from a crash mid-write changes nothing.
  std::ofstream(path_ + ".tmp") << "garbage";
  EXPECT_EQ(file.Read()->size(), 2u);

  const Offsets next = {{{"t", 0}, 100}};
  ASSERT_TRUE(file.Write(next).ok());
  EXPECT_EQ(*file.Read(), next);
  EXPECT_FALSE(std::filesystem::exists(path_ + ".tmp"));
  int files = 0;
  for ([[maybe_unused]] const auto& entry :
       std::filesystem::directory_iterator(dir_)) {
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST_F(CheckpointTest, InvalidTopicIsRejectedAndOldFileKept) {
  const CheckpointFile file(path_);
  ASSERT_TRUE(file.Write({{{"t", 0}, 1}}).ok());
  EXPECT_EQ(file.Write({{{"has space", 0}, 1}}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(file.Write({{{"", 0}, 1}}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(file.Read()->size(), 1u);
}

TEST_F(CheckpointTest, WriteIntoMissingDirectoryFailsNamingPath) {
  const CheckpointFile file(dir_ + "/no/such/dir/.checkpoint");
  const absl::Status status = file.Write({{{"t", 0}, 1}});
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("/no/such/dir/.checkpoint"));
}

TEST_F(CheckpointTest, Delete) {
  const CheckpointFile file(path_);
  ASSERT_TRUE(file.Write({{{"t", 0}, 1}}).ok());
  ASSERT_TRUE(file.Delete().ok());
  EXPECT_FALSE(std::filesystem::exists(path_));
  EXPECT_TRUE(file.Delete().ok()) << "deleting a missing file is OK";
  EXPECT_TRUE(file.Read()->empty());
}

}  // namespace
}  // namespace tributary
