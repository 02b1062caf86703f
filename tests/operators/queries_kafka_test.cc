// Interactive queries against the real broker (label kafka): two
// order-aggregator children of one application (own state dirs, query.port=0
// with a token) split 2-partition table topics and the 2-partition by-order
// repartition topic. Once the test's own transactions are processed, every
// order is asked of both instances: each answer must equal the order's last
// version on the output topic (read_committed); the instance that owns the
// order's task answers (X-Tributary-Instance), the other proxies to it
// (X-Tributary-Via), and each instance owns some orders. A deleted and an
// unknown order are 404, a bad id 400, a missing or wrong token 401.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <thread>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "httplib.h"
#include "tests/operators/pg_events.h"
#include "tests/support/child_app.h"
#include "tests/support/kafka_fixture.h"

namespace tributary::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr char kOrderAggregator[] = ORDER_AGGREGATOR_PATH;
constexpr auto kTimeout = 60s;
constexpr char kToken[] = "queries-kafka-test-token";
constexpr int kOrders = 12;

struct Answer {
  int status = 0;  // 0: no answer
  std::string body;
  std::string instance;  // X-Tributary-Instance
  std::string via;       // X-Tributary-Via
};

Answer Get(int port, const std::string& path, std::optional<std::string> token) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2);
  client.set_read_timeout(15);  // a proxied query: the owner's turn and the hop
  httplib::Headers headers;
  if (token) headers.emplace("Authorization", "Bearer " + *token);
  httplib::Result result = client.Get(path.c_str(), headers);
  if (!result) return {};
  return {result->status, result->body, result->get_header_value("X-Tributary-Instance"),
          result->get_header_value("X-Tributary-Via")};
}

class QueriesKafkaTest : public KafkaTest {
 protected:
  void SetUp() override {
    KafkaTest::SetUp();
    if (HasFatalFailure()) return;
    absl::StatusOr<ScratchDir> dir = ScratchDir::Create("queries_kafka_test", "iq");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = *std::move(dir);
    prefix_ = UniqueName("iq");
    orders_ = prefix_ + ".inventory.purchaseorder";
    lines_ = prefix_ + ".inventory.orderline";
    tx_ = prefix_ + ".transaction";
    output_ = prefix_ + "-out";
    ASSERT_STATUS_OK(CreateTopic(orders_, 2));
    ASSERT_STATUS_OK(CreateTopic(lines_, 2));
    ASSERT_STATUS_OK(CreateTopic(tx_, 1));
    ASSERT_STATUS_OK(CreateTopic(output_, 2));
    for (ChildApp* app : {&a_, &b_}) {
      app->name = app == &a_ ? "a" : "b";
      app->state_dir = absl::StrCat(dir_.path(), "/", app->name, "-state");
      app->config_path = absl::StrCat(dir_.path(), "/", app->name, ".properties");
      std::ofstream(app->config_path)
          << "application.id=" << prefix_ << "\n"
          << "bootstrap.servers=" << BootstrapServers() << "\n"
          << "state.dir=" << app->state_dir << "\n"
          << "processing.guarantee=exactly_once_v2\n"
          << "commit.interval.ms=100\n"
          << "consumer.session.timeout.ms=6000\n"
          << "orders.topic=" << orders_ << "\n"
          << "lines.topic=" << lines_ << "\n"
          << "transaction.topic=" << tx_ << "\n"
          << "output.topic=" << output_ << "\n"
          << "dead.letter.topic=" << prefix_ << "-dlq\n"
          << "query.port=0\n"
          << "query.token=" << kToken << "\n";
    }
  }

  void TearDown() override {
    a_.process.reset();  // SIGKILLs a run still going
    b_.process.reset();
    dir_.Finish(HasFailure(), "configs, state dirs and logs of both instances");
  }

  // Starts `app` and returns its query port, read from its log.
  int Start(ChildApp& app) {
    absl::Status started = app.Start(dir_.path(), {kOrderAggregator, "--config", app.config_path});
    EXPECT_TRUE(started.ok()) << started;
    if (!started.ok()) return -1;
    const int port = app.LoggedPort("query endpoint on http://127.0.0.1:", kTimeout);
    if (port > 0) return port;
    ADD_FAILURE() << app.name << " did not log its query endpoint\n" << app.LogTails();
    return -1;
  }

  void Produce(const std::string& topic,
               const std::vector<std::pair<std::string, std::string>>& records) {
    ASSERT_STATUS_OK(ProduceRecords(topic, records));
  }
  static std::string Key(int id) { return absl::StrCat(R"({"id":)", id, "}"); }

  // GET `path` from the instance on `port` until it answers something other
  // than 503 (the group settling), bounded.
  Answer Settled(int port, const std::string& path) {
    const auto deadline = Clock::now() + kTimeout;
    Answer answer;
    do {
      answer = Get(port, path, kToken);
      if (answer.status != 503 && answer.status != 0) return answer;
      std::this_thread::sleep_for(50ms);  // the next look at a changing group
    } while (Clock::now() < deadline && !a_.Died() && !b_.Died());
    ADD_FAILURE() << "GET " << path << " on port " << port << ": still " << answer.status
                  << " " << answer.body << "\n" << a_.LogTails() << b_.LogTails();
    return answer;
  }

  ScratchDir dir_;
  std::string prefix_, orders_, lines_, tx_, output_;
  ChildApp a_, b_;
  PgEvents pg_;
};

TEST_F(QueriesKafkaTest, BothInstancesAnswerEveryOrderAsItsLastVersion) {
  const int port_a = Start(a_);
  ASSERT_GT(port_a, 0);
  const int port_b = Start(b_);
  ASSERT_GT(port_b, 0);

  // T1000+i: order i with two lines. T2000: orders 1-6 shipped, a line more
  // for orders 7-9. T2001: order 12 deleted. 12 + 9 + 1 versions.
  int64_t versions = 0;
  for (int i = 1; i <= kOrders; ++i) {
    pg_.NewTransaction();
    const int64_t xid = 1000 + i;
    Produce(orders_, {{Key(i), pg_.Order('c', i, "PLACED", xid)}});
    Produce(lines_, {{Key(i * 10 + 1), pg_.Line('c', i * 10 + 1, i, "a", xid)},
                     {Key(i * 10 + 2), pg_.Line('c', i * 10 + 2, i, "b", xid)}});
    Produce(tx_, {{std::to_string(xid), pg_.End(xid, 1, 2)}});
    ++versions;
  }
  pg_.NewTransaction();
  std::vector<std::pair<std::string, std::string>> shipped, added;
  for (int i = 1; i <= 6; ++i) shipped.emplace_back(Key(i), pg_.Order('u', i, "SHIPPED", 2000));
  for (int i = 7; i <= 9; ++i) {
    added.emplace_back(Key(i * 10 + 3), pg_.Line('c', i * 10 + 3, i, "c", 2000));
  }
  Produce(orders_, shipped);
  Produce(lines_, added);
  Produce(tx_, {{"2000", pg_.End(2000, 6, 3)}});
  versions += 9;
  pg_.NewTransaction();
  Produce(orders_, {{Key(12), pg_.Order('d', 12, "PLACED", 2001)}});
  Produce(tx_, {{"2001", pg_.End(2001, 1, 0)}});
  ++versions;

  absl::StatusOr<std::unique_ptr<TopicReader>> reader = TopicReader::Open(output_, 2);
  ASSERT_TRUE(reader.ok()) << reader.status();
  const absl::Status read = (*reader)->ReadUntilCount(static_cast<size_t>(versions), kTimeout);
  ASSERT_TRUE(read.ok()) << read << "\n" << a_.LogTails() << b_.LogTails();
  std::map<std::string, std::optional<std::string>> last;
  for (const ConsumedRecord& r : (*reader)->records()) last[r.key.value_or("")] = r.value;
  ASSERT_EQ(last.size(), static_cast<size_t>(kOrders));
  ASSERT_EQ(last["12"], std::nullopt) << "order 12's last version is its tombstone";

  const std::string server_a = absl::StrCat("127.0.0.1:", port_a);
  const std::string server_b = absl::StrCat("127.0.0.1:", port_b);
  std::map<std::string, int> owned;  // instance -> orders it answered itself
  for (int i = 1; i <= kOrders; ++i) {
    const std::string id = std::to_string(i);
    SCOPED_TRACE("order " + id);
    const Answer from_a = Settled(port_a, "/aggregates/" + id);
    const Answer from_b = Settled(port_b, "/aggregates/" + id);
    for (const Answer* answer : {&from_a, &from_b}) {
      if (last[id]) {
        EXPECT_EQ(answer->status, 200) << answer->body;
        EXPECT_EQ(answer->body, *last[id]);
      } else {
        EXPECT_EQ(answer->status, 404) << answer->body;
      }
    }
    // One owner answers both; the other instance proxied.
    EXPECT_EQ(from_a.instance, from_b.instance);
    if (from_a.instance == server_a) {
      EXPECT_EQ(from_a.via, "");
      EXPECT_EQ(from_b.via, server_b);
    } else {
      EXPECT_EQ(from_a.instance, server_b);
      EXPECT_EQ(from_a.via, server_a);
      EXPECT_EQ(from_b.via, "");
    }
    ++owned[from_a.instance];
  }
  std::printf("[iq] of %d orders, a (%s) answered %d itself, b (%s) %d\n", kOrders,
              server_a.c_str(), owned[server_a], server_b.c_str(), owned[server_b]);
  EXPECT_GT(owned[server_a], 0) << "a owns one of the two aggregate tasks";
  EXPECT_GT(owned[server_b], 0) << "b owns the other";

  // Figures, not assertions: the time of an answer from local state and of a
  // proxied one, over the settled orders.
  std::vector<double> local_ms, proxied_ms;
  for (int i = 1; i <= kOrders; ++i) {
    for (int port : {port_a, port_b}) {
      const auto begin = Clock::now();
      const Answer answer = Get(port, "/aggregates/" + std::to_string(i), kToken);
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - begin).count();
      (answer.via.empty() ? local_ms : proxied_ms).push_back(ms);
    }
  }
  std::sort(local_ms.begin(), local_ms.end());
  std::sort(proxied_ms.begin(), proxied_ms.end());
  if (!local_ms.empty() && !proxied_ms.empty()) {
    std::printf("[iq] median answer: %.1f ms from local state (%zu), %.1f ms proxied (%zu)\n",
                local_ms[local_ms.size() / 2], local_ms.size(), proxied_ms[proxied_ms.size() / 2],
                proxied_ms.size());
  }

  for (int port : {port_a, port_b}) {
    SCOPED_TRACE(absl::StrCat("port ", port));
    const Answer unknown = Settled(port, "/aggregates/999999");
    EXPECT_EQ(unknown.status, 404) << unknown.body;
    const Answer bad = Get(port, "/aggregates/abc", kToken);
    EXPECT_EQ(bad.status, 400);
    EXPECT_NE(bad.body.find("is not a key of aggregates"), std::string::npos) << bad.body;
    const Answer anonymous = Get(port, "/aggregates/1", std::nullopt);
    EXPECT_EQ(anonymous.status, 401) << anonymous.body;
    EXPECT_EQ(anonymous.body.find("PLACED"), std::string::npos);
    const Answer wrong = Get(port, "/aggregates/1", std::string("not-the-token"));
    EXPECT_EQ(wrong.status, 401) << wrong.body;
  }
  ASSERT_STATUS_OK(a_.Stop(kTimeout));
  ASSERT_STATUS_OK(b_.Stop(kTimeout));
}

}  // namespace
}  // namespace tributary::testing
