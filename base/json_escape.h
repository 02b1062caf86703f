// JSON string literals for the text the layers write by hand (Debezium
// envelopes, joined aggregates, metrics). A pure function; any thread.
#pragma once

#include <string>
#include <string_view>

namespace tributary {

// Appends `text` to `out` as a JSON string literal, quotes included, escaped
// as Jackson (Kafka Connect's JSON converter) does: \" and \\, the short forms
// \b \f \n \r \t, \u00XX (upper-case hex) for the other control characters.
// Other bytes, UTF-8 included, pass through unchanged.
void AppendJsonString(std::string& out, std::string_view text);

}  // namespace tributary
