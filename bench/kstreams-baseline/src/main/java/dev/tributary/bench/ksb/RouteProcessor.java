package dev.tributary.bench.ksb;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.processor.api.RecordMetadata;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Stage 1, one task per input partition: decodes each Debezium change event and END marker once
 * and re-keys it by source transaction id (PostgreSQL: the xid, the part of "xid:lsn" before the
 * colon) for the one-partition tx repartition topic. Values forwarded (JSON):
 *
 * <pre>
 *   change: {"k":"C","t":0|1,"op":"c","lsn":N,"key":"&lt;key JSON text&gt;","row":{after}|null}
 *   END:    {"k":"E","pos":&lt;offset in the transaction topic&gt;,"n":{"&lt;collection&gt;":count,...}}
 * </pre>
 *
 * Tombstones and BEGIN markers are dropped; so are events without a transaction block (snapshot
 * reads), with a warning: this baseline does not implement snapshots.
 */
final class RouteProcessor implements Processor<String, String, String, String> {
  private static final Logger LOG = LoggerFactory.getLogger(RouteProcessor.class);
  private final Spec spec;
  private ProcessorContext<String, String> context;

  RouteProcessor(Spec spec) {
    this.spec = spec;
  }

  @Override
  public void init(ProcessorContext<String, String> context) {
    this.context = context;
  }

  @Override
  public void process(Record<String, String> record) {
    if (record.value() == null) return;  // a tombstone after a delete
    RecordMetadata meta = context.recordMetadata().orElseThrow();
    String topic = meta.topic();
    try {
      if (topic.equals(spec.transactionTopic)) {
        routeMarker(record, meta.offset());
      } else if (topic.equals(spec.ordersTopic)) {
        routeChange(record, 0, spec.rootKeyColumn);
      } else if (topic.equals(spec.linesTopic)) {
        routeChange(record, 1, spec.childKeyColumn);
      }
    } catch (RuntimeException e) {
      // No dead-letter topic here: count, log and go on.
      Stats.DECODE_ERRORS.incrementAndGet();
      LOG.warn("{}[{}]@{}: cannot decode: {}", topic, meta.partition(), meta.offset(),
          e.getMessage());
    }
  }

  private void routeMarker(Record<String, String> record, long offset) {
    JsonNode marker = Json.unwrap(Json.parse(record.value()));
    if (!"END".equals(marker.path("status").asText())) return;
    ObjectNode out = Json.object();
    out.put("k", "E");
    out.put("pos", offset);
    ObjectNode counts = out.putObject("n");
    for (JsonNode c : marker.path("data_collections")) {
      counts.put(c.path("data_collection").asText(), c.path("event_count").asLong());
    }
    String xid = xidOf(marker.path("id").asText());
    context.forward(record.withKey(xid).withValue(Json.write(out)));
  }

  private void routeChange(Record<String, String> record, int table, String keyColumn) {
    JsonNode event = Json.unwrap(Json.parse(record.value()));
    JsonNode tx = event.path("transaction");
    if (Json.isNull(tx)) {
      Stats.UNSUPPORTED.incrementAndGet();
      LOG.warn("change event without a transaction block (op {}): not supported, dropped",
          event.path("op").asText());
      return;
    }
    String op = event.path("op").asText();
    JsonNode after = event.get("after");
    JsonNode before = event.get("before");
    JsonNode key = null;
    if (record.key() != null) key = Json.unwrap(Json.parse(record.key())).get(keyColumn);
    if (Json.isNull(key) && !Json.isNull(after)) key = after.get(keyColumn);
    if (Json.isNull(key) && !Json.isNull(before)) key = before.get(keyColumn);
    if (Json.isNull(key)) throw new IllegalArgumentException("no key column " + keyColumn);
    JsonNode txId = event.path("source").get("txId");
    String xid = Json.isNull(txId) ? xidOf(tx.path("id").asText()) : txId.asText();

    ObjectNode out = Json.object();
    out.put("k", "C");
    out.put("t", table);
    out.put("op", op);
    out.put("lsn", event.path("source").path("lsn").asLong(-1));
    out.put("key", Json.write(key));
    out.set("row", op.equals("d") ? null : after);
    context.forward(record.withKey(xid).withValue(Json.write(out)));
  }

  /** PostgreSQL's "571:24023128" -> "571"; an id without a colon as it is. */
  static String xidOf(String id) {
    int colon = id.indexOf(':');
    return colon < 0 ? id : id.substring(0, colon);
  }
}
