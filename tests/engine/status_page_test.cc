// The status page's parts without a broker: the HTML rendering of a
// snapshot (every figure under its id, hostile text escaped) and the
// bounded ring of recent dead letters.
#include "engine/internal/status_page.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "engine/internal/dead_letter_log.h"

namespace tributary::internal {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

DeadLetterInfo Letter(int64_t offset, std::string error) {
  return DeadLetterInfo{TimestampMs{1700000000123 + offset}, "in", Partition{2}, Offset{offset},
                        absl::StrCat("tx", offset), std::move(error)};
}

StatusSnapshot Snapshot() {
  StatusSnapshot s;
  s.application_id = "orders";
  s.state = "RUNNING";
  s.health = "ok";
  s.now = absl::FromUnixSeconds(1700000000);
  s.uptime = absl::Seconds(125) + absl::Milliseconds(700);
  s.stages.push_back({0, {"in"}, {"decode", "route"}, {"orders-by-id-repartition"}, {}});
  s.stages.push_back({1, {"orders-by-id-repartition"}, {"aggregate"}, {"out"}, {"rows"}});
  s.stages.push_back({2, {"other"}, {"x"}, {}, {}});
  ThreadStatus thread;
  thread.name = "orders-p-StreamThread-0";
  thread.state = "RUNNING";
  thread.tasks.push_back({TaskId{0, 0}, "RUNNING", 42, 0, 0});
  thread.tasks.push_back({TaskId{1, 0}, "RESTORING", 0, 250, 1000});
  s.threads.push_back(thread);
  s.records_processed = 42;
  s.lag.push_back({thread.name, "in", 0, 7});
  s.lag.push_back({thread.name, "orders-by-id-repartition", 0, 3});
  s.pending.push_back({"1_0", "assembler", 2, 1500});
  s.pending.push_back({"1_1", "assembler", 1, 800});
  s.dead_letters_total = 2;
  s.dead_letters.push_back(Letter(9, "bad op 'x'"));
  s.dead_letters.push_back(Letter(4, "not JSON"));
  return s;
}

TEST(StatusPageTest, EveryFigureIsUnderItsId) {
  const std::string html = RenderStatusHtml(Snapshot());
  EXPECT_THAT(html, HasSubstr("<meta http-equiv=\"refresh\" content=\"5\">"));
  EXPECT_THAT(html, HasSubstr("<span id=\"app-id\">orders</span>"));
  EXPECT_THAT(html, HasSubstr("<b id=\"app-state\">RUNNING</b>"));
  EXPECT_THAT(html, HasSubstr("<span id=\"uptime\" data-seconds=\"125\">2m5s</span>"));
  EXPECT_THAT(html, HasSubstr("<td id=\"records-processed\" class=\"n\">42</td>"));
  // Summed over operators, the oldest of them.
  EXPECT_THAT(html, HasSubstr("<td id=\"pending-transactions\" class=\"n\">3</td>"));
  EXPECT_THAT(html, HasSubstr("<td id=\"oldest-pending-age-ms\" class=\"n\">1500</td>"));
  EXPECT_THAT(html, HasSubstr("<td id=\"max-consumer-lag\" class=\"n\">7</td>"));
  EXPECT_THAT(html, HasSubstr("<td id=\"dead-letters-total\" class=\"n\">2</td>"));
  // Stages with their processors, tasks with their figures.
  EXPECT_THAT(html, HasSubstr("<h3 id=\"stage-1\">sub-topology 1</h3>\n<p>reads <span "
                              "data-field=\"sources\">orders-by-id-repartition</span>; "
                              "processors <span data-field=\"processors\">aggregate</span>; "
                              "writes <span data-field=\"sinks\">out</span>; stores <span "
                              "data-field=\"stores\">rows</span></p>"));
  EXPECT_THAT(html, HasSubstr("<tr id=\"task-0_0\"><td>0_0</td><td>orders-p-StreamThread-0</td>"
                              "<td data-metric=\"task-state\">RUNNING</td>"
                              "<td data-metric=\"task-processed\" class=\"n\">42</td>"
                              "<td data-metric=\"task-restore\">nothing to restore</td></tr>"));
  EXPECT_THAT(html, HasSubstr("<td data-metric=\"task-state\">RESTORING</td>"
                              "<td data-metric=\"task-processed\" class=\"n\">0</td>"
                              "<td data-metric=\"task-restore\">250 of 1000 (25 %)</td>"));
  EXPECT_THAT(html, HasSubstr("no task of this sub-topology on this instance"));
  EXPECT_THAT(html, HasSubstr("<tr id=\"lag-in-0\"><td data-field=\"topic\">in</td>"
                              "<td data-field=\"partition\" class=\"n\">0</td>"
                              "<td data-metric=\"consumer-lag\" class=\"n\">7</td>"));
  EXPECT_THAT(html, HasSubstr("<tr id=\"pending-1_0-assembler\"><td data-field=\"task\">1_0</td>"
                              "<td data-field=\"operator\">assembler</td>"
                              "<td data-metric=\"transactions-pending\" class=\"n\">2</td>"
                              "<td data-metric=\"oldest-pending-age-ms\" class=\"n\">1500</td>"));
  // Newest first, each with its time, source and transaction.
  EXPECT_THAT(html, HasSubstr("<tr id=\"dead-letter-0\" class=\"dead-letter\">"
                              "<td data-field=\"time\">2023-11-14T22:13:20.132Z</td>"
                              "<td data-field=\"topic\">in</td>"
                              "<td data-field=\"partition\" class=\"n\">2</td>"
                              "<td data-field=\"offset\" class=\"n\">9</td>"
                              "<td data-field=\"transaction\">tx9</td>"
                              "<td data-field=\"error\" class=\"err\">bad op &#39;x&#39;</td>"
                              "</tr>"));
  EXPECT_THAT(html, HasSubstr("<tr id=\"dead-letter-1\" class=\"dead-letter\">"));
  EXPECT_THAT(html, Not(HasSubstr("<script")));
}

TEST(StatusPageTest, HostileTextIsEscapedEverywhere) {
  StatusSnapshot s = Snapshot();
  const std::string hostile = "<script>alert(\"x\")</script>&'";
  const std::string escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;";
  s.application_id = hostile;
  s.health = hostile;
  s.stages[0].processors = {hostile};
  s.stages[0].source_topics = {hostile};
  s.threads[0].name = hostile;
  s.lag[0].topic = hostile;
  s.pending[0].op = hostile;
  s.dead_letters[0].error = hostile;
  s.dead_letters[0].topic = hostile;
  s.dead_letters[0].transaction = hostile;
  const std::string html = RenderStatusHtml(s);
  EXPECT_THAT(html, Not(HasSubstr("<script")));
  EXPECT_THAT(html, Not(HasSubstr("\"x\"")));
  EXPECT_THAT(html, HasSubstr(absl::StrCat("<td data-field=\"error\" class=\"err\">", escaped,
                                           "</td>")));
  EXPECT_THAT(html, HasSubstr(absl::StrCat("<tr id=\"lag-", escaped, "-0\">")));
  EXPECT_THAT(html, HasSubstr(absl::StrCat("<tr id=\"pending-1_0-", escaped, "\">")));
  EXPECT_THAT(html, HasSubstr(absl::StrCat("<title>", escaped, " &middot; Tributary</title>")));
  EXPECT_EQ(HtmlEscape("a&b<c>d\"e'f"), "a&amp;b&lt;c&gt;d&quot;e&#39;f");
}

TEST(StatusPageTest, EmptySectionsSaySo) {
  StatusSnapshot s;
  s.application_id = "idle";
  s.state = "CREATED";
  const std::string html = RenderStatusHtml(s);
  EXPECT_THAT(html, HasSubstr("no figures yet"));
  EXPECT_THAT(html, HasSubstr("no operator of this instance holds transactions"));
  EXPECT_THAT(html, HasSubstr("none written since the start"));
  EXPECT_THAT(html, HasSubstr("<td id=\"pending-transactions\" class=\"n\">0</td>"));
}

TEST(DeadLetterLogTest, KeepsTheNewestUpToItsCapacityNewestFirst) {
  DeadLetterLog log(3);
  EXPECT_TRUE(log.Recent().empty());
  log.Add(Letter(1, "a"));
  log.Add(Letter(2, "b"));
  ASSERT_EQ(log.Recent().size(), 2u);
  EXPECT_EQ(log.Recent()[0].offset.value, 2);
  EXPECT_EQ(log.Recent()[1].offset.value, 1);
  for (int64_t i = 3; i <= 7; ++i) log.Add(Letter(i, "c"));
  const std::vector<DeadLetterInfo> recent = log.Recent();
  ASSERT_EQ(recent.size(), 3u);
  EXPECT_EQ(recent[0].offset.value, 7);
  EXPECT_EQ(recent[1].offset.value, 6);
  EXPECT_EQ(recent[2].offset.value, 5);
  EXPECT_EQ(recent[0].transaction, "tx7");
  EXPECT_EQ(log.total(), 7);
}

TEST(DeadLetterLogTest, LongErrorsAreCutAtACharacterBoundary) {
  DeadLetterLog log(1);
  // "é" is two bytes: the cut at an odd byte count falls inside one.
  std::string error(DeadLetterInfo::kMaxErrorBytes - 1, 'x');
  for (int i = 0; i < 10; ++i) error += "é";
  log.Add(Letter(1, error));
  const std::string kept = log.Recent()[0].error;
  EXPECT_EQ(kept, std::string(DeadLetterInfo::kMaxErrorBytes - 1, 'x') + "...");
  EXPECT_EQ(CutUtf8("short", 10), "short");
  EXPECT_EQ(CutUtf8("abcdef", 4), "abcd...");
}

}  // namespace
}  // namespace tributary::internal
