// order-aggregator with its state.dir on a full disk, on the real broker
// (label kafka): a small tmpfs the test mounts (as root; skipped without the
// privilege to mount) and fills. The program must stop with exit code 2 and
// one line naming state.dir and the full disk, never by a signal (Debian's
// RocksDB 7.8 asserts when a file that failed is written again); once the
// space is back, a restart loses nothing and repeats nothing: every order's
// version is in the output once.
//   - full while running: the stores' next memtable flush fails;
//   - full at start: on a first start (the process id cannot be written)
//     and on a restart (the stores cannot be opened).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/operators/pg_events.h"
#include "tests/support/child_app.h"
#include "tests/support/kafka_fixture.h"
#include "tests/support/tmpfs.h"

namespace tributary::testing {
namespace {

using namespace std::chrono_literals;

constexpr char kOrderAggregator[] = ORDER_AGGREGATOR_PATH;
constexpr auto kTimeout = 90s;
// Room for the stores of a start, far less than the traffic's state.
constexpr size_t kDiskBytes = 16 << 20;

class DiskFullKafkaTest : public KafkaTest {
 protected:
  void SetUp() override {
    KafkaTest::SetUp();
    if (HasFatalFailure()) return;
    absl::StatusOr<ScratchDir> dir = ScratchDir::Create("disk_full_kafka_test", "diskfull");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = *std::move(dir);
    absl::StatusOr<std::unique_ptr<Tmpfs>> disk = Tmpfs::Mount(dir_.path() + "/state", kDiskBytes);
    if (absl::IsPermissionDenied(disk.status())) {
      GTEST_SKIP() << "needs the privilege to mount a tmpfs (root): " << disk.status();
    }
    ASSERT_TRUE(disk.ok()) << disk.status();
    disk_ = *std::move(disk);

    child_.name = "order-aggregator";
    child_.state_dir = disk_->path();
    child_.config_path = dir_.path() + "/order-aggregator.properties";
    // 1 MiB of write buffers (as the chaos test): memtables flush, and meet
    // the full disk, after a few MiB of state.
    absl::StatusOr<OrderAggregatorTopics> topics = OrderAggregatorTopics::Create(
        UniqueName("diskfull"), child_, "rocksdb.block.cache.bytes=4194304\n");
    ASSERT_TRUE(topics.ok()) << topics.status();
    topics_ = *std::move(topics);
  }

  void TearDown() override {
    child_.process.reset();  // SIGKILLs a run still going
    disk_.reset();           // unmounts
    dir_.Finish(HasFailure(), "order-aggregator's config and logs");
  }

  static std::string Key(int id) { return absl::StrCat(R"({"id":)", id, "}"); }

  // Transactions [first, first + count): each creates order `id` with one
  // line whose product name has `product_bytes` characters.
  void ProduceOrders(int first, int count, size_t product_bytes) {
    std::vector<std::pair<std::string, std::string>> orders, lines, ends;
    const std::string product(product_bytes, 'p');
    for (int id = first; id < first + count; ++id) {
      pg_.NewTransaction();
      orders.emplace_back(Key(id), pg_.Order('c', id, "PLACED", id));
      lines.emplace_back(Key(100000 + id), pg_.Line('c', 100000 + id, id, product, id));
      ends.emplace_back(absl::StrCat(id), pg_.End(id, 1, 1));
    }
    ASSERT_STATUS_OK(ProduceRecords(topics_.orders, orders));
    ASSERT_STATUS_OK(ProduceRecords(topics_.lines, lines));
    ASSERT_STATUS_OK(ProduceRecords(topics_.tx, ends));
  }

  void Start() {
    ASSERT_STATUS_OK(child_.Start(dir_.path(), {kOrderAggregator, "--config", child_.config_path}));
  }

  // Waits for the run to end by itself: exit code 2 and the line that names
  // state.dir and the full disk.
  void ExpectDiskFullExit() {
    absl::StatusOr<int> status = child_.process->Wait(kTimeout);
    ASSERT_TRUE(status.ok()) << "still running on a full disk after " << kTimeout.count()
                             << " s\n" << child_.LogTails();
    const std::string log = ReadTextFile(child_.logs.back());
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2)
        << DescribeWaitStatus(*status) << "\n" << child_.LogTails();
    EXPECT_TRUE(absl::StrContains(
        log, absl::StrCat("the disk under state.dir ", child_.state_dir, " is full")))
        << child_.LogTails();
    EXPECT_TRUE(absl::StrContains(log, "No space left on device")) << child_.LogTails();
    child_.process.reset();
  }

  // Reads the output until it holds `count` records (read_committed), then
  // checks that they are the versions of `count` different orders.
  void ExpectOneVersionPerOrder(size_t count) {
    absl::StatusOr<std::unique_ptr<TopicReader>> reader = TopicReader::Open(topics_.output, 1);
    ASSERT_TRUE(reader.ok()) << reader.status();
    absl::Status read = (*reader)->ReadUntilCount(count, kTimeout);
    ASSERT_TRUE(read.ok()) << read << "\n" << child_.LogTails();
    ASSERT_STATUS_OK((*reader)->ReadToEnd(kTimeout));
    std::map<std::string, int> versions;
    for (const ConsumedRecord& record : (*reader)->records()) {
      ++versions[record.key.value_or("<null>")];
    }
    EXPECT_EQ((*reader)->size(), count);
    EXPECT_EQ(versions.size(), count);
    for (const auto& [key, n] : versions) EXPECT_EQ(n, 1) << "order " << key;
  }

  ScratchDir dir_;
  std::unique_ptr<Tmpfs> disk_;
  ChildApp child_;
  PgEvents pg_;
  OrderAggregatorTopics topics_;
};

TEST_F(DiskFullKafkaTest, FullWhileRunningExitsWithCode2AndLosesNothing) {
  ProduceOrders(1, 1, 10);
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_NO_FATAL_FAILURE(ExpectOneVersionPerOrder(1));

  ASSERT_STATUS_OK(disk_->Fill());
  // About 4 MiB of state: more than the write buffers hold.
  constexpr int kOrders = 3000;
  ASSERT_NO_FATAL_FAILURE(ProduceOrders(1000, kOrders, 1000));
  ASSERT_NO_FATAL_FAILURE(ExpectDiskFullExit());

  ASSERT_STATUS_OK(disk_->Free());
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_NO_FATAL_FAILURE(ExpectOneVersionPerOrder(1 + kOrders));
  ASSERT_STATUS_OK(child_.Stop(60s));
}

TEST_F(DiskFullKafkaTest, FullAtStartExitsWithCode2) {
  ProduceOrders(1, 1, 10);
  // A first start: not even the process id fits.
  ASSERT_STATUS_OK(disk_->Fill());
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_NO_FATAL_FAILURE(ExpectDiskFullExit());
  EXPECT_TRUE(absl::StrContains(ReadTextFile(child_.logs.back()), "cannot start"));

  ASSERT_STATUS_OK(disk_->Free());
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_NO_FATAL_FAILURE(ExpectOneVersionPerOrder(1));
  ASSERT_STATUS_OK(child_.Stop(60s));  // clean: the stores stay, checkpointed

  // A restart: the stores cannot be opened (each open writes a new MANIFEST).
  ASSERT_STATUS_OK(disk_->Fill());
  ProduceOrders(2, 1, 10);
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_NO_FATAL_FAILURE(ExpectDiskFullExit());

  ASSERT_STATUS_OK(disk_->Free());
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_NO_FATAL_FAILURE(ExpectOneVersionPerOrder(2));
  ASSERT_STATUS_OK(child_.Stop(60s));
}

}  // namespace
}  // namespace tributary::testing
