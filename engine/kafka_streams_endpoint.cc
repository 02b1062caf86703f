// KafkaStreams' metrics endpoint (metrics.port): what GET /metrics, /health,
// /ready and / (the status page) answer. The handlers run on the HttpServer's
// threads; they read threads_ only once Start has filled it (threads_started_).

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <tuple>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "engine/internal/kafka_stats.h"
#include "engine/internal/dead_letter_log.h"
#include "engine/internal/http_server.h"
#include "engine/internal/status_page.h"
#include "engine/internal/prometheus.h"
#include "engine/internal/stream_thread.h"
#include "engine/kafka_streams.h"

namespace tributary {
namespace {

// Bytes of the *.sst files in `dir`; 0 for what cannot be read (compaction
// deletes files while we list them).
int64_t SstBytes(const std::filesystem::path& dir) {
  std::error_code ec;
  int64_t total = 0;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() != ".sst") continue;
    std::error_code size_ec;
    const uintmax_t size = it->file_size(size_ec);
    if (!size_ec) total += static_cast<int64_t>(size);
  }
  return total;
}

}  // namespace

absl::Status KafkaStreams::StartMetricsEndpoint() {
  const std::optional<int> port = config_.metrics_port();
  if (!port) return absl::OkStatus();
  kafka_stats_ = std::make_unique<internal::KafkaStats>();
  auto probe = [](const ProbeResult& result) {
    internal::HttpResponse response;
    response.status = result.ok ? 200 : 503;
    response.body = result.text + "\n";
    return response;
  };
  internal::HttpServerOptions options;
  options.what = "metrics endpoint";
  options.keys = "metrics.host, metrics.port";
  options.host = config_.metrics_host();
  options.port = *port;
  options.routes = {
      {"/metrics",
       [this](const internal::HttpRequest&) {
         internal::HttpResponse response;
         response.body = PrometheusMetrics();
         response.content_type = std::string(internal::kPrometheusContentType);
         return response;
       }},
      {"/health", [this, probe](const internal::HttpRequest&) { return probe(Health()); }},
      {"/ready", [this, probe](const internal::HttpRequest&) { return probe(Ready()); }},
      {"/",
       [this](const internal::HttpRequest&) {
         internal::HttpResponse response;
         response.body = StatusPage();
         response.content_type = "text/html; charset=utf-8";
         return response;
       }},
  };
  TRIBUTARY_ASSIGN_OR_RETURN(metrics_server_, internal::HttpServer::Start(std::move(options)));
  return absl::OkStatus();
}

int KafkaStreams::metrics_port() const {
  return metrics_server_ != nullptr ? metrics_server_->port() : -1;
}

std::string KafkaStreams::PrometheusMetrics() const {
  std::vector<MetricSample> samples = metrics_->Snapshot();
  if (kafka_stats_ != nullptr) {
    std::vector<MetricSample> kafka = kafka_stats_->Samples();
    samples.insert(samples.end(), std::make_move_iterator(kafka.begin()),
                   std::make_move_iterator(kafka.end()));
  }
  // RocksDB state per store of the owned tasks, from the file system: a
  // task's DB belongs to its stream thread, which may close it at any time.
  // Layout: <state_dir_>/<task>/rocksdb/<store>/.
  if (threads_started_.load(std::memory_order_acquire)) {
    for (const ThreadStatus& thread : ThreadStatuses()) {
      for (const TaskStatus& task : thread.tasks) {
        MetricSample sample;
        sample.name = std::string(metric_names::kRestoreRemainingRecords);
        sample.tags = {{std::string(metric_names::kThreadTag), thread.name},
                       {std::string(metric_names::kTaskTag), task.id.ToString()}};
        sample.kind = MetricKind::kGauge;
        sample.value = std::max<int64_t>(task.to_restore - task.restored, 0);
        samples.push_back(std::move(sample));
      }
    }
    for (const TaskId& task : tasks()) {
      const std::filesystem::path stores =
          std::filesystem::path(state_dir_) / task.ToString() / "rocksdb";
      std::error_code ec;
      for (std::filesystem::directory_iterator it(stores, ec), end; !ec && it != end;
           it.increment(ec)) {
        if (!it->is_directory()) continue;
        MetricSample sample;
        sample.name = std::string(metric_names::kStateStoreSstBytes);
        sample.tags = {{std::string(metric_names::kTaskTag), task.ToString()},
                       {std::string(metric_names::kStoreTag), it->path().filename().string()}};
        sample.kind = MetricKind::kGauge;
        sample.value = SstBytes(it->path());
        samples.push_back(std::move(sample));
      }
    }
  }
  return internal::PrometheusText(std::move(samples));
}

ProbeResult KafkaStreams::Health() const {
  if (!threads_started_.load(std::memory_order_acquire)) return {false, "not started"};
  std::vector<std::string> dead;
  for (size_t i = 0; i < threads_.size(); ++i) {
    if (threads_[i]->state() == internal::ThreadState::kDead) {
      // result() is written before the state becomes kDead.
      dead.push_back(absl::StrCat("stream thread ", i, " is dead: ",
                                  threads_[i]->result().ToString()));
    }
  }
  if (!dead.empty()) return {false, absl::StrJoin(dead, "\n")};
  return {true, "ok"};
}

ProbeResult KafkaStreams::Ready() const {
  ProbeResult health = Health();
  if (!health.ok) return health;
  std::vector<std::string> waiting;
  for (size_t i = 0; i < threads_.size(); ++i) {
    const internal::ThreadState state = threads_[i]->state();
    const internal::StreamThread::Readiness readiness = threads_[i]->readiness();
    if (state == internal::ThreadState::kCreated || state == internal::ThreadState::kStarting) {
      waiting.push_back(absl::StrCat("stream thread ", i, ": starting"));
    } else if (state == internal::ThreadState::kPendingShutdown) {
      waiting.push_back(absl::StrCat("stream thread ", i, ": shutting down"));
    } else if (!readiness.assigned) {
      waiting.push_back(absl::StrCat("stream thread ", i, ": no assignment yet"));
    } else if (!readiness.restoring.empty()) {
      waiting.push_back(absl::StrCat(
          "stream thread ", i, ": restoring tasks ",
          absl::StrJoin(readiness.restoring, ", ", [](std::string* out, const TaskId& id) {
            out->append(id.ToString());
          })));
    }
  }
  if (!waiting.empty()) return {false, absl::StrJoin(waiting, "\n")};
  return {true, "ok"};
}

std::string KafkaStreams::StatusPage() const {
  namespace m = metric_names;
  internal::StatusSnapshot snapshot;
  snapshot.application_id = config_.application_id();
  // state() is safe from any thread (kafka_streams_lifecycle.cc).
  const ProbeResult health = Health();
  snapshot.state = StateName(state());
  snapshot.health = health.text;
  snapshot.now = absl::Now();
  if (threads_started_.load(std::memory_order_acquire)) {
    snapshot.uptime = snapshot.now - started_;
  }
  for (const Topology::Subtopology& sub : topology_.subtopologies()) {
    internal::StatusSnapshot::Stage& stage = snapshot.stages.emplace_back();
    stage.id = sub.id;
    for (const std::string& topic : sub.source_topics) {
      stage.source_topics.push_back(TopicName(topic));
    }
    for (const std::string& topic : sub.sink_topics) stage.sink_topics.push_back(TopicName(topic));
    for (const std::string& name : sub.nodes) {
      const Topology::Node* node = topology_.node(name);
      if (node != nullptr && node->kind == Topology::NodeKind::kProcessor) {
        stage.processors.push_back(name);
      }
    }
    stage.stores = sub.stores;
  }
  snapshot.threads = ThreadStatuses();

  // The registry's figures: totals, and the operators' pending transactions
  // keyed by (task, operator).
  std::map<std::pair<std::string, std::string>, internal::StatusSnapshot::Pending> pending;
  auto tag = [](const MetricTags& tags, std::string_view name) {
    auto it = tags.find(std::string(name));
    return it != tags.end() ? it->second : std::string();
  };
  for (const MetricSample& sample : metrics_->Snapshot()) {
    if (sample.name == m::kProcessTotal) {
      snapshot.records_processed += sample.value;
    } else if (sample.name == m::kRecordsDeadLetteredTotal) {
      snapshot.dead_letters_total += sample.value;
    } else if (sample.name == m::kCdcTransactionsPending ||
               sample.name == m::kCdcOldestPendingAgeMs) {
      const std::string task = tag(sample.tags, m::kTaskTag);
      const std::string op = tag(sample.tags, m::kOperatorTag);
      internal::StatusSnapshot::Pending& entry = pending[{task, op}];
      entry.task = task;
      entry.op = op;
      (sample.name == m::kCdcTransactionsPending ? entry.pending : entry.oldest_age_ms) =
          sample.value;
    }
  }
  for (auto& [key, entry] : pending) snapshot.pending.push_back(std::move(entry));
  if (kafka_stats_ != nullptr) {
    for (const MetricSample& sample : kafka_stats_->Samples()) {
      if (sample.name != m::kConsumerLag) continue;
      internal::StatusSnapshot::Lag& lag = snapshot.lag.emplace_back();
      lag.thread = tag(sample.tags, m::kThreadTag);
      lag.topic = tag(sample.tags, m::kTopicTag);
      lag.partition = std::stoi(tag(sample.tags, m::kPartitionTag));
      lag.lag = sample.value;
    }
    std::sort(snapshot.lag.begin(), snapshot.lag.end(), [](const auto& a, const auto& b) {
      return std::tie(a.topic, a.partition, a.thread) < std::tie(b.topic, b.partition, b.thread);
    });
  }
  snapshot.dead_letters = RecentDeadLetters();
  return internal::RenderStatusHtml(snapshot);
}

}  // namespace tributary
