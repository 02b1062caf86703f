// The status page (GET / on metrics.port) of a running order-aggregator on
// the real broker (label kafka), read by headless Chromium (Debian's
// `chromium`): after input with a poison line and a transaction whose END
// has not come, the page Chromium loads shows the records each router task
// processed, the dead letter (its source offset, transaction and error, as
// the dead-letter topic's headers say), one pending transaction and the
// consumer lag of every input partition. Skipped only when chromium is not
// installed (scripts/setup installs it).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "base/absl_compat.h"
#include "httplib.h"
#include "tests/operators/pg_events.h"
#include "tests/support/child_app.h"
#include "tests/support/kafka_fixture.h"

namespace tributary::testing {
namespace {

using namespace std::chrono_literals;

constexpr char kOrderAggregator[] = ORDER_AGGREGATOR_PATH;
constexpr auto kTimeout = 60s;

// The first executable `name` on $PATH, or nullopt.
std::optional<std::string> FindOnPath(std::string_view name) {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path != nullptr ? path : "/usr/bin", ':')) {
    if (dir.empty()) continue;
    std::string candidate = absl::StrCat(dir, "/", Sv(name));
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

// Text of an HTML element's content as the DOM serializes it, decoded.
std::string Unescape(std::string_view text) {
  return absl::StrReplaceAll(Sv(text), {{"&lt;", "<"},
                                    {"&gt;", ">"},
                                    {"&quot;", "\""},
                                    {"&#39;", "'"},
                                    {"&nbsp;", " "},
                                    {"&amp;", "&"}});
}

// The decoded text of the first element after `marker` (an attribute such
// as id="x") in `html`, up to the next tag; nullopt when `marker` is absent.
std::optional<std::string> TextAfter(std::string_view html, std::string_view marker) {
  const size_t at = html.find(marker);
  if (at == std::string_view::npos) return std::nullopt;
  const size_t open = html.find('>', at);
  if (open == std::string_view::npos) return std::nullopt;
  const size_t close = html.find('<', open);
  return Unescape(html.substr(open + 1, close - open - 1));
}

std::optional<int64_t> NumberAfter(std::string_view html, std::string_view marker) {
  std::optional<std::string> text = TextAfter(html, marker);
  int64_t value = 0;
  if (!text || !absl::SimpleAtoi(*text, &value)) return std::nullopt;
  return value;
}

// From `marker` to the end of its table row ("" when `marker` is absent).
std::string_view Row(std::string_view html, std::string_view marker) {
  const size_t at = html.find(marker);
  if (at == std::string_view::npos) return {};
  const size_t end = html.find("</tr>", at);
  return html.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
}

// The sub-topology sections of the page: each from its <h3 id="stage-N"> to
// the next heading.
std::vector<std::string_view> Stages(std::string_view html) {
  std::vector<std::string_view> stages;
  for (size_t at = html.find("<h3 id=\"stage-"); at != std::string_view::npos;) {
    const size_t next = html.find("<h", at + 3);
    stages.push_back(html.substr(at, next == std::string_view::npos ? next : next - at));
    at = html.find("<h3 id=\"stage-", at + 3);
  }
  return stages;
}

// Records processed by the tasks listed in `stage`.
int64_t ProcessedIn(std::string_view stage) {
  int64_t total = 0;
  constexpr std::string_view kMarker = "data-metric=\"task-processed\"";
  for (size_t at = stage.find(kMarker); at != std::string_view::npos;
       at = stage.find(kMarker, at + 1)) {
    total += NumberAfter(stage.substr(at), kMarker).value_or(-1000000);
  }
  return total;
}

std::string Get(int port, const std::string& path) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2);
  client.set_read_timeout(5);
  httplib::Result result = client.Get(path.c_str());
  return result && result->status == 200 ? result->body : "";
}

class StatusPageKafkaTest : public KafkaTest {
 protected:
  void SetUp() override {
    KafkaTest::SetUp();
    if (HasFatalFailure()) return;
    chromium_ = FindOnPath("chromium");
    if (!chromium_) GTEST_SKIP() << "chromium is not installed (scripts/setup installs it)";
    absl::StatusOr<ScratchDir> dir = ScratchDir::Create("status_page_kafka_test", "status");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = *std::move(dir);
    child_.name = "order-aggregator";
    child_.state_dir = dir_.path() + "/state";
    child_.config_path = dir_.path() + "/order-aggregator.properties";
    absl::StatusOr<OrderAggregatorTopics> topics = OrderAggregatorTopics::Create(
        UniqueName("status"), child_, "metrics.port=0\nmetrics.host=127.0.0.1\n");
    ASSERT_TRUE(topics.ok()) << topics.status();
    topics_ = *std::move(topics);
  }

  void TearDown() override {
    child_.process.reset();  // SIGKILLs a run still going
    if (dir_.path().empty()) return;  // skipped
    dir_.Finish(HasFailure(), "order-aggregator's config, state and logs; chromium's output");
  }

  void Produce(const std::string& topic, const std::string& key, const std::string& value) {
    ASSERT_STATUS_OK(ProduceRecords(topic, {{key, value}}));
  }
  static std::string Key(int id) { return absl::StrCat(R"({"id":)", id, "}"); }

  // The port order-aggregator's log names ("metrics endpoint on
  // http://127.0.0.1:PORT/"), or 0 when it has not started within kTimeout.
  int MetricsPort() {
    return child_.LoggedPort("metrics endpoint on http://127.0.0.1:", kTimeout);
  }

  std::optional<std::string> chromium_;
  ScratchDir dir_;
  ChildApp child_;
  PgEvents pg_;
  OrderAggregatorTopics topics_;
};

TEST_F(StatusPageKafkaTest, ChromiumReadsProcessedCountsDeadLettersPendingAndLag) {
  // T100: order 1 with line 11 and a poison line 12 (an op Debezium never
  // writes): released partial, line 12 dead-lettered with its transaction.
  Produce(topics_.orders, Key(1), pg_.Order('c', 1, "PLACED", 100));
  Produce(topics_.lines, Key(11), pg_.Line('c', 11, 1, "a", 100));
  std::string bad = pg_.Line('c', 12, 1, "b", 100);
  bad.replace(bad.find(R"("op":"c")"), 8, R"("op":"x")");
  Produce(topics_.lines, Key(12), bad);
  Produce(topics_.tx, "100", pg_.End(100, 1, 2));
  // T101: order 2 and a line, no END yet: pending.
  pg_.NewTransaction();
  Produce(topics_.orders, Key(2), pg_.Order('c', 2, "PLACED", 101));
  Produce(topics_.lines, Key(21), pg_.Line('c', 21, 2, "b", 101));
  // What each input topic holds.
  const std::map<std::string, int64_t> records_in = {
      {topics_.orders, 2}, {topics_.lines, 3}, {topics_.tx, 1}};

  ASSERT_STATUS_OK(child_.Start(dir_.path(), {kOrderAggregator, "--config", child_.config_path}));
  const int port = MetricsPort();
  ASSERT_GT(port, 0) << "no metrics endpoint in the log\n" << child_.LogTails();

  // The dead letter as the dead-letter topic has it.
  absl::StatusOr<std::unique_ptr<TopicReader>> reader = TopicReader::Open(topics_.dead_letters, 1);
  ASSERT_TRUE(reader.ok()) << reader.status();
  ASSERT_STATUS_OK((*reader)->ReadUntilCount(1, kTimeout));
  const ConsumedRecord& dead = (*reader)->records().front();
  const std::string error = dead.Header("tributary.error").value_or("");
  const std::string transaction = dead.Header("tributary.source.transaction").value_or("");
  ASSERT_EQ(dead.Header("tributary.source.offset"), "1");
  ASSERT_TRUE(absl::StartsWith(transaction, "100:")) << transaction;
  ASSERT_FALSE(error.empty());

  // Every figure the test checks, on a page (the server's HTML or
  // Chromium's DOM); the first one that is not as expected.
  auto check = [&](std::string_view page) -> std::string {
    // application.id: the topics' prefix.
    if (TextAfter(page, "id=\"app-id\"") !=
        topics_.output.substr(0, topics_.output.size() - std::string_view("-out").size())) {
      return "app-id";
    }
    if (TextAfter(page, "id=\"app-state\"") != "RUNNING") return "app-state";
    for (const auto& [topic, count] : records_in) {
      bool seen = false;
      for (std::string_view stage : Stages(page)) {
        // A router stage reads exactly this input topic.
        if (TextAfter(stage, "data-field=\"sources\"") != topic) continue;
        seen = true;
        if (ProcessedIn(stage) != count) {
          return absl::StrCat("records processed from ", topic, ": ", ProcessedIn(stage));
        }
      }
      if (!seen) return absl::StrCat("a stage reading ", topic);
      std::string_view lag = Row(page, absl::StrCat("id=\"lag-", topic, "-0\""));
      if (NumberAfter(lag, "data-metric=\"consumer-lag\"") != 0) {
        return absl::StrCat("lag 0 of ", topic);
      }
    }
    if (NumberAfter(page, "id=\"records-processed\"").value_or(0) < 6) return "records-processed";
    if (NumberAfter(page, "id=\"pending-transactions\"") != 1) return "pending-transactions";
    if (NumberAfter(page, "id=\"dead-letters-total\"") != 1) return "dead-letters-total";
    std::string_view letter = Row(page, "id=\"dead-letter-0\"");
    if (TextAfter(letter, "data-field=\"topic\"") != topics_.lines) return "dead letter topic";
    if (TextAfter(letter, "data-field=\"partition\"") != "0") return "dead letter partition";
    if (TextAfter(letter, "data-field=\"offset\"") != "1") return "dead letter offset";
    if (TextAfter(letter, "data-field=\"transaction\"") != transaction) {
      return "dead letter transaction";
    }
    if (TextAfter(letter, "data-field=\"error\"") != error) return "dead letter error";
    return "";
  };

  // The figures follow the engine's commits and librdkafka's statistics
  // (every second): wait until the server's page shows them all.
  std::string html;
  std::string missing = "no page";
  const auto deadline = std::chrono::steady_clock::now() + kTimeout;
  while (std::chrono::steady_clock::now() < deadline && !child_.Died()) {
    html = Get(port, "/");
    missing = check(html);
    if (missing.empty()) break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(missing, "") << "the page never showed it:\n" << html << "\n" << child_.LogTails();
  EXPECT_FALSE(absl::StrContains(html, "<script")) << "a page without script";

  // Chromium loads the page and prints its DOM.
  const std::string profile = dir_.path() + "/chromium";
  const std::string dump = dir_.path() + "/chromium.log";
  absl::StatusOr<std::unique_ptr<ChildProcess>> browser = ChildProcess::Start(
      {"/usr/bin/env", "HOME=" + profile, *chromium_, "--headless=new", "--no-sandbox",
       "--disable-gpu", "--user-data-dir=" + profile, "--dump-dom",
       absl::StrCat("http://127.0.0.1:", port, "/")},
      dump);
  ASSERT_TRUE(browser.ok()) << browser.status();
  absl::StatusOr<int> exit = (*browser)->Wait(kTimeout);
  ASSERT_TRUE(exit.ok()) << exit.status() << "\n" << TailOfFile(dump);
  ASSERT_EQ(DescribeWaitStatus(*exit), "exited with 0") << TailOfFile(dump);
  // Its stdout (the DOM) and stderr (its logs) share the file.
  const std::string output = ReadTextFile(dump);
  const size_t begin = output.find("<html");
  const size_t end = output.rfind("</html>");
  ASSERT_TRUE(begin != std::string::npos && end != std::string::npos) << TailOfFile(dump);
  const std::string dom = output.substr(begin, end - begin);
  // What the DOM shows is the page's figures as they are at this load, as
  // the wait above found them: nothing more comes in.
  EXPECT_EQ(check(dom), "") << dom;
  EXPECT_TRUE(absl::StrContains(dom, "<title>")) << dom;
  // The assembler's row: the transaction without END.
  EXPECT_EQ(
      NumberAfter(Row(dom, "<tr id=\"pending-"), "data-metric=\"transactions-pending\""), 1)
      << dom;

  ASSERT_STATUS_OK(child_.Stop(60000ms));
}

}  // namespace
}  // namespace tributary::testing
