// The processor API: user logic that a task runs one record at a time.
// A Topology holds ProcessorFactory objects; every task calls the factory to
// get its own fresh Processor, so a Processor needs no locking: a task and
// everything in it runs on one stream thread at a time.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/metrics.h"
#include "engine/record.h"
#include "engine/types.h"
#include "state/key_value_store.h"

namespace tributary {

enum class PunctuationType {
  // Fires when stream time (the largest record timestamp the task has seen)
  // passes each multiple of the interval; driven by data, not by the clock.
  kStreamTime,
  // Fires when the wall clock passes each multiple of the interval; checked
  // by the stream thread between batches, so never concurrently with Process.
  kWallClockTime,
};

// Called with the time (stream or wall clock, in ms) the punctuation is for.
using Punctuator = absl::AnyInvocable<absl::Status(TimestampMs)>;

// Where a task stands in its partition of one source topic: `position` is
// the next offset it will process (-1: unknown), `end` the partition's end
// offset (high watermark; under read_committed the last stable offset) as the
// cluster reported it to a request sent at `as_of` (wall clock): every record
// readable at `as_of` is below `end`.
struct SourceProgress {
  Offset position;
  Offset end;
  TimestampMs as_of;
  bool caught_up() const { return position.value >= 0 && position.value >= end.value; }
};

// Errors by kind. A record a processor cannot use because of what it holds
// (not JSON, wrong types, an unknown op, a missing key) is BAD INPUT: the
// processor returns its error marked with MarkBadInput, before any side
// effect of that record (nothing forwarded, nothing written), naming the
// source transaction it belongs to when it can tell. Under
// processing.error.policy=continue the task sends such a record to the
// dead-letter topic and goes on. Every other error (a store, the producer,
// the broker, a broken invariant) is an ENGINE FAILURE: it stops the task
// under either policy, and the stream thread aborts the open Kafka
// transaction, so nothing of the half-done work is committed; after a
// restart the task starts again from its last commit.
absl::Status MarkBadInput(absl::Status status, std::string_view transaction = {});
bool IsBadInput(const absl::Status& status);
// The source transaction a bad-input error names, if any.
std::optional<std::string> BadInputTransaction(const absl::Status& status);

// Cancels a scheduled punctuation; cancelling twice is harmless.
class Cancellable {
 public:
  virtual ~Cancellable() = default;
  virtual void Cancel() = 0;
};

class ProcessorContext {
 public:
  virtual ~ProcessorContext() = default;

  virtual const std::string& application_id() const = 0;
  virtual TaskId task_id() const = 0;
  // The largest record timestamp this task has processed so far.
  virtual TimestampMs stream_time() const = 0;
  // The wall clock as the engine sees it (a fake one in TopologyTestDriver).
  virtual TimestampMs wall_clock_time() const = 0;

  // Passes `record` to every child of the current node (or only to the child
  // named `child`). Runs the children synchronously, depth first: when it
  // returns they are done with the record. The first failing child's status
  // is returned.
  virtual absl::Status Forward(const Record& record) = 0;
  virtual absl::Status Forward(const Record& record, std::string_view child) = 0;

  // A store connected to the current processor in the topology, or nullptr.
  // The pointer is owned by the task and valid until the processor's Close.
  virtual KeyValueStore* GetStateStore(std::string_view name) = 0;

  // Schedules `punctuator` every `interval`. The returned handle may be
  // ignored; the punctuation then lives until the task closes.
  virtual std::shared_ptr<Cancellable> Schedule(absl::Duration interval,
                                                PunctuationType type,
                                                Punctuator punctuator) = 0;

  // Partitions of `topic` (a source or sink topic as the topology names it).
  virtual absl::StatusOr<int32_t> PartitionCount(std::string_view topic) = 0;

  // The end offset of this task's partition of source topic `topic` (as the
  // topology names it), asked of the cluster at most a few hundred ms before,
  // with the task's position there. The stream thread asks for all its
  // partitions in one request, blocking for one round trip (at most a few
  // seconds) when its answer is older: call it from a punctuator, not per
  // record. When caught_up() holds, every record readable in that partition
  // at `as_of` has been processed by this task.
  virtual absl::StatusOr<SourceProgress> QuerySourceProgress(std::string_view topic) = 0;

  // Asks the stream thread to commit as soon as possible after this record.
  virtual void RequestCommit() = 0;

  // Called from Process: the record is not finished. The task's work so far
  // is committed (its offset stays at this record) and Process is given the
  // same record again; records after it in its partition wait. For work that
  // could outlast transaction.timeout.ms as one Kafka transaction; the
  // processor keeps in its stores how far it got (after a crash it gets the
  // record again from the last commit). Returns false where this is not
  // supported: the processor then finishes the record in one call.
  virtual bool Unfinished() { return false; }

  // Keeps the offset the task commits for its partition of source topic
  // `topic` (as the topology names it) at or below `offset`, from the next
  // commit on, until called again (-1: no limit). After a restart, an abort
  // or a move the task reads again from there, so a processor may keep in
  // memory only, without a changelog, what it built from records it has not
  // let be committed; it must then tell records it reads again (at or below
  // what it had processed before) from new ones. Call it from
  // PrepareCommit.
  virtual absl::Status HoldCommittedOffset(std::string_view topic, int64_t offset) {
    (void)topic;
    (void)offset;
    return absl::UnimplementedError("HoldCommittedOffset: not supported by this context");
  }

  // The application's metrics registry, for processor-level metrics; tag
  // them with the task id. Valid for the processor's lifetime.
  virtual Metrics& metrics() = 0;

  // Sends `record` to the dead-letter topic with `error` in its headers (and
  // where it came from: record.topic, .partition, .offset; the transaction
  // BadInputTransaction(error) names), in the task's current transaction,
  // counted with the task's dead letters. For bad input a processor finds
  // after the record that carried it (an END whose counts are never met).
  // Without a dead-letter topic (processing.error.policy=fail) it returns
  // `error` itself, so that the task stops on it.
  virtual absl::Status DeadLetter(const Record& record, const absl::Status& error) {
    (void)record;
    return error;
  }
};

// User logic. Init is called once before the first record, Close once at the
// end of the task's life (also before it moves to another instance).
// A non-OK status from Process is bad input or an engine failure (see
// MarkBadInput): the first may go to the dead-letter topic, the second
// stops the task.
class Processor {
 public:
  virtual ~Processor() = default;
  // REQUIRES: `context` outlives this processor.
  virtual absl::Status Init(ProcessorContext& context) {
    (void)context;
    return absl::OkStatus();
  }
  virtual absl::Status Process(const Record& record) = 0;
  // Called before the task's work is committed, before its stores' caches
  // are flushed. What it forwards is part of that commit. Under
  // at-least-once, every record forwarded before the call has been
  // acknowledged by the cluster when it runs, so nothing forwarded here can
  // be read before them (e.g. a summary of records sent to other topics).
  virtual absl::Status PrepareCommit() { return absl::OkStatus(); }
  virtual absl::Status Close() { return absl::OkStatus(); }
};

// Makes a fresh Processor for one task; may be called from any stream thread
// (it must not share mutable state between the processors it returns).
using ProcessorFactory = std::function<std::unique_ptr<Processor>()>;

}  // namespace tributary
