// The status page of a KafkaStreams instance (GET / on metrics.port): one
// server-rendered HTML page, no script, refreshed by the browser every few
// seconds. What it shows is gathered by KafkaStreams::StatusPage into a
// StatusSnapshot; rendering is a pure function (any thread) so that tests
// can give it any figures.
//
// Every figure sits in an element a test or a scraper can find: ids for the
// instance's figures (app-id, app-state, uptime, records-processed,
// pending-transactions, oldest-pending-age-ms, dead-letters-total,
// max-consumer-lag), and per row an id (task-<id>, lag-<topic>-<partition>,
// pending-<task>-<operator>, dead-letter-<n>, newest 0) with data-metric /
// data-field cells.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "engine/streams_status.h"

namespace tributary::internal {

struct StatusSnapshot {
  std::string application_id;
  std::string state;    // StateName of the instance
  std::string health;   // what /health answers ("ok" or the reasons)
  absl::Time now;
  absl::Duration uptime;
  int refresh_seconds = 5;

  // The topology's sub-topologies (real topic names).
  struct Stage {
    int id = 0;
    std::vector<std::string> source_topics;
    std::vector<std::string> processors;
    std::vector<std::string> sink_topics;
    std::vector<std::string> stores;
  };
  std::vector<Stage> stages;
  std::vector<ThreadStatus> threads;
  int64_t records_processed = 0;  // process-total over the threads

  struct Lag {
    std::string thread;
    std::string topic;
    int32_t partition = 0;
    int64_t lag = 0;
  };
  std::vector<Lag> lag;  // the consumer-lag gauges

  // The cdc-transactions-pending and cdc-oldest-pending-age-ms gauges of one
  // operator of one task.
  struct Pending {
    std::string task;
    std::string op;
    int64_t pending = 0;
    int64_t oldest_age_ms = 0;
  };
  std::vector<Pending> pending;

  int64_t dead_letters_total = 0;            // records-dead-lettered-total
  std::vector<DeadLetterInfo> dead_letters;  // the recent ones, newest first
};

// The page. Every text from the snapshot is escaped (HtmlEscape).
std::string RenderStatusHtml(const StatusSnapshot& snapshot);

// `text` with & < > " ' as character references: safe in element content and
// in quoted attribute values.
std::string HtmlEscape(std::string_view text);

}  // namespace tributary::internal
