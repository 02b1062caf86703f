// The untyped processors that run the StreamsBuilder DSL's typed steps
// (streams_builder.h). Thread-safety: as Processor (one task thread at a
// time); every processor holds its own copy of the step.
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/absl_compat.h"
#include "engine/streams_builder.h"
#include "state/key_value_store.h"

namespace tributary::internal {
namespace {

// Looks up the store named `store` for processor `node` in Init.
absl::StatusOr<KeyValueStore*> ConnectedStore(ProcessorContext& context, std::string_view node,
                                              std::string_view store) {
  KeyValueStore* result = context.GetStateStore(store);
  if (result == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        Sv(node), ": state store \"", Sv(store), "\" is not connected to this processor"));
  }
  return result;
}

// Keeps the context as the DslOutput its subclass forwards through.
class DslProcessor : public Processor {
 public:
  absl::Status Init(ProcessorContext& context) override {
    out_.emplace(context);
    return absl::OkStatus();
  }

 protected:
  std::optional<DslOutput> out_;
};

class StatelessProcessor final : public DslProcessor {
 public:
  explicit StatelessProcessor(RecordStep step) : step_(std::move(step)) {}
  absl::Status Process(const Record& record) override { return step_(record, *out_); }

 private:
  const RecordStep step_;
};

class PassThroughProcessor final : public DslProcessor {
 public:
  absl::Status Process(const Record& record) override { return out_->Forward(record); }
};

// A processor that keeps one store, looked up in Init.
class StoreProcessor : public DslProcessor {
 public:
  StoreProcessor(std::string name, std::string store)
      : name_(std::move(name)), store_name_(std::move(store)) {}

  absl::Status Init(ProcessorContext& context) override {
    absl::Status status = DslProcessor::Init(context);
    if (!status.ok()) return status;
    absl::StatusOr<KeyValueStore*> store = ConnectedStore(context, name_, store_name_);
    if (!store.ok()) return store.status();
    store_ = *store;
    return absl::OkStatus();
  }

 protected:
  const std::string name_;
  const std::string store_name_;
  KeyValueStore* store_ = nullptr;
};

// The store holds the key and value bytes as they come.
class ToTableProcessor final : public StoreProcessor {
 public:
  using StoreProcessor::StoreProcessor;

  absl::Status Process(const Record& record) override {
    if (!record.key.has_value()) return absl::OkStatus();
    absl::Status status = record.value.has_value() ? store_->Put(*record.key, *record.value)
                                                   : store_->Delete(*record.key);
    if (!status.ok()) return status;
    return out_->Forward(record);
  }
};

class AggregateProcessor final : public StoreProcessor {
 public:
  AggregateProcessor(std::string name, std::string store, AggregateStep step)
      : StoreProcessor(std::move(name), std::move(store)), step_(std::move(step)) {}

  absl::Status Process(const Record& record) override {
    if (!record.key.has_value() || !record.value.has_value()) return absl::OkStatus();
    absl::StatusOr<std::optional<std::string_view>> bytes = step_(
        record, [&] { return store_->Get(*record.key); }, out_->value_buffer);
    if (!bytes.ok()) return bytes.status();
    absl::Status status =
        bytes->has_value() ? store_->Put(*record.key, **bytes) : store_->Delete(*record.key);
    if (!status.ok()) return status;
    return out_->ForwardWith(record, record.key, *bytes);
  }

 private:
  const AggregateStep step_;
};

}  // namespace

ProcessorFactory StatelessProcessorFactory(RecordStep step) {
  return [step = std::move(step)]() -> std::unique_ptr<Processor> {
    return std::make_unique<StatelessProcessor>(step);
  };
}

ProcessorFactory AggregateProcessorFactory(std::string name, std::string store,
                                           AggregateStep step) {
  return [name = std::move(name), store = std::move(store),
          step = std::move(step)]() -> std::unique_ptr<Processor> {
    return std::make_unique<AggregateProcessor>(name, store, step);
  };
}

ProcessorFactory ToTableProcessorFactory(std::string name, std::string store) {
  return [name = std::move(name), store = std::move(store)]() -> std::unique_ptr<Processor> {
    return std::make_unique<ToTableProcessor>(name, store);
  };
}

ProcessorFactory PassThroughProcessorFactory() {
  return []() -> std::unique_ptr<Processor> { return std::make_unique<PassThroughProcessor>(); };
}

}  // namespace tributary::internal
