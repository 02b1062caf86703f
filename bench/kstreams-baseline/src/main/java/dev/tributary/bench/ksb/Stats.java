package dev.tributary.bench.ksb;

import java.util.concurrent.atomic.AtomicLong;

/** Process-wide counters for the status line (not Kafka Streams metrics). */
final class Stats {
  static final AtomicLong DECODE_ERRORS = new AtomicLong();
  static final AtomicLong UNSUPPORTED = new AtomicLong();
  static final AtomicLong EVENTS_BUFFERED = new AtomicLong();
  static final AtomicLong DUPLICATES = new AtomicLong();
  static final AtomicLong RELEASED = new AtomicLong();
  static final AtomicLong ORPHAN_CHILD_DELETES = new AtomicLong();
  static final AtomicLong EMITTED = new AtomicLong();
  static final AtomicLong STALE_SLICES = new AtomicLong();

  private Stats() {}

  static String line() {
    return "buffered=" + EVENTS_BUFFERED + " duplicates=" + DUPLICATES + " released=" + RELEASED
        + " emitted=" + EMITTED + " stale=" + STALE_SLICES + " orphans=" + ORPHAN_CHILD_DELETES
        + " unsupported=" + UNSUPPORTED + " decode_errors=" + DECODE_ERRORS;
  }
}
