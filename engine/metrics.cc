#include "engine/metrics.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "base/json_escape.h"

namespace tributary {

// ---------------------------------------------------------------------------
// LatencyRecorder

int LatencyRecorder::BucketOf(int64_t nanos) {
  if (nanos < kSubBuckets) return static_cast<int>(std::max<int64_t>(nanos, 0));
  const int msb = 63 - std::countl_zero(static_cast<uint64_t>(nanos));
  const int shift = msb - kSubBucketBits;
  const int sub = static_cast<int>((nanos >> shift) & (kSubBuckets - 1));
  return kSubBuckets + shift * kSubBuckets + sub;
}

int64_t LatencyRecorder::BucketValue(int bucket) {
  if (bucket < kSubBuckets) return bucket;
  const int shift = (bucket - kSubBuckets) / kSubBuckets;
  const int64_t sub = (bucket - kSubBuckets) % kSubBuckets;
  const int64_t low = (kSubBuckets + sub) << shift;
  const int64_t width = int64_t{1} << shift;
  return low + width / 2;
}

void LatencyRecorder::Record(absl::Duration duration) {
  static_assert((kMaxNanos >> kMaxBit) == 1,
                "kMaxBit is the top bit of kMaxNanos");
  const int64_t nanos =
      std::clamp<int64_t>(absl::ToInt64Nanoseconds(duration), 0, kMaxNanos);
  buckets_[BucketOf(nanos)].fetch_add(1, std::memory_order_relaxed);
  sum_nanos_.fetch_add(nanos, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  int64_t max = max_nanos_.load(std::memory_order_relaxed);
  while (nanos > max && !max_nanos_.compare_exchange_weak(
                            max, nanos, std::memory_order_relaxed)) {
  }
}

absl::Duration LatencyRecorder::Percentile(double q) const {
  std::array<int64_t, kBuckets> counts;
  int64_t total = 0;
  for (int i = 0; i < kBuckets; ++i) {
    counts[i] = buckets_[i].load(std::memory_order_relaxed);
    total += counts[i];
  }
  if (total == 0) return absl::ZeroDuration();
  const double clamped = std::clamp(q, 0.0, 1.0);
  const int64_t rank = std::max<int64_t>(
      1, static_cast<int64_t>(std::ceil(clamped * static_cast<double>(total))));
  const int64_t max = max_nanos_.load(std::memory_order_relaxed);
  if (rank >= total) return absl::Nanoseconds(max);
  int64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += counts[i];
    if (seen >= rank) return absl::Nanoseconds(std::min(BucketValue(i), max));
  }
  return absl::Nanoseconds(max);
}

LatencySummary LatencyRecorder::Summary() const {
  LatencySummary summary;
  summary.count = count_.load(std::memory_order_relaxed);
  if (summary.count == 0) return summary;
  summary.sum = absl::Nanoseconds(sum_nanos_.load(std::memory_order_relaxed));
  summary.mean = summary.sum / summary.count;
  summary.max = absl::Nanoseconds(max_nanos_.load(std::memory_order_relaxed));
  summary.p50 = Percentile(0.50);
  summary.p99 = Percentile(0.99);
  return summary;
}

// ---------------------------------------------------------------------------
// Metrics

Metrics::Entry& Metrics::GetOrCreate(std::string_view name,
                                     const MetricTags& tags, MetricKind kind) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto [it, inserted] = entries_.try_emplace(Key(std::string(name), tags));
  Entry& entry = it->second;
  if (inserted) entry.kind = kind;
  // A kind mismatch is a programmer error; in release builds the caller still
  // gets a working metric, which Snapshot() does not report.
  assert(entry.kind == kind);
  switch (kind) {
    case MetricKind::kCounter:
      if (!entry.counter) entry.counter = std::make_unique<Counter>();
      break;
    case MetricKind::kGauge:
      if (!entry.gauge) entry.gauge = std::make_unique<Gauge>();
      break;
    case MetricKind::kLatency:
      if (!entry.latency) entry.latency = std::make_unique<LatencyRecorder>();
      break;
  }
  return entry;
}

Counter* Metrics::GetCounter(std::string_view name, const MetricTags& tags) {
  return GetOrCreate(name, tags, MetricKind::kCounter).counter.get();
}

Gauge* Metrics::GetGauge(std::string_view name, const MetricTags& tags) {
  return GetOrCreate(name, tags, MetricKind::kGauge).gauge.get();
}

LatencyRecorder* Metrics::GetLatency(std::string_view name,
                                     const MetricTags& tags) {
  return GetOrCreate(name, tags, MetricKind::kLatency).latency.get();
}

std::vector<MetricSample> Metrics::Snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<MetricSample> samples;
  samples.reserve(entries_.size());
  for (const auto& [key, entry] : entries_) {
    MetricSample sample;
    sample.name = key.first;
    sample.tags = key.second;
    sample.kind = entry.kind;
    switch (entry.kind) {
      case MetricKind::kCounter:
        sample.value = entry.counter->value();
        break;
      case MetricKind::kGauge:
        sample.value = entry.gauge->value();
        break;
      case MetricKind::kLatency:
        sample.latency = entry.latency->Summary();
        break;
    }
    samples.push_back(std::move(sample));
  }
  return samples;
}

namespace {

std::string TagsText(const MetricTags& tags) {
  std::string out = "{";
  for (const auto& [key, value] : tags) {
    if (out.size() > 1) out += ',';
    absl::StrAppend(&out, key, "=", value);
  }
  out += '}';
  return out;
}

std::string_view KindName(MetricKind kind) {
  switch (kind) {
    case MetricKind::kCounter:
      return "counter";
    case MetricKind::kGauge:
      return "gauge";
    case MetricKind::kLatency:
      return "latency";
  }
  return "unknown";
}

}  // namespace

std::string Metrics::ToString() const {
  std::string out;
  for (const MetricSample& s : Snapshot()) {
    absl::StrAppend(&out, s.name, TagsText(s.tags), " ");
    if (s.kind == MetricKind::kLatency) {
      absl::StrAppend(&out, "count=", s.latency.count,
                      " mean=", absl::FormatDuration(s.latency.mean),
                      " p50=", absl::FormatDuration(s.latency.p50),
                      " p99=", absl::FormatDuration(s.latency.p99),
                      " max=", absl::FormatDuration(s.latency.max), "\n");
    } else {
      absl::StrAppend(&out, s.value, "\n");
    }
  }
  return out;
}

std::string Metrics::ToJson() const {
  std::string out = "[";
  for (const MetricSample& s : Snapshot()) {
    if (out.size() > 1) out += ',';
    out += "{\"name\":";
    AppendJsonString(out, s.name);
    out += ",\"tags\":{";
    bool first = true;
    for (const auto& [key, value] : s.tags) {
      if (!first) out += ',';
      first = false;
      AppendJsonString(out, key);
      out += ':';
      AppendJsonString(out, value);
    }
    absl::StrAppend(&out, "},\"type\":\"", Sv(KindName(s.kind)), "\"");
    if (s.kind == MetricKind::kLatency) {
      absl::StrAppend(&out, ",\"count\":", s.latency.count,
                      ",\"mean_ns\":", absl::ToInt64Nanoseconds(s.latency.mean),
                      ",\"p50_ns\":", absl::ToInt64Nanoseconds(s.latency.p50),
                      ",\"p99_ns\":", absl::ToInt64Nanoseconds(s.latency.p99),
                      ",\"max_ns\":", absl::ToInt64Nanoseconds(s.latency.max));
    } else {
      absl::StrAppend(&out, ",\"value\":", s.value);
    }
    out += '}';
  }
  out += ']';
  return out;
}

}  // namespace tributary
