// KafkaStreams' metrics endpoint (metrics.port): what GET /metrics, /health
// and /ready answer. The handlers run on the MetricsServer's threads; they
// read threads_ only once Start has filled it (threads_started_).

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "engine/internal/kafka_stats.h"
#include "engine/internal/metrics_server.h"
#include "engine/internal/prometheus.h"
#include "engine/internal/stream_thread.h"
#include "engine/kafka_streams.h"

namespace tributary {

absl::Status KafkaStreams::StartMetricsEndpoint() {
  const std::optional<int> port = config_.metrics_port();
  if (!port) return absl::OkStatus();
  kafka_stats_ = std::make_unique<internal::KafkaStats>();
  internal::MetricsHandlers handlers;
  handlers.metrics = [this] { return PrometheusMetrics(); };
  handlers.health = [this] { return Health(); };
  handlers.ready = [this] { return Ready(); };
  TRIBUTARY_ASSIGN_OR_RETURN(
      metrics_server_,
      internal::MetricsServer::Start(config_.metrics_host(), *port, std::move(handlers)));
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

}  // namespace tributary
