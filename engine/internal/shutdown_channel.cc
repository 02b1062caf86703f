#include "engine/internal/shutdown_channel.h"

#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "base/status_macros.h"
#include "engine/internal/log.h"
#include "engine/internal/rdkafka_consumer.h"
#include "engine/internal/rdkafka_producer.h"

namespace tributary::internal {
namespace {

constexpr absl::Duration kPollTimeout = absl::Milliseconds(100);
constexpr absl::Duration kWatermarkTimeout = absl::Seconds(30);

}  // namespace

std::string ControlTopic(std::string_view application_id) {
  return absl::StrCat(Sv(application_id), "-control");
}

absl::StatusOr<std::unique_ptr<ShutdownChannel>> ShutdownChannel::Open(
    const std::string& topic, std::string process_id,
    const std::map<std::string, std::string>& consumer_settings,
    const std::map<std::string, std::string>& producer_settings, OnRequest on_request) {
  std::unique_ptr<ShutdownChannel> channel(new ShutdownChannel());
  channel->topic_ = topic;
  channel->process_id_ = std::move(process_id);
  channel->on_request_ = std::move(on_request);
  std::map<std::string, std::string> consumer = consumer_settings;
  consumer.emplace("log_level", "4");
  consumer["client.id"] = absl::StrCat(channel->process_id_, "-control-consumer");
  consumer.erase("group.instance.id");  // the stream threads' static membership, if any
  consumer["enable.auto.commit"] = "false";
  consumer["enable.auto.offset.store"] = "false";
  consumer["isolation.level"] = "read_uncommitted";
  TRIBUTARY_ASSIGN_OR_RETURN(channel->consumer_, RdKafkaConsumer::Create(consumer));
  const TopicPartition partition{topic, 0};
  TRIBUTARY_ASSIGN_OR_RETURN(auto watermarks,
                             channel->consumer_->Watermarks(partition, kWatermarkTimeout));
  TRIBUTARY_RETURN_IF_ERROR(channel->consumer_->Assign({{partition, watermarks.second}}));

  std::map<std::string, std::string> producer = producer_settings;
  producer.emplace("log_level", "4");
  producer["client.id"] = absl::StrCat(channel->process_id_, "-control-producer");
  producer.erase("transactional.id");
  producer["linger.ms"] = "0";
  TRIBUTARY_ASSIGN_OR_RETURN(channel->producer_, RdKafkaProducer::Create(producer));
  channel->watcher_ = std::thread([raw = channel.get()] { raw->Watch(); });
  return channel;
}

ShutdownChannel::~ShutdownChannel() {
  stop_ = true;
  if (watcher_.joinable()) watcher_.join();
  if (consumer_ != nullptr) consumer_->Close();
}

absl::Status ShutdownChannel::Request(std::string_view reason) {
  std::lock_guard<std::mutex> lock(producer_mu_);
  Record record;
  record.key = process_id_;
  record.value = reason;
  TRIBUTARY_RETURN_IF_ERROR(producer_->Send(topic_, record, Partition{0}));
  TRIBUTARY_RETURN_IF_ERROR(producer_->Flush());
  return producer_->TakeDeliveryError();
}

void ShutdownChannel::Watch() {
  while (!stop_) {
    absl::StatusOr<absl::Span<const PolledRecord>> polled = consumer_->Poll(kPollTimeout, 16);
    if (!polled.ok()) {
      EngineLogger()->error("{}: the shutdown channel stops: {}", topic_,
                            polled.status().ToString());
      return;
    }
    for (const PolledRecord& record : *polled) {
      if (record.end_of_partition) continue;
      on_request_(std::string(record.record.key.value_or("")),
                  std::string(record.record.value.value_or("")));
    }
  }
}

}  // namespace tributary::internal
