package dev.tributary.bench.ksb;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * Prints every committed record of a topic (read_committed, from offset 0 to the end as of the
 * start) as one JSON line: {"partition":P,"offset":O,"key":"..","value":"..."|null}.
 *
 * <p>java -cp kstreams-baseline.jar dev.tributary.bench.ksb.DumpTopic BOOTSTRAP TOPIC
 */
public final class DumpTopic {
  private DumpTopic() {}

  public static void main(String[] args) {
    Properties p = new Properties();
    p.setProperty(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    p.setProperty(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    p.setProperty(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    try (KafkaConsumer<String, String> consumer =
        new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer())) {
      List<TopicPartition> parts = new ArrayList<>();
      consumer.partitionsFor(args[1]).forEach(i -> parts.add(new TopicPartition(args[1],
          i.partition())));
      consumer.assign(parts);
      consumer.seekToBeginning(parts);
      Map<TopicPartition, Long> end = consumer.endOffsets(parts);
      while (parts.stream().anyMatch(tp -> consumer.position(tp) < end.get(tp))) {
        for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
          ObjectNode o = Json.object();
          o.put("partition", r.partition());
          o.put("offset", r.offset());
          o.put("key", r.key());
          o.put("value", r.value());
          System.out.println(Json.write(o));
        }
      }
    }
  }
}
