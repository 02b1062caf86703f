#include "engine/internal/status_page.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/absl_compat.h"

namespace tributary::internal {
namespace {

constexpr std::string_view kStyle =
    "body{font-family:sans-serif;margin:1.5em;color:#222}"
    "table{border-collapse:collapse;margin:0.3em 0 1em}"
    "th,td{border:1px solid #ccc;padding:2px 8px;text-align:left;vertical-align:top}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}"
    "td.err{font-family:monospace;white-space:pre-wrap;max-width:60em}"
    "p.none{color:#777}";

std::string TimeText(TimestampMs time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMillis(time.value),
                          absl::UTCTimeZone());
}

std::string JoinEscaped(const std::vector<std::string>& items) {
  if (items.empty()) return "&mdash;";
  return absl::StrJoin(items, ", ", [](std::string* out, const std::string& item) {
    out->append(HtmlEscape(item));
  });
}

// <td> with `attr` (e.g. data-metric="x") and escaped text.
std::string Cell(std::string_view attr, std::string_view text, bool number = false) {
  return absl::StrCat("<td", attr.empty() ? "" : " ", Sv(attr), number ? " class=\"n\"" : "",
                      ">", HtmlEscape(text), "</td>");
}

std::string Metric(std::string_view name) { return absl::StrCat("data-metric=\"", Sv(name), "\""); }
std::string Field(std::string_view name) { return absl::StrCat("data-field=\"", Sv(name), "\""); }

std::string RestoreText(const TaskStatus& task) {
  if (task.to_restore == 0) return "nothing to restore";
  const int64_t percent = task.restored * 100 / task.to_restore;
  return absl::StrCat(task.restored, " of ", task.to_restore, " (", percent, " %)");
}

void AppendSummary(const StatusSnapshot& s, std::string& out) {
  int64_t pending = 0;
  int64_t oldest = 0;
  for (const StatusSnapshot::Pending& p : s.pending) {
    pending += p.pending;
    oldest = std::max(oldest, p.oldest_age_ms);
  }
  int64_t max_lag = 0;
  for (const StatusSnapshot::Lag& l : s.lag) max_lag = std::max(max_lag, l.lag);
  const absl::Duration uptime = absl::Trunc(s.uptime, absl::Seconds(1));
  absl::StrAppend(
      &out, "<p>state <b id=\"app-state\">", HtmlEscape(s.state),
      "</b> &middot; up <span id=\"uptime\" data-seconds=\"", absl::ToInt64Seconds(uptime),
      "\">", HtmlEscape(absl::FormatDuration(uptime)),
      "</span> &middot; health <span id=\"health\">", HtmlEscape(s.health), "</span></p>\n",
      "<table id=\"summary\">\n",
      "<tr><th>records processed</th><td id=\"records-processed\" class=\"n\">",
      s.records_processed, "</td></tr>\n",
      "<tr><th>pending transactions</th><td id=\"pending-transactions\" class=\"n\">", pending,
      "</td></tr>\n",
      "<tr><th>oldest pending, ms</th><td id=\"oldest-pending-age-ms\" class=\"n\">", oldest,
      "</td></tr>\n",
      "<tr><th>largest consumer lag</th><td id=\"max-consumer-lag\" class=\"n\">", max_lag,
      "</td></tr>\n",
      "<tr><th>dead letters</th><td id=\"dead-letters-total\" class=\"n\">",
      s.dead_letters_total, "</td></tr>\n</table>\n");
}

void AppendStages(const StatusSnapshot& s, std::string& out) {
  // Tasks by sub-topology, with the thread that runs each.
  std::map<int, std::vector<std::pair<const ThreadStatus*, const TaskStatus*>>> tasks;
  for (const ThreadStatus& thread : s.threads) {
    for (const TaskStatus& task : thread.tasks) {
      tasks[task.id.subtopology].emplace_back(&thread, &task);
    }
  }
  absl::StrAppend(&out, "<h2>Pipeline stages</h2>\n<table id=\"threads\">\n",
                  "<tr><th>stream thread</th><th>state</th><th>tasks</th></tr>\n");
  for (const ThreadStatus& thread : s.threads) {
    absl::StrAppend(&out, "<tr>", Cell("", thread.name), Cell(Metric("thread-state"), thread.state),
                    Cell("", absl::StrCat(thread.tasks.size()), true), "</tr>\n");
  }
  out += "</table>\n";
  for (const StatusSnapshot::Stage& stage : s.stages) {
    absl::StrAppend(&out, "<h3 id=\"stage-", stage.id, "\">sub-topology ", stage.id, "</h3>\n",
                    "<p>reads <span data-field=\"sources\">", JoinEscaped(stage.source_topics),
                    "</span>; processors <span data-field=\"processors\">",
                    JoinEscaped(stage.processors), "</span>; writes <span data-field=\"sinks\">",
                    JoinEscaped(stage.sink_topics), "</span>; stores <span data-field=\"stores\">",
                    JoinEscaped(stage.stores), "</span></p>\n");
    auto it = tasks.find(stage.id);
    if (it == tasks.end()) {
      out += "<p class=\"none\">no task of this sub-topology on this instance</p>\n";
      continue;
    }
    out += "<table><tr><th>task</th><th>thread</th><th>state</th><th>records processed</th>"
           "<th>restored</th></tr>\n";
    for (const auto& [thread, task] : it->second) {
      const std::string id = task->id.ToString();
      absl::StrAppend(&out, "<tr id=\"task-", HtmlEscape(id), "\">", Cell("", id),
                      Cell("", thread->name), Cell(Metric("task-state"), task->state),
                      Cell(Metric("task-processed"), absl::StrCat(task->processed), true),
                      Cell(Metric("task-restore"), RestoreText(*task)), "</tr>\n");
    }
    out += "</table>\n";
  }
}

void AppendLag(const StatusSnapshot& s, std::string& out) {
  out += "<h2>Consumer lag</h2>\n";
  if (s.lag.empty()) {
    out += "<p class=\"none\">no figures yet: librdkafka's statistics come every second once "
           "partitions are assigned</p>\n";
    return;
  }
  out += "<table id=\"lag\"><tr><th>topic</th><th>partition</th><th>lag</th><th>thread</th></tr>\n";
  for (const StatusSnapshot::Lag& l : s.lag) {
    absl::StrAppend(&out, "<tr id=\"lag-", HtmlEscape(l.topic), "-", l.partition, "\">",
                    Cell(Field("topic"), l.topic),
                    Cell(Field("partition"), absl::StrCat(l.partition), true),
                    Cell(Metric("consumer-lag"), absl::StrCat(l.lag), true), Cell("", l.thread),
                    "</tr>\n");
  }
  out += "</table>\n";
}

void AppendPending(const StatusSnapshot& s, std::string& out) {
  out += "<h2>Pending transactions</h2>\n";
  if (s.pending.empty()) {
    out += "<p class=\"none\">no operator of this instance holds transactions</p>\n";
    return;
  }
  out += "<table id=\"pending\"><tr><th>task</th><th>operator</th><th>pending</th>"
         "<th>oldest, ms</th></tr>\n";
  for (const StatusSnapshot::Pending& p : s.pending) {
    absl::StrAppend(&out, "<tr id=\"pending-", HtmlEscape(p.task), "-", HtmlEscape(p.op), "\">",
                    Cell(Field("task"), p.task), Cell(Field("operator"), p.op),
                    Cell(Metric("transactions-pending"), absl::StrCat(p.pending), true),
                    Cell(Metric("oldest-pending-age-ms"), absl::StrCat(p.oldest_age_ms), true),
                    "</tr>\n");
  }
  out += "</table>\n";
}

void AppendDeadLetters(const StatusSnapshot& s, std::string& out) {
  absl::StrAppend(&out, "<h2>Recent dead letters</h2>\n");
  if (s.dead_letters.empty()) {
    out += "<p class=\"none\">none written since the start</p>\n";
    return;
  }
  absl::StrAppend(&out, "<p>the last ", s.dead_letters.size(), " of ", s.dead_letters_total,
                  ", newest first</p>\n<table id=\"dead-letters\"><tr><th>time (UTC)</th>"
                  "<th>topic</th><th>partition</th><th>offset</th><th>transaction</th>"
                  "<th>error</th></tr>\n");
  for (size_t i = 0; i < s.dead_letters.size(); ++i) {
    const DeadLetterInfo& d = s.dead_letters[i];
    absl::StrAppend(&out, "<tr id=\"dead-letter-", i, "\" class=\"dead-letter\">",
                    Cell(Field("time"), TimeText(d.time)), Cell(Field("topic"), d.topic),
                    Cell(Field("partition"), absl::StrCat(d.partition.value), true),
                    Cell(Field("offset"), absl::StrCat(d.offset.value), true),
                    Cell(Field("transaction"), d.transaction),
                    Cell(absl::StrCat(Field("error"), " class=\"err\""), d.error), "</tr>\n");
  }
  out += "</table>\n";
}

}  // namespace

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string RenderStatusHtml(const StatusSnapshot& s) {
  std::string out;
  absl::StrAppend(&out, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n",
                  "<meta http-equiv=\"refresh\" content=\"", s.refresh_seconds, "\">\n",
                  "<title>", HtmlEscape(s.application_id), " &middot; Tributary</title>\n",
                  "<style>", Sv(kStyle), "</style></head>\n<body>\n",
                  "<h1>Tributary <span id=\"app-id\">", HtmlEscape(s.application_id),
                  "</span></h1>\n");
  AppendSummary(s, out);
  AppendStages(s, out);
  AppendLag(s, out);
  AppendPending(s, out);
  AppendDeadLetters(s, out);
  absl::StrAppend(&out, "<p class=\"none\">", HtmlEscape(absl::FormatTime(
                      "%Y-%m-%dT%H:%M:%SZ", s.now, absl::UTCTimeZone())),
                  " &middot; <a href=\"/metrics\">/metrics</a>"
                  " &middot; <a href=\"/health\">/health</a>"
                  " &middot; <a href=\"/ready\">/ready</a></p>\n</body></html>\n");
  return out;
}

}  // namespace tributary::internal
