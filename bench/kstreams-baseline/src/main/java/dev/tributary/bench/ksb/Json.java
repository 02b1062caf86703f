package dev.tributary.bench.ksb;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

/** Jackson, set up to keep numbers exact and field order as read. */
final class Json {
  static final ObjectMapper MAPPER =
      new ObjectMapper()
          .enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS)
          .enable(DeserializationFeature.USE_BIG_INTEGER_FOR_INTS);

  private Json() {}

  static JsonNode parse(String text) {
    try {
      return MAPPER.readTree(text);
    } catch (JsonProcessingException e) {
      throw new IllegalArgumentException("not JSON: " + e.getOriginalMessage(), e);
    }
  }

  static String write(JsonNode node) {
    try {
      return MAPPER.writeValueAsString(node);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }

  static ObjectNode object() {
    return MAPPER.createObjectNode();
  }

  /** The JSON converter's {"schema":...,"payload":...} wrapper removed, if there is one. */
  static JsonNode unwrap(JsonNode node) {
    if (node != null && node.isObject() && node.size() == 2 && node.has("schema")
        && node.has("payload")) {
      return node.get("payload");
    }
    return node;
  }

  static boolean isNull(JsonNode node) {
    return node == null || node.isNull() || node.isMissingNode();
  }

  /**
   * A key's value in a form that sorts like the key: integers as "0" + 16 hex digits of the
   * sign-flipped value (so -1 < 0 < 10), anything else as "1" + its JSON text.
   */
  static String sortable(String keyText) {
    try {
      long n = Long.parseLong(keyText);
      return "0" + String.format("%016x", n ^ Long.MIN_VALUE);
    } catch (NumberFormatException e) {
      return "1" + keyText;
    }
  }
}
